package crew

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Worker is a long-running piece of a program: an HTTP server, a queue
// consumer, a ticker. Run does its work until ctx is done and then returns,
// after cleaning up; it returns earlier only when it fails (or, for a
// [OneShot] worker, when its work is finished).
//
// When a [Group] stops a worker, context.Cause(ctx) says why: a
// *[SignalError], the cause given to [Group.Stop], or the *[WorkerError] of the
// worker whose failure stopped the group.
type Worker interface {
	Run(ctx context.Context) error
}

// Func adapts a function to the [Worker] interface.
type Func func(ctx context.Context) error

// Run calls f(ctx).
func (f Func) Run(ctx context.Context) error { return f(ctx) }

// DefaultStopTimeout is the stop budget of a Group whose StopTimeout is zero.
// It leaves room inside Kubernetes' default 30-second grace period.
const DefaultStopTimeout = 25 * time.Second

// Group runs a set of named workers together and stops them together.
//
// Workers start when Run is called (or, with [After], once the workers they
// depend on are ready). The group runs until its context ends, until
// [Group.Stop] is called, or until any worker returns: a worker is expected to
// run until it is stopped, so its return (nil or not) stops the others, unless
// it is [OneShot] or has a [Restart] policy. Stopping cancels the workers'
// contexts, in reverse dependency order, and waits for every one of them, up
// to StopTimeout.
//
// The zero value is ready to use. A Group runs once: build a new one to run
// again. A *Group is itself a Worker, so groups nest into supervision trees.
type Group struct {
	// StopTimeout is the budget for the whole stop, counted from the moment
	// the first workers are cancelled (after DrainDelay). Workers still
	// running when it expires are reported as stragglers and Run returns
	// without them. Zero means DefaultStopTimeout; a negative value waits for
	// ever.
	StopTimeout time.Duration

	// DrainDelay is how long the group reports not ready (see ReadyHandler)
	// before it cancels any worker, so that a load balancer stops sending
	// traffic before the servers stop accepting it. On Kubernetes, set it a
	// little above the time endpoints take to update (a few seconds).
	DrainDelay time.Duration

	// Logger receives one line per worker start, exit and restart, and one
	// when the group stops. Nil means slog.Default().
	Logger *slog.Logger

	// OnEvent, if set, is called for every Event, one at a time, from the
	// goroutine that runs Run. It must not block, and must not call Add or
	// Run.
	OnEvent func(Event)

	mu         sync.Mutex
	workers    []*worker
	names      map[string]*worker
	ran        bool
	stopReq    chan struct{} // closed by the first Stop
	hurry      chan struct{} // closed by the second Stop: cut the drain short
	stopCause  error
	stopReport bool // Stop was given a non-nil cause
	readyCh    chan struct{}
	readyNow   bool // every worker is ready and the group is not stopping
	stopping   bool
	waiting    []string // workers not ready yet, for ReadyHandler
}

// worker is one added Worker and its supervision state. The fields below opt
// are set by Run before any goroutine starts and belong to the supervisor
// goroutine after that; status is guarded by Group.mu.
type worker struct {
	name string
	w    Worker
	opt  workerOptions

	deps, dependents []*worker

	ctx          context.Context
	cancel       context.CancelCauseFunc
	gen          int // incremented at every start
	started      bool
	running      bool
	ready        bool
	cancelled    bool
	pending      bool // waiting out a restart delay
	timer        *time.Timer
	restarts     int
	restartTimes []time.Time

	status WorkerStatus
}

var errRunTwice = errors.New("crew: Group.Run called more than once")

// Add adds a worker under name. Options say how it starts, stops and
// restarts; without any, it is ready as soon as it starts and its return
// stops the group.
//
// Add panics if name is empty or already taken, if w is nil, or if Run has
// already been called: these are programming errors.
func (g *Group) Add(name string, w Worker, opts ...Option) {
	if name == "" {
		panic("crew: Add with an empty worker name")
	}
	if w == nil {
		panic(fmt.Sprintf("crew: Add(%q) with a nil Worker", name))
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ran {
		panic(fmt.Sprintf("crew: Add(%q) after Run", name))
	}
	if _, dup := g.names[name]; dup {
		panic(fmt.Sprintf("crew: worker %q added twice", name))
	}
	if g.names == nil {
		g.names = make(map[string]*worker)
	}
	wk := &worker{name: name, w: w}
	for _, o := range opts {
		o(&wk.opt)
	}
	wk.status = WorkerStatus{Name: name, State: StatePending}
	g.names[name] = wk
	g.workers = append(g.workers, wk)
}

// Run starts the workers and returns when every one of them has returned,
// or when the stop timeout has expired for those that did not. It never
// returns early because one worker failed: the others are stopped and waited
// for first.
//
// Run returns nil when no worker failed and none straggled, whatever began
// the stop: the end of ctx, [Group.Stop] with a nil cause, or a worker that
// returned nil. Otherwise it returns an *[Error] listing every failed worker
// (with its name) and every straggler; it also returns an *Error, carrying the
// cause, when Stop was given a non-nil cause. A worker that returns
// context.Canceled (or its context's cause) after the group cancelled it has
// not failed.
//
// A dependency cycle or an [After] that names no worker is reported by Run,
// before any worker starts. Calling Run a second time returns an error.
func (g *Group) Run(ctx context.Context) error {
	g.mu.Lock()
	if g.ran {
		g.mu.Unlock()
		return errRunTwice
	}
	g.ran = true
	g.initLocked()
	workers := slices.Clone(g.workers)
	stopReq, hurry := g.stopReq, g.hurry
	g.mu.Unlock()

	if err := link(workers); err != nil {
		return err
	}
	return newSupervisor(g, ctx, workers).run(ctx, stopReq, hurry)
}

// Stop begins stopping the group, as if its context had ended, and returns at
// once; Run returns when the stop is complete. Workers see cause through
// context.Cause, or [ErrStopped] if cause is nil. With a non-nil cause, Run
// returns an *[Error] carrying it. A call before Run makes Run stop at once,
// without starting any worker.
//
// Only the first call's cause counts. A call made while the group is already
// stopping, whatever began the stop, cuts the drain short instead, as a
// second Ctrl-C would: DrainDelay ends, every worker is cancelled in order as
// usual, and every context from [DrainContext] ends at once. StopTimeout
// still bounds how long Run waits for the workers to return.
func (g *Group) Stop(cause error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.initLocked()
	select {
	case <-g.stopReq:
		select {
		case <-g.hurry:
		default:
			close(g.hurry)
		}
		return
	default:
	}
	if g.stopping {
		close(g.hurry)
	}
	if cause == nil {
		cause = ErrStopped
	} else {
		g.stopReport = true
	}
	g.stopCause = cause
	close(g.stopReq)
}

// Ready returns a channel that is closed once every worker is ready for the
// first time. It is never closed if the group stops before that.
func (g *Group) Ready() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.initLocked()
	return g.readyCh
}

// ReadyHandler returns an HTTP handler for a readiness probe. It answers
// 200 while every worker is ready, and 503 before that, while a worker
// restarts, and from the moment the group begins to stop (including
// DrainDelay). The body names what the group is waiting for.
func (g *Group) ReadyHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		g.mu.Lock()
		ready, stopping, waiting := g.readyNow, g.stopping, strings.Join(g.waiting, ", ")
		g.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		switch {
		case ready:
			fmt.Fprintln(w, "ready")
			return
		case stopping:
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready: stopping")
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready: waiting for %s\n", waiting)
		}
	})
}

// Status returns a snapshot of every worker, in the order they were added.
func (g *Group) Status() []WorkerStatus {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]WorkerStatus, len(g.workers))
	for i, w := range g.workers {
		out[i] = w.status
	}
	return out
}

func (g *Group) initLocked() {
	if g.stopReq == nil {
		g.stopReq = make(chan struct{})
		g.hurry = make(chan struct{})
		g.readyCh = make(chan struct{})
	}
}

func (g *Group) logger() *slog.Logger {
	if g.Logger != nil {
		return g.Logger
	}
	return slog.Default()
}

func (g *Group) stopTimeout() time.Duration {
	if g.StopTimeout == 0 {
		return DefaultStopTimeout
	}
	return g.StopTimeout
}

// link resolves After names into dependency edges and rejects cycles.
func link(workers []*worker) error {
	byName := make(map[string]*worker, len(workers))
	for _, w := range workers {
		byName[w.name] = w
	}
	for _, w := range workers {
		for _, name := range w.opt.after {
			d, ok := byName[name]
			if !ok {
				return fmt.Errorf("crew: worker %q comes after %q, which was never added", w.name, name)
			}
			if slices.Contains(w.deps, d) {
				continue
			}
			w.deps = append(w.deps, d)
			d.dependents = append(d.dependents, w)
		}
	}
	// Depth-first search; a worker met again while on the current path closes
	// a cycle, which is reported as the path around it.
	const (
		unseen = iota
		onPath
		finished
	)
	mark := make(map[*worker]int, len(workers))
	var path []string
	var visit func(w *worker) error
	visit = func(w *worker) error {
		switch mark[w] {
		case onPath:
			i := slices.Index(path, w.name)
			return fmt.Errorf("crew: dependency cycle: %s -> %s", strings.Join(path[i:], " -> "), w.name)
		case finished:
			return nil
		}
		mark[w] = onPath
		path = append(path, w.name)
		for _, d := range w.deps {
			if err := visit(d); err != nil {
				return err
			}
		}
		path = path[:len(path)-1]
		mark[w] = finished
		return nil
	}
	for _, w := range workers {
		if err := visit(w); err != nil {
			return err
		}
	}
	return nil
}
