package wait

import (
	"context"
	"errors"
	"time"

	"github.com/crewgo/crew/work"
)

// race runs the tasks of one call of First or Hedge and decides its outcome.
// Every field is owned by the caller's goroutine, which starts the tasks and
// receives their outcomes; the tasks' goroutines only send on results.
type race[T any] struct {
	cfg     *config
	parent  context.Context
	link    *link           // nil when parent can never be cancelled
	base    context.Context // parent of every task's context
	maxWait context.Context // nil without MaxWait
	endBase func()          // releases base; nil when base is the parent
	run     func(ctx context.Context, i int) (T, error)
	label   func(i int, err error) error // TaskError or AttemptError
	results chan outcome[T]
	discard func(T)

	parentDone  <-chan struct{} // nil once handled
	maxWaitDone <-chan struct{} // nil once handled

	cancels  []context.CancelCauseFunc // by task; nil for a task never started
	running  int
	winner   int // -1 until a task succeeds
	value    T
	stopped  bool  // a task won, or the race was stopped early
	cause    error // why the race was stopped early; nil after a win
	panicked *work.PanicError
	failures []error // by task; nil where a task did not fail
	dropped  []T     // successes that lost, for Discard
}

// outcome is what a task's goroutine reports when the task returns.
type outcome[T any] struct {
	index     int
	value     T
	err       error
	panicked  *work.PanicError
	cancelled bool // the race had cancelled the task before it returned
	terminal  bool // the Terminal option said so of err
}

func newRace[T any](ctx context.Context, cfg *config, buffer int, discard func(T),
	run func(context.Context, int) (T, error), label func(int, error) error) *race[T] {
	r := &race[T]{cfg: cfg, parent: ctx, base: ctx, run: run, label: label, discard: discard, winner: -1}
	if ctx.Done() != nil {
		r.link = newLink(ctx)
		r.base = r.link
		r.parentDone = ctx.Done()
	}
	switch {
	case cfg.maxWait > 0:
		var end context.CancelFunc
		r.maxWait, end = context.WithTimeoutCause(r.base, cfg.maxWait, ErrMaxWait)
		r.base, r.endBase, r.maxWaitDone = r.maxWait, end, r.maxWait.Done()
	case r.link != nil:
		// One context of the context package's own under the link, so that
		// each task's context registers with it cheaply (a map entry)
		// instead of through link.AfterFunc.
		base, end := context.WithCancelCause(r.link)
		r.base, r.endBase = base, func() { end(ErrLost) }
	}
	r.cancels = make([]context.CancelCauseFunc, 0, buffer)
	r.results = make(chan outcome[T], buffer)
	return r
}

// start runs task i on a goroutine of its own, under a context of its own.
// Tasks must be started in index order.
func (r *race[T]) start(i int) {
	ctx, cancel := context.WithCancelCause(r.base)
	r.cancels = append(r.cancels, cancel)
	r.running++
	if r.cfg.attemptTimeout > 0 {
		actx, endAttempt := context.WithTimeoutCause(ctx, r.cfg.attemptTimeout, ErrAttemptTimeout)
		go r.do(i, ctx, actx, endAttempt)
		return
	}
	go r.do(i, ctx, ctx, nil)
}

// skip records task i as failed without running it.
func (r *race[T]) skip(i int, err error) {
	r.cancels = append(r.cancels, nil)
	r.fail(i, r.label(i, err))
}

// do runs task i and reports its outcome, whatever happens: a return, a
// panic, or runtime.Goexit. node is the task's own context, which the race
// cancels; ctx is node or, with AttemptTimeout, a child of node.
func (r *race[T]) do(i int, node, ctx context.Context, endAttempt context.CancelFunc) {
	o := outcome[T]{index: i}
	returned := false
	defer func() {
		if !returned {
			o.err = errGoexit
		}
		o.cancelled = node.Err() != nil
		if endAttempt != nil && o.err != nil {
			endAttempt() // a success keeps its deadline: its value may need its context
		}
		r.results <- o
	}()
	o.panicked = work.Catch(func() {
		o.value, o.err = r.run(ctx, i)
		if o.err != nil {
			o.err = timeoutCause(ctx, o.err, endAttempt != nil)
			if r.cfg.terminal != nil {
				o.terminal = r.cfg.terminal(o.err)
			}
		}
	})
	returned = true // Catch returns after a panic too, but not after runtime.Goexit
}

// timeoutCause replaces the bare context.DeadlineExceeded of an attempt whose
// AttemptTimeout expired with ErrAttemptTimeout, which says more and still
// matches context.DeadlineExceeded.
func timeoutCause(ctx context.Context, err error, timed bool) error {
	if timed && err == context.DeadlineExceeded && context.Cause(ctx) == ErrAttemptTimeout {
		return ErrAttemptTimeout
	}
	return err
}

// step waits for the next event and handles it: a task's outcome, the end of
// the parent context or of MaxWait, or a tick of tick (Hedge's timer; nil for
// First). It reports whether a task failed (Hedge then starts another) and
// whether tick fired.
func (r *race[T]) step(tick <-chan time.Time) (failed, ticked bool) {
	select {
	case o := <-r.results:
		return r.receive(o), false
	case <-r.parentDone:
		r.parentDone = nil
		r.parentEnded()
	case <-r.maxWaitDone:
		r.maxWaitDone = nil
		r.stop(context.Cause(r.maxWait))
	case <-tick:
		return false, true
	}
	return false, false
}

// parentEnded cancels every task with the parent's error and cause, the
// winner's context too if the race is already won: it derives from the
// parent.
func (r *race[T]) parentEnded() {
	r.link.cancel(r.parent.Err())
	r.stop(context.Cause(r.parent))
}

// receive handles the outcome of one task and reports whether it failed.
func (r *race[T]) receive(o outcome[T]) (failed bool) {
	r.running--
	switch {
	case o.panicked != nil:
		if r.panicked == nil {
			r.panicked = o.panicked
		}
		err := r.label(o.index, o.panicked)
		if !r.stop(err) {
			r.fail(o.index, err)
		}
	case o.err == nil:
		if r.stopped || o.cancelled {
			// Too late: another task won, or the race was stopped (a
			// success after MaxWait expired is reported by stop, later).
			r.drop(o.value)
			return false
		}
		r.winner, r.value, r.stopped = o.index, o.value, true
		for i, cancel := range r.cancels {
			if i != o.index && cancel != nil {
				cancel(ErrLost)
			}
		}
	case o.cancelled:
		// The task returned because the race cancelled it: not a failure.
	default:
		err := r.label(o.index, o.err)
		if o.terminal && r.stop(err) {
			return false
		}
		r.fail(o.index, err)
		return true
	}
	return false
}

// stop ends the race early: it cancels every task with cause, which the call
// will return first. It reports false if the race had already been won or
// stopped.
func (r *race[T]) stop(cause error) bool {
	if r.stopped {
		return false
	}
	r.stopped, r.cause = true, cause
	for _, cancel := range r.cancels {
		if cancel != nil {
			cancel(cause)
		}
	}
	return true
}

func (r *race[T]) fail(i int, err error) {
	for len(r.failures) <= i {
		r.failures = append(r.failures, nil)
	}
	r.failures[i] = err
}

// finish is called once every task has returned. It releases what the race
// holds, hands the dropped values to Discard, and returns the winner's index
// and value, or an error; it re-raises a task's panic unless PanicAsError is
// set.
func (r *race[T]) finish() (int, T, error) {
	var zero T
	if !r.stopped {
		// A task cancelled by MaxWait or the parent returned before the
		// race saw that happen.
		switch {
		case r.parent.Err() != nil && r.link != nil:
			r.parentEnded()
		case r.maxWait != nil && r.maxWait.Err() != nil:
			r.stop(context.Cause(r.maxWait))
		}
	}
	if r.panicked != nil && !r.cfg.panicAsError && r.winner >= 0 {
		r.drop(r.value)
		r.winner, r.value = -1, zero
	}
	if r.winner < 0 {
		r.release()
		r.discardAll()
		if r.panicked != nil && !r.cfg.panicAsError {
			panic(r.panicked)
		}
		return -1, zero, r.err()
	}
	// The winner's context stays as it is: not cancelled, and still ended by
	// the parent (through the link) and by its deadlines. The losers were
	// cancelled when the winner was found.
	r.discardAll()
	if r.link != nil && r.link.Err() == nil {
		r.link.keep()
	}
	return r.winner, r.value, nil
}

// release cancels every task's context, and the context they derive from
// (which stops the MaxWait timer).
func (r *race[T]) release() {
	for _, cancel := range r.cancels {
		if cancel != nil {
			cancel(ErrLost)
		}
	}
	if r.endBase != nil {
		r.endBase()
	}
}

// drop keeps a value that the call will not return, for Discard.
func (r *race[T]) drop(v T) {
	if r.discard != nil {
		r.dropped = append(r.dropped, v)
	}
}

func (r *race[T]) discardAll() {
	if r.discard == nil {
		return
	}
	for _, v := range r.dropped {
		r.discard(v)
	}
}

// err returns why the race failed: the cause that stopped it, if any, then
// every failure in task order.
func (r *race[T]) err() error {
	errs := make([]error, 0, 1+len(r.failures))
	if r.cause != nil {
		errs = append(errs, r.cause)
	}
	for _, err := range r.failures {
		if err != nil {
			errs = append(errs, err)
		}
	}
	switch len(errs) {
	case 0:
		// Unreachable: a task is cancelled only when the race stops.
		return errors.New("wait: no task succeeded")
	case 1:
		return errs[0]
	}
	return errors.Join(errs...)
}
