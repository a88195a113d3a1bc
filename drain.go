package crew

import (
	"context"
	"time"

	"github.com/crewgo/crew/work"
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
// which never ends. It is [work.DrainContext]: packages that must not import
// the supervisor, such as queue, honour a group's drain through it.
func DrainContext(ctx context.Context) context.Context {
	return work.DrainContext(ctx)
}

// withInstance returns the context a worker's start runs with: it carries
// inst, for MarkReady, and the group's drain, for DrainContext.
func withInstance(ctx context.Context, inst *instance) context.Context {
	ctx = context.WithValue(ctx, instanceKey{}, inst)
	return work.WithDrain(ctx, groupDrain{inst.s})
}

// groupDrain is a group's drain seen as a context: it ends at the drain
// deadline, or when Run returns. Its AfterFunc method lets contexts derived
// from a DrainContext watch it without a goroutine of their own.
type groupDrain struct{ s *supervisor }

func (d groupDrain) Deadline() (time.Time, bool) { return d.s.deadline() }
func (d groupDrain) Done() <-chan struct{}       { return d.s.drain.Done() }
func (d groupDrain) Value(any) any               { return nil }

func (d groupDrain) Err() error {
	if d.s.drain.Err() != nil {
		return context.DeadlineExceeded
	}
	return nil
}

func (d groupDrain) AfterFunc(f func()) (stop func() bool) {
	return context.AfterFunc(d.s.drain, f)
}
