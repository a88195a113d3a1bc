package wait

import (
	"context"
	"runtime"
	"sync"
	"weak"
)

// link is the context between the caller's context and the contexts of the
// tasks of First and Hedge.
//
// The winner's context must outlive the call (its value may be a response
// whose body is read through it) and still end when the caller's context
// ends. A plain child of the caller's context would do that, but it stays
// registered with its parent until the parent ends; under a long-lived parent
// (a server's root context) every call would leave one behind, a leak that
// grows with the number of calls. So the tasks' contexts hang from a link,
// and the link is tied to the parent only loosely:
//
//   - while the call runs, the call watches the parent itself and cancels the
//     link when the parent ends (see race.step);
//   - when the call returns a winner, keep registers a callback with the
//     parent that reaches the link through a weak pointer, and a cleanup
//     that unregisters the callback once the link is unreachable, that is
//     once nothing holds the winner's context or a context derived from it.
//
// A link mirrors its parent: Deadline and Value come from the parent (Value
// includes the lookup through which context.Cause finds the parent's cause),
// and once cancelled its Err is the parent's. It implements the AfterFunc
// method through which the context package attaches children to a context it
// did not create, so its children need no goroutine.
type link struct {
	context.Context // the parent: Deadline and Value

	done chan struct{}
	mu   sync.Mutex
	err  error
	fns  []func() // children's cancel functions; nil once run or stopped
}

func newLink(parent context.Context) *link {
	return &link{Context: parent, done: make(chan struct{})}
}

func (l *link) Done() <-chan struct{} { return l.done }

func (l *link) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// AfterFunc arranges for f to run when l is cancelled. The context package
// calls it for every context derived from l, with f cancelling that context.
func (l *link) AfterFunc(f func()) (stop func() bool) {
	l.mu.Lock()
	if l.err != nil {
		l.mu.Unlock()
		// The context package calls AfterFunc while it holds the lock of the
		// context f cancels, so f cannot run on this goroutine.
		go f()
		return func() bool { return false }
	}
	i := len(l.fns)
	l.fns = append(l.fns, f)
	l.mu.Unlock()
	return func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		if i >= len(l.fns) || l.fns[i] == nil {
			return false
		}
		l.fns[i] = nil
		return true
	}
}

// cancel ends l with err (the parent's Err) and cancels every context derived
// from it. Only the first call has an effect.
func (l *link) cancel(err error) {
	l.mu.Lock()
	if l.err != nil {
		l.mu.Unlock()
		return
	}
	l.err = err
	fns := l.fns
	l.fns = nil
	close(l.done)
	l.mu.Unlock()
	for _, f := range fns {
		if f != nil {
			f()
		}
	}
}

// keep makes l follow its parent after the call has returned, for as long as
// anything can reach l, and lets the parent forget l when nothing can.
func (l *link) keep() {
	parent := l.Context
	w := weak.Make(l)
	// The callback and the cleanup's argument must not reach l, or l would
	// stay reachable from the parent for ever.
	stop := context.AfterFunc(parent, func() {
		if l := w.Value(); l != nil {
			l.cancel(parent.Err())
		}
	})
	runtime.AddCleanup(l, func(stop func() bool) { stop() }, stop)
}
