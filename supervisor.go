package crew

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/crewgo/crew/work"
)

// supervisor runs one Group. Everything in it except the fields under mu is
// owned by the goroutine that runs Group.Run: workers report to it over msgs,
// and it alone decides what starts, restarts and stops.
type supervisor struct {
	g       *Group
	parent  context.Context // the context given to Run
	log     *slog.Logger
	workers []*worker
	msgs    chan message
	done    chan struct{} // closed when Run returns

	timeout    time.Duration
	drainDelay time.Duration

	running    int // workers whose Run is executing
	pending    int // workers waiting out a restart delay
	readyCount int
	stopping   bool // the stop has begun
	cancelling bool // DrainDelay is over: workers are being cancelled
	cause      error
	report     bool // Run returns an *Error even if no worker failed
	failures   []WorkerError
	stragglers []string

	drainDelayTimer *time.Timer
	deadlineTimer   *time.Timer
	drainTimer      *time.Timer

	// drain is cancelled at the drain deadline, and when Run returns. It is
	// what every context from DrainContext is done with.
	drain       context.Context
	drainCancel context.CancelFunc

	mu            sync.Mutex
	drainDeadline time.Time
}

type messageKind int

const (
	msgReady messageKind = iota
	msgExit
	msgRestart
)

type message struct {
	kind messageKind
	w    *worker
	gen  int
	err  error
}

// instance is one start of a worker. It travels in the worker's context so
// that MarkReady and DrainContext can find their group.
type instance struct {
	s     *supervisor
	w     *worker
	gen   int
	ready sync.Once
}

type instanceKey struct{}

func newSupervisor(g *Group, parent context.Context, workers []*worker) *supervisor {
	s := &supervisor{
		g:          g,
		parent:     parent,
		log:        g.logger(),
		workers:    workers,
		msgs:       make(chan message),
		done:       make(chan struct{}),
		timeout:    g.stopTimeout(),
		drainDelay: g.DrainDelay,
	}
	s.drain, s.drainCancel = context.WithCancel(context.Background())
	return s
}

// send delivers m to the supervisor, or drops it if Run has returned (as it
// has when a straggler finally returns).
func (s *supervisor) send(m message) {
	select {
	case s.msgs <- m:
	case <-s.done:
	}
}

func (s *supervisor) run(ctx context.Context, stopReq, hurry <-chan struct{}) error {
	base := context.WithoutCancel(ctx)
	for _, w := range s.workers {
		w.ctx, w.cancel = context.WithCancelCause(base)
	}
	defer s.cleanup()
	// A nested group's drains end when its parent's do.
	defer context.AfterFunc(DrainContext(ctx), s.drainCancel)()

	// A stop requested before Run, or a context already done, starts nothing.
	select {
	case <-stopReq:
		stopReq = nil
		s.beginStop(s.requestedCause())
	default:
		if ctx.Err() != nil {
			s.beginStop(context.Cause(ctx))
		}
	}
	s.updateReady()
	s.startEligible()

	ctxDone := ctx.Done()
	for s.running > 0 || s.pending > 0 {
		select {
		case m := <-s.msgs:
			s.handle(m)
		case <-ctxDone:
			ctxDone = nil
			s.beginStop(context.Cause(ctx))
		case <-stopReq:
			stopReq = nil
			s.beginStop(s.requestedCause())
		case <-hurry:
			hurry = nil
			s.cutDrain()
		case <-timerC(s.drainDelayTimer):
			s.drainDelayTimer = nil
			s.beginCancel()
		case <-timerC(s.deadlineTimer):
			s.deadlineTimer = nil
			s.declareStragglers()
			return s.result()
		}
	}
	return s.result()
}

// timerC returns t's channel, or nil (which blocks for ever) for a nil timer.
func timerC(t *time.Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C
}

func (s *supervisor) cleanup() {
	close(s.done)
	for _, t := range []*time.Timer{s.drainDelayTimer, s.deadlineTimer, s.drainTimer} {
		if t != nil {
			t.Stop()
		}
	}
	s.drainCancel()
	cause := s.cause
	if cause == nil {
		cause = ErrStopped
	}
	for _, w := range s.workers {
		if w.timer != nil {
			w.timer.Stop()
		}
		w.cancel(cause)
	}
}

func (s *supervisor) requestedCause() error {
	s.g.mu.Lock()
	defer s.g.mu.Unlock()
	s.report = s.g.stopReport
	return s.g.stopCause
}

func (s *supervisor) result() error {
	if len(s.failures) == 0 && len(s.stragglers) == 0 && !s.report {
		return nil
	}
	return &Error{Cause: s.cause, Workers: s.failures, Stragglers: s.stragglers}
}

func (s *supervisor) handle(m message) {
	w := m.w
	switch m.kind {
	case msgReady:
		if w.running && m.gen == w.gen {
			s.setReady(w)
		}
	case msgExit:
		if w.running && m.gen == w.gen {
			s.exited(w, m.err)
		}
	case msgRestart:
		if w.pending && m.gen == w.gen {
			w.pending = false
			s.pending--
			s.start(w)
		}
	}
}

// startEligible starts every worker that has not started and whose
// dependencies are all ready.
func (s *supervisor) startEligible() {
	if s.stopping {
		return
	}
	for _, w := range s.workers {
		if w.started || !allReady(w.deps) {
			continue
		}
		s.start(w)
		if s.stopping {
			return
		}
	}
}

func allReady(ws []*worker) bool {
	for _, w := range ws {
		if !w.ready {
			return false
		}
	}
	return true
}

func (s *supervisor) start(w *worker) {
	w.gen++
	w.started = true
	w.running = true
	s.running++
	inst := &instance{s: s, w: w, gen: w.gen}
	ctx := withInstance(w.ctx, inst)
	s.setState(w, StateRunning, nil)
	s.emit(Event{Kind: Started, Worker: w.name, Restarts: w.restarts})
	s.log.Debug("worker started", "worker", w.name, "restarts", w.restarts)
	go s.call(w, inst, ctx)
	if !w.opt.waitReady && !w.opt.oneShot {
		s.setReady(w)
	}
}

// call runs the worker once and reports its return.
func (s *supervisor) call(w *worker, inst *instance, ctx context.Context) {
	var err error
	run := func() { err = w.w.Run(ctx) }
	if w.opt.passPanics {
		run()
	} else if pe := work.Catch(run); pe != nil {
		err = pe
	}
	s.send(message{kind: msgExit, w: w, gen: inst.gen, err: err})
}

func (s *supervisor) setReady(w *worker) {
	if w.ready {
		return
	}
	w.ready = true
	s.readyCount++
	s.emit(Event{Kind: Ready, Worker: w.name, Restarts: w.restarts})
	s.log.Debug("worker ready", "worker", w.name)
	s.updateReady()
	s.startEligible()
}

func (s *supervisor) setUnready(w *worker) {
	if !w.ready {
		return
	}
	w.ready = false
	s.readyCount--
	s.updateReady()
}

// updateReady publishes the group's readiness. The first time every worker
// is ready, it closes the Ready channel and marks the group itself ready in
// its parent group, if it runs in one.
func (s *supervisor) updateReady() {
	all := s.readyCount == len(s.workers)
	g := s.g
	g.mu.Lock()
	g.readyNow = all && !s.stopping
	g.stopping = s.stopping
	g.waiting = g.waiting[:0]
	for _, w := range s.workers {
		w.status.Ready = w.ready
		if !w.ready {
			g.waiting = append(g.waiting, w.name)
		}
	}
	first := false
	if g.readyNow {
		select {
		case <-g.readyCh:
		default:
			close(g.readyCh)
			first = true
		}
	}
	g.mu.Unlock()
	if first {
		MarkReady(s.parent)
	}
}

// exited handles a worker's return.
func (s *supervisor) exited(w *worker, err error) {
	w.running = false
	s.running--
	rp := w.opt.restart
	switch {
	case s.stopping:
		if err != nil && !(w.cancelled && isCancellation(w.ctx, err)) {
			s.fail(w, err)
		} else {
			s.finish(w, err)
		}
		if s.cancelling {
			s.cancelEligible()
		}
	case err == nil && w.opt.oneShot:
		s.finish(w, nil)
		s.setReady(w)
	case rp != nil && !errors.Is(err, ErrPermanent):
		s.setUnready(w)
		s.restart(w, err)
	case err == nil:
		s.finish(w, nil)
		s.setUnready(w)
		s.beginStop(fmt.Errorf("crew: worker %q returned: %w", w.name, ErrStopped))
	default:
		s.setUnready(w)
		s.beginStop(s.fail(w, err))
	}
}

// isCancellation reports whether err is how a worker says that its context
// was cancelled.
func isCancellation(ctx context.Context, err error) bool {
	if errors.Is(err, context.Canceled) {
		return true
	}
	cause := context.Cause(ctx)
	return cause != nil && errors.Is(err, cause)
}

// finish records a worker's return that was not a failure.
func (s *supervisor) finish(w *worker, err error) {
	s.setState(w, StateDone, err)
	s.emit(Event{Kind: Exited, Worker: w.name, Err: err, Restarts: w.restarts})
	if err != nil {
		s.log.Info("worker stopped", "worker", w.name, "err", err)
	} else {
		s.log.Info("worker stopped", "worker", w.name)
	}
}

// fail records a worker's failure and returns it.
func (s *supervisor) fail(w *worker, err error) *WorkerError {
	we := WorkerError{Name: w.name, Err: err, Restarts: w.restarts}
	s.failures = append(s.failures, we)
	s.setState(w, StateFailed, err)
	s.emit(Event{Kind: Exited, Worker: w.name, Err: err, Restarts: w.restarts})
	var pe *PanicError
	if errors.As(err, &pe) {
		s.log.Error("worker panicked", "worker", w.name, "panic", pe.Value, "stack", string(pe.Stack))
	} else {
		s.log.Error("worker failed", "worker", w.name, "err", err, "restarts", w.restarts)
	}
	return &we
}

// restart schedules w to start again after its policy's delay, or fails it
// if it has used up its restarts.
func (s *supervisor) restart(w *worker, err error) {
	rp := w.opt.restart
	now := time.Now()
	if rp.window > 0 {
		cutoff := now.Add(-rp.window)
		i := 0
		for i < len(w.restartTimes) && !w.restartTimes[i].After(cutoff) {
			i++
		}
		w.restartTimes = w.restartTimes[i:]
	}
	if rp.max >= 0 && len(w.restartTimes) >= rp.max {
		if err == nil {
			err = fmt.Errorf("crew: returned more than %d times within %v", rp.max, rp.window)
		}
		s.beginStop(s.fail(w, err))
		return
	}
	w.restartTimes = append(w.restartTimes, now)
	w.restarts++
	delay := max(rp.delay(len(w.restartTimes)), 0)
	s.setState(w, StateRestarting, err)
	s.emit(Event{Kind: Restarting, Worker: w.name, Err: err, Restarts: w.restarts, Delay: delay})
	s.log.Warn("worker restarting", "worker", w.name, "err", err, "restarts", w.restarts, "delay", delay)
	w.pending = true
	s.pending++
	gen := w.gen
	w.timer = time.AfterFunc(delay, func() {
		s.send(message{kind: msgRestart, w: w, gen: gen})
	})
}

// beginStop starts the stop, once: readiness drops at once, and workers are
// cancelled after DrainDelay.
func (s *supervisor) beginStop(cause error) {
	if s.stopping {
		return
	}
	s.stopping = true
	s.cause = cause
	for _, w := range s.workers {
		if w.pending {
			w.timer.Stop()
			w.pending = false
			s.pending--
			s.setState(w, StateDone, w.status.Err)
			s.emit(Event{Kind: Exited, Worker: w.name, Err: w.status.Err, Restarts: w.restarts})
		}
	}
	s.updateReady()
	s.emit(Event{Kind: Stopping, Err: cause})
	s.log.Info("stopping", "cause", cause, "drain_delay", s.drainDelay)
	if s.drainDelay > 0 && s.running > 0 {
		s.drainDelayTimer = time.NewTimer(s.drainDelay)
		return
	}
	s.beginCancel()
}

// cutDrain ends DrainDelay and every drain at once, for a Stop made while
// the group was already stopping.
func (s *supervisor) cutDrain() {
	// In case the stop had not begun: a hurry always follows a Stop, whose
	// request the run loop may not have taken yet (select picks among ready
	// channels at random), so that Stop's cause is the stop's.
	s.beginStop(s.requestedCause())
	if s.drainDelayTimer != nil {
		s.drainDelayTimer.Stop()
		s.drainDelayTimer = nil
		s.beginCancel()
	}
	s.log.Info("stop hurried: drains end now")
	s.mu.Lock()
	if now := time.Now(); s.drainDeadline.IsZero() || now.Before(s.drainDeadline) {
		s.drainDeadline = now
	}
	s.mu.Unlock()
	s.drainCancel()
}

// beginCancel starts the stop timeout and cancels the workers that nothing
// running depends on.
func (s *supervisor) beginCancel() {
	s.cancelling = true
	if s.timeout >= 0 {
		deadline := time.Now().Add(s.timeout)
		// A nested group's stop fits inside its parent's.
		if pd, ok := DrainContext(s.parent).Deadline(); ok && pd.Before(deadline) {
			deadline = pd
		}
		// Drains end a little before the deadline, so that a worker whose
		// drain ran out of time can still return instead of straggling.
		budget := time.Until(deadline)
		drainDeadline := deadline.Add(-min(budget/10, 500*time.Millisecond))
		s.mu.Lock()
		s.drainDeadline = drainDeadline
		s.mu.Unlock()
		s.drainTimer = time.AfterFunc(time.Until(drainDeadline), s.drainCancel)
		s.deadlineTimer = time.NewTimer(budget)
	}
	s.cancelEligible()
}

// cancelEligible cancels every running worker that no running worker depends
// on.
func (s *supervisor) cancelEligible() {
	for _, w := range s.workers {
		if !w.running || w.cancelled || anyRunning(w.dependents) {
			continue
		}
		w.cancelled = true
		w.cancel(s.cause)
		s.setState(w, StateStopping, nil)
	}
}

func anyRunning(ws []*worker) bool {
	for _, w := range ws {
		if w.running {
			return true
		}
	}
	return false
}

func (s *supervisor) declareStragglers() {
	for _, w := range s.workers {
		if !w.running {
			continue
		}
		s.stragglers = append(s.stragglers, w.name)
		s.setState(w, StateStraggling, nil)
		s.emit(Event{Kind: Straggler, Worker: w.name, Restarts: w.restarts})
		s.log.Error("worker did not stop in time", "worker", w.name, "stop_timeout", s.timeout)
		if !w.cancelled {
			w.cancelled = true
			w.cancel(s.cause)
		}
	}
}

func (s *supervisor) setState(w *worker, st WorkerState, err error) {
	s.g.mu.Lock()
	defer s.g.mu.Unlock()
	w.status.State = st
	w.status.Restarts = w.restarts
	if err != nil {
		w.status.Err = err
	}
}

func (s *supervisor) emit(e Event) {
	if s.g.OnEvent != nil {
		s.g.OnEvent(e)
	}
}

// deadline returns when drains must end, once the stop timeout runs.
func (s *supervisor) deadline() (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.drainDeadline, !s.drainDeadline.IsZero()
}
