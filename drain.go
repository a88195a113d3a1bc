package crew

import (
	"context"
	"time"
)

// MarkReady marks the worker running with ctx as ready. Call it from a worker
// added with [WaitReady] once it serves; workers that come [After] it start
// then, and [Group.ReadyHandler] counts it as ready. A nested *Group calls it
// for itself once all its workers are ready.
//
// MarkReady returns at once. It does nothing when ctx does not belong to a
// running worker, when the worker is ready already, or after the worker has
// returned.
func MarkReady(ctx context.Context) {
	inst, _ := ctx.Value(instanceKey{}).(*instance)
	if inst == nil {
		return
	}
	inst.ready.Do(func() {
		inst.s.send(message{kind: msgReady, w: inst.w, gen: inst.gen})
	})
}

// DrainContext returns a context for finishing work after ctx has been
// cancelled: it keeps ctx's values but not its cancellation, and it ends at
// the group's stop deadline instead (a little before it, to leave the worker
// time to return). Pass it to the calls that drain, such as
// http.Server.Shutdown, so that a drain never outlives the group's
// StopTimeout.
//
// Its Deadline is known once the group has begun cancelling workers; its
// Err is context.DeadlineExceeded once the deadline has passed or Run has
// returned. Outside a group, DrainContext returns context.WithoutCancel(ctx),
// which never ends.
func DrainContext(ctx context.Context) context.Context {
	base := context.WithoutCancel(ctx)
	inst, _ := ctx.Value(instanceKey{}).(*instance)
	if inst == nil {
		return base
	}
	return drainContext{Context: base, s: inst.s}
}

// drainContext carries the values of a worker's context and ends with its
// group's drain. It implements the AfterFunc method that the context package
// looks for, so that contexts derived from it need no goroutine of their own.
type drainContext struct {
	context.Context // values only: WithoutCancel hides the worker's cancellation
	s               *supervisor
}

func (c drainContext) Deadline() (time.Time, bool) { return c.s.deadline() }
func (c drainContext) Done() <-chan struct{}       { return c.s.drain.Done() }

func (c drainContext) Err() error {
	if c.s.drain.Err() != nil {
		return context.DeadlineExceeded
	}
	return nil
}

func (c drainContext) AfterFunc(f func()) (stop func() bool) {
	return context.AfterFunc(c.s.drain, f)
}

func (c drainContext) String() string { return "crew.DrainContext" }
