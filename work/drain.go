package work

import (
	"context"
	"time"
)

type drainKey struct{}

// WithDrain returns a copy of ctx that carries drain: [DrainContext] of the
// returned context, or of any context derived from it, ends when drain ends
// and reports drain's Deadline. A supervisor calls it on the context it hands
// each worker, with a context that ends when the worker's time to finish its
// work in progress runs out. The innermost WithDrain wins.
//
// For contexts derived from a DrainContext to need no goroutine of their own,
// drain should be a context the context package can watch without one: one of
// its own, or one with an AfterFunc(func()) (stop func() bool) method.
func WithDrain(ctx, drain context.Context) context.Context {
	return context.WithValue(ctx, drainKey{}, drain)
}

// DrainContext returns a context for finishing work after ctx has been
// cancelled: it keeps ctx's values but not its cancellation, and it ends with
// the drain that ctx's supervisor attached through [WithDrain] instead. Pass
// it to the calls that finish work in progress, such as http.Server.Shutdown
// or the last acknowledgements of a queue consumer, so that they never
// outlive the supervisor's stop budget.
//
// Its Deadline, Done and Err are the drain's. Without a drain, as outside any
// supervisor, DrainContext returns context.WithoutCancel(ctx), which never
// ends. DrainContext never blocks and may be called from any goroutine.
func DrainContext(ctx context.Context) context.Context {
	base := context.WithoutCancel(ctx)
	drain, _ := ctx.Value(drainKey{}).(context.Context)
	if drain == nil {
		return base
	}
	return drainContext{Context: base, drain: drain}
}

// drainContext carries the values of a worker's context and ends with its
// drain. It implements the AfterFunc method that the context package looks
// for, so that contexts derived from it need no goroutine of their own.
type drainContext struct {
	context.Context // values only: WithoutCancel hides the worker's cancellation
	drain           context.Context
}

func (c drainContext) Deadline() (time.Time, bool) { return c.drain.Deadline() }
func (c drainContext) Done() <-chan struct{}       { return c.drain.Done() }
func (c drainContext) Err() error                  { return c.drain.Err() }

func (c drainContext) AfterFunc(f func()) (stop func() bool) {
	return context.AfterFunc(c.drain, f)
}

func (c drainContext) String() string { return "work.DrainContext" }
