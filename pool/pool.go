package pool

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/crewgo/crew/work"
)

// ErrClosed is returned by Go for a task submitted after Close.
var ErrClosed = errors.New("pool: closed")

// task is the signature of the work a Pool runs.
type task = func(ctx context.Context) error

// Pool runs tasks on at most limit goroutines at once, and queues a bounded
// number more. Create one with New; a Pool must not be copied.
//
// One mutex guards a FIFO ring of accepted tasks and the counts. Goroutines
// start as tasks need them and exit as soon as they find nothing to do, so
// an idle pool holds none. The rest is there for the workloads of
// benchmarks/pool_test.go (a: a million tiny tasks; b: a hundred
// submitters; c: ten thousand sleeping tasks; d: CPU-bound tasks at
// GOMAXPROCS; e: bursts), and each mechanism says which one it serves
// with a measurement: two builds compared in one set of interleaved runs
// (sets differ from each other by up to a factor of two on these shared
// machines, so compare figures within a comment, not across comments).
type Pool struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	stop   func() bool // stops the AfterFunc that reacts to ctx's end
	work   func()      // p.worker, bound once: starting a goroutine allocates nothing

	cancelOnError bool

	mu       sync.Mutex
	limit    int
	queue    ring // accepted tasks not yet started
	queueCap int
	workers  int  // live goroutines
	running  int  // goroutines running a task
	idle     int  // goroutines started that have not taken a task yet
	toStart  int  // goroutines counted but not started yet: unlock starts them
	stalled  bool // a full queue did not drain while a submitter yielded
	stallRun int  // goroutines that may still start at once while stalled

	outstanding int           // submitted, not yet finished or skipped
	drained     chan struct{} // closed when outstanding drops to zero; nil if nobody waits
	errs        []error       // failures since the last Wait
	done        int64
	failed      int64
	skipped     int64

	closed  bool
	closing chan struct{} // closed by Close: wakes blocked submitters
	waiters int           // submitters blocked in Go
	room    chan struct{} // one token: wakes a blocked submitter when room appears

	exited sync.WaitGroup // goroutines of the pool
}

// Stats is a snapshot of a pool's counters.
type Stats struct {
	Limit   int   // the current limit
	Running int   // tasks running now
	Queued  int   // tasks accepted and waiting for a goroutine
	Done    int64 // tasks finished, failed ones included
	Failed  int64 // tasks that returned an error or panicked
	Skipped int64 // accepted tasks dropped because the pool's context ended
}

// New returns a pool that runs at most limit tasks at once. It panics if
// limit is less than 1.
//
// By default the pool also queues up to max(limit, 1024) tasks beyond those
// running, so that a fast submitter seldom has to wait for a goroutine;
// [Queue] changes that. The pool starts goroutines only as tasks need them,
// and a goroutine that finds no task waiting exits.
func New(limit int, opts ...Option) *Pool {
	if limit < 1 {
		panic(fmt.Sprintf("pool: New(%d): limit must be at least 1", limit))
	}
	cfg := config{ctx: context.Background(), queue: -1}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.queue < 0 {
		cfg.queue = max(limit, 1024)
	}
	p := &Pool{
		limit:         limit,
		queueCap:      cfg.queue,
		cancelOnError: cfg.cancelOnError,
		closing:       make(chan struct{}),
		room:          make(chan struct{}, 1),
	}
	p.work = p.worker
	p.queue.grow(cfg.queue + limit)
	p.ctx, p.cancel = context.WithCancelCause(cfg.ctx)
	p.stop = context.AfterFunc(p.ctx, p.cancelled)
	return p
}

// Go submits task to run on the pool, and returns once the pool has accepted
// it: at once if a goroutine is free or the queue has room, otherwise when
// room appears. The task receives the pool's context (see [WithContext]),
// not ctx: ctx only bounds the wait to submit.
//
// Go returns context.Cause(ctx) if ctx ends before the task is accepted,
// [ErrClosed] after Close, and the cause of the pool's context once that has
// ended; in each case the task will not run. It never panics, even when it
// races with Close.
//
// A task may call Go on its own pool, but if every running task waits in Go
// for room that only they can make, they deadlock: submit from a task with
// TryGo, or give the pool a Queue large enough for what tasks submit.
func (p *Pool) Go(ctx context.Context, task func(ctx context.Context) error) error {
	p.mu.Lock()
	yields := 0
	for {
		if err := p.refuse(); err != nil {
			p.mu.Unlock()
			return err
		}
		if p.acceptLocked(task, yields > 0, p.stalled || yields >= yieldsBeforeSpawn) {
			return nil // acceptLocked unlocked p.mu
		}
		if p.workers < p.limit {
			// The queue is full but the limit allows another goroutine. A
			// goroutine on another core is likely to make room within a
			// few yields; if none does, the tasks are slow (blocked on I/O,
			// say), and a full queue starts a new goroutine at once, for a
			// while (see acceptLocked). Without the yields, workload a
			// starts goroutines up to its limit for nothing: 20 times the
			// allocations, 6.7 instead of 0.2 MiB of peak memory, and 1.5
			// times the time per task (76 instead of 51 ns, four
			// interleaved runs).
			yields++
			p.mu.Unlock()
			runtime.Gosched()
			p.mu.Lock()
			continue
		}
		// Full: wait for room, the end of ctx, or Close.
		if ctx.Err() != nil {
			p.mu.Unlock()
			return context.Cause(ctx)
		}
		p.waiters++
		p.mu.Unlock()
		select {
		case <-p.room:
		case <-ctx.Done():
		case <-p.closing:
		case <-p.ctx.Done():
		}
		p.mu.Lock()
		p.waiters--
		if ctx.Err() != nil {
			p.passRoomLocked()
			p.mu.Unlock()
			return context.Cause(ctx)
		}
		yields = 0 // what the yields before the wait showed is stale now
	}
}

// yieldsBeforeSpawn is how often a submitter that finds the queue full
// yields to the running tasks before it starts another goroutine.
const yieldsBeforeSpawn = 2

// TryGo submits task if the pool can accept it without waiting, and reports
// whether it did. It returns false after Close and once the pool's context
// has ended.
func (p *Pool) TryGo(task func(ctx context.Context) error) bool {
	p.mu.Lock()
	if p.refuse() != nil {
		p.mu.Unlock()
		return false
	}
	if p.acceptLocked(task, false, true) {
		return true
	}
	p.mu.Unlock()
	return false
}

// refuse returns why the pool accepts no task, or nil. p.mu is held.
func (p *Pool) refuse() error {
	if p.closed {
		return ErrClosed
	}
	if p.ctx.Err() != nil {
		return context.Cause(p.ctx)
	}
	return nil
}

// acceptLocked queues task if the queue has room for it, or (when it is
// full and spawn is true) queues it all the same and starts a goroutine to
// take it. If it accepted the task it unlocks p.mu and returns true;
// otherwise it keeps p.mu. yielded says that the submitter found the queue
// full before and yielded to the running tasks: whether that made room or
// not sets p.stalled, which ends when the stall's budget is spent or
// nextLocked finds the queue empty.
//
// The queue holds up to queueCap tasks, plus one for each goroutine about
// to look for a task (p.idle): with Queue(0), a task waits only for a
// goroutine that is on its way.
func (p *Pool) acceptLocked(task task, yielded, spawn bool) bool {
	switch {
	case p.queue.len() < p.queueCap+p.idle:
		if yielded {
			p.stalled = false // the running tasks made room: they keep up
		}
		p.queue.push(task)
		// Start a goroutine unless one is about to look for work anyway:
		// a backlog spreads over more goroutines in takeLocked.
		if p.workers < p.limit && p.idle == 0 {
			p.spawnLocked()
		}
	case spawn && p.workers < p.limit:
		if yielded {
			// Yielding did not help: the tasks are slow, or the
			// goroutines running them were descheduled. A full queue then
			// starts a goroutine at once, at most as many times as there
			// were goroutines when the stall was seen; then submitters
			// yield and look again. Without the bound, one such
			// misreading made workload a start goroutines up to its
			// limit: 5.3 instead of 0.7 MiB of peak memory, and 44
			// instead of 40 ns per task (six interleaved runs); sleeping
			// tasks (c) still reach their limit as fast.
			p.stalled, p.stallRun = true, max(p.workers, 1)
		}
		p.queue.push(task)
		p.spawnLocked()
		if p.stalled {
			if p.stallRun--; p.stallRun == 0 {
				p.stalled = false
			}
		}
	default:
		return false
	}
	p.outstanding++
	p.passRoomLocked()
	p.unlock()
	return true
}

// spawnLocked counts a goroutine that takes its first task from the queue,
// and leaves starting it to unlock. p.mu is held.
func (p *Pool) spawnLocked() {
	p.workers++
	p.idle++
	p.toStart++
	p.exited.Add(1)
}

// unlock releases p.mu and then starts the goroutines that spawnLocked
// counted. Starting one takes longer than the rest of a task's turn under
// the lock; outside it, ten thousand sleeping tasks (workload c) wait for
// p.mu a quarter as long (mutex profile).
func (p *Pool) unlock() {
	n := p.toStart
	p.toStart = 0
	p.mu.Unlock()
	for range n {
		go p.work()
	}
}

// passRoomLocked wakes a blocked submitter if there is room for it: a free
// slot under the limit, or a queue drained to half, so that a submitter
// refills the queue in one go instead of being woken for every task
// (woken at any room, in four interleaved runs, a hundred submitters, b,
// took 1,390 instead of 119 ns per task, bursts, e, 311 instead of 176,
// and CPU-bound tasks, d, 685 instead of 556). It reports whether it woke
// one. p.mu is held.
func (p *Pool) passRoomLocked() bool {
	if p.waiters > 0 && (p.workers < p.limit || p.queue.len() <= (p.queueCap+p.idle)/2) {
		select {
		case p.room <- struct{}{}:
			return true
		default:
		}
	}
	return false
}

// worker is a goroutine of the pool: it runs queued tasks until it finds
// none.
func (p *Pool) worker() {
	defer p.exited.Done()
	p.relock()
	p.idle--
	for {
		t := p.nextLocked()
		if t == nil {
			return
		}
		err := p.run(t)
		p.relock()
		p.running--
		p.finishLocked(err)
	}
}

// relock takes p.mu for a goroutine of the pool. While another goroutine
// holds it, this one yields its core and tries again, up to relockYields
// times, before it queues on the mutex. A goroutine queued on a sync.Mutex
// has to be woken by the Unlock that frees it, and with a thousand
// goroutines and a hundred submitters (workload b) those wake-ups took
// most of the time per task: yielding instead, b took 84 instead of 161 ns
// per task (six interleaved runs; 4, 8 and 16 yields did as well). The
// bound keeps a goroutine from yielding on and on while the holder is
// descheduled. Submitters take p.mu as usual: yielding there made CPU-bound
// tasks at GOMAXPROCS (d) 12% slower, as the one submitter gave its core to
// the tasks instead of refilling the queue.
func (p *Pool) relock() {
	for range relockYields {
		if p.mu.TryLock() {
			return
		}
		runtime.Gosched()
	}
	p.mu.Lock()
}

// relockYields bounds how often relock yields.
const relockYields = 16

// nextLocked returns the goroutine's next task, with p.running counting it,
// or nil, with the goroutine counted out, when it should exit. p.mu is held
// on entry and released on return.
func (p *Pool) nextLocked() task {
	if t, ok := p.takeLocked(); ok {
		woke := p.passRoomLocked()
		p.unlock()
		if woke {
			// The woken submitter is queued behind this goroutine on its
			// core; when every core runs a task, it would wait until the
			// queue ran dry. Let it refill the queue now: without this
			// yield, in eight interleaved runs, d took 610 instead of 556
			// ns per task and b 118 instead of 82.
			runtime.Gosched()
		}
		return t
	}
	p.workers--
	p.stalled = false // the queue is empty: the running tasks keep up
	p.passRoomLocked()
	p.unlock()
	return nil
}

// takeLocked pops the next queued task for a goroutine, counting it as
// running. It reports false when nothing is queued, or the limit was
// lowered below the number of goroutines. Once the pool's context has
// ended, queued tasks are skipped instead. With tasks still queued after
// this one and no other goroutine about to look for work, it starts one
// more, so that a backlog spreads over the limit, each goroutine starting
// the next (without this, in four interleaved runs, workload a took 78
// instead of 51 ns per task and bursts, e, 210 instead of 176). The
// caller wakes a blocked submitter if this made room. p.mu is held.
func (p *Pool) takeLocked() (task, bool) {
	if p.queue.len() == 0 || p.workers > p.limit {
		return nil, false
	}
	if p.ctx.Err() != nil {
		p.skipQueuedLocked()
		return nil, false
	}
	t := p.queue.pop()
	p.running++
	if p.queue.len() > 0 && p.workers < p.limit && p.idle == 0 {
		p.spawnLocked()
	}
	return t, true
}

// run calls t, turning a panic into a *work.PanicError.
func (p *Pool) run(t task) (err error) {
	if pe := work.Catch(func() { err = t(p.ctx) }); pe != nil {
		return pe
	}
	return err
}

// finishLocked records a finished task. p.mu is held.
func (p *Pool) finishLocked(err error) {
	p.done++
	if err != nil {
		p.failed++
		p.errs = append(p.errs, err)
		if p.cancelOnError {
			p.cancel(err)
		}
	}
	p.doneLocked(1)
}

// doneLocked counts n tasks as no longer outstanding. p.mu is held.
func (p *Pool) doneLocked(n int) {
	p.outstanding -= n
	if p.outstanding == 0 && p.drained != nil {
		close(p.drained)
		p.drained = nil
	}
}

func (p *Pool) skipQueuedLocked() {
	n := p.queue.len()
	if n == 0 {
		return
	}
	p.queue.clear()
	p.skipped += int64(n)
	p.doneLocked(n)
}

// cancelled runs when the pool's context ends: queued tasks are skipped.
func (p *Pool) cancelled() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.skipQueuedLocked()
}

// Wait waits until every task submitted so far has finished (or been
// skipped) and returns the errors.Join of the errors they returned since the
// previous Wait, in the order they finished; a panic is reported as a
// *work.PanicError whose message carries the stack. Tasks submitted while
// Wait waits are waited for too.
//
// The pool stays usable after Wait. After Close and Wait, every goroutine the
// pool started has exited.
func (p *Pool) Wait() error {
	p.mu.Lock()
	if p.outstanding > 0 {
		drained := p.drainedLocked()
		p.mu.Unlock()
		<-drained
		p.mu.Lock()
	}
	errs := p.errs
	p.errs = nil
	closed := p.closed
	p.mu.Unlock()
	if closed {
		p.exited.Wait()
	}
	return errors.Join(errs...)
}

func (p *Pool) drainedLocked() chan struct{} {
	if p.drained == nil {
		p.drained = make(chan struct{})
	}
	return p.drained
}

// Close stops the pool from accepting tasks: Go returns ErrClosed from then
// on, including in submitters blocked in Go now. Tasks already accepted still
// run, and goroutines exit as they run out of work. Close returns at once;
// call Wait to wait for the tasks. Calling Close more than once does nothing.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	close(p.closing)
	p.stop()
}

// Shutdown closes the pool and waits for its tasks, like Close followed by
// Wait, but only until ctx ends. If ctx ends first, Shutdown cancels the
// pool's context (so running tasks see context.Cause(ctx) and queued ones
// are skipped) and returns at once, with an error that says how many tasks
// were still running, joined with the errors tasks had returned. Call Wait
// afterwards to wait for the tasks that were still running.
func (p *Pool) Shutdown(ctx context.Context) error {
	p.Close()
	p.mu.Lock()
	if p.outstanding == 0 {
		p.mu.Unlock()
		return p.Wait()
	}
	drained := p.drainedLocked()
	p.mu.Unlock()
	select {
	case <-drained:
		return p.Wait()
	case <-ctx.Done():
	}
	// What is running and what has failed are as they were at the
	// deadline; the tasks that the cancellation ends report to Wait.
	p.mu.Lock()
	p.skipQueuedLocked()
	running := p.running
	errs := p.errs
	p.errs = nil
	p.mu.Unlock()
	p.cancel(context.Cause(ctx))
	if running == 0 {
		return errors.Join(errs...)
	}
	err := fmt.Errorf("pool: shutdown: %d tasks still running: %w", running, context.Cause(ctx))
	return errors.Join(append([]error{err}, errs...)...)
}

// SetLimit changes how many tasks may run at once. Raising it starts queued
// tasks at once; lowering it lets running tasks finish, and no new one starts
// until fewer than the new limit run. It panics if limit is less than 1.
func (p *Pool) SetLimit(limit int) {
	if limit < 1 {
		panic(fmt.Sprintf("pool: SetLimit(%d): limit must be at least 1", limit))
	}
	p.mu.Lock()
	defer p.unlock()
	p.limit = limit
	p.queue.grow(p.queueCap + limit)
	if p.ctx.Err() == nil {
		for range min(limit-p.workers, p.queue.len()-p.idle) {
			p.spawnLocked()
		}
	}
	p.passRoomLocked()
}

// Stats returns a snapshot of the pool's counters.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{
		Limit:   p.limit,
		Running: p.running,
		Queued:  p.queue.len(),
		Done:    p.done,
		Failed:  p.failed,
		Skipped: p.skipped,
	}
}

// Context returns the context that the pool's tasks receive.
func (p *Pool) Context() context.Context { return p.ctx }
