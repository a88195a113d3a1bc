package crew

import (
	"time"

	"github.com/crewgo/crew/backoff"
)

// Option configures one worker added with [Group.Add].
type Option func(*workerOptions)

type workerOptions struct {
	after      []string
	waitReady  bool
	oneShot    bool
	passPanics bool
	restart    *restartPolicy
}

type restartPolicy struct {
	delay  backoff.Policy
	max    int
	window time.Duration
}

// After makes the worker start only once every named worker is ready. When
// the group stops, the order reverses: the worker is cancelled first, and the
// workers it comes after are cancelled only once it has returned. Workers with
// no After relation between them start together and stop together.
//
// Naming a worker that is never added, or making a cycle, is an error that
// [Group.Run] returns before starting anything.
func After(names ...string) Option {
	return func(o *workerOptions) { o.after = append(o.after, names...) }
}

// WaitReady makes the worker ready only when it calls [MarkReady] with the
// context it was given, instead of as soon as it starts. Use it for workers
// that need time before they serve (a listener to open, a cache to warm):
// workers that come [After] it wait, and [Group.ReadyHandler] reports 503,
// until it is ready.
func WaitReady() Option {
	return func(o *workerOptions) { o.waitReady = true }
}

// OneShot marks a worker that is expected to finish, such as a migration. Its
// nil return does not stop the group. It becomes ready when it returns nil,
// or earlier if it calls [MarkReady], so that workers [After] it start once
// it has finished. An error still stops the group, unless [Restart] retries
// it.
func OneShot() Option {
	return func(o *workerOptions) { o.oneShot = true }
}

// Restart restarts the worker whenever it returns while the group is running,
// after waiting p(n) where n counts the restarts within window (nil p waits
// with jittered exponential backoff from 100ms to 10s). If the worker returns
// more than maxRestarts times within window, the group stops with the
// worker's last error and [WorkerError.Restarts] says how often it was
// restarted. A negative maxRestarts never gives up; a window of zero or less
// counts every restart since Run began.
//
// A OneShot worker is restarted only when it returns an error. An error that
// wraps [ErrPermanent] is never restarted. A panic is restarted like an error
// unless [PassPanics] is set.
func Restart(p backoff.Policy, maxRestarts int, window time.Duration) Option {
	if p == nil {
		p = backoff.FullJitter(backoff.Exponential(100*time.Millisecond, 10*time.Second))
	}
	return func(o *workerOptions) {
		o.restart = &restartPolicy{delay: p, max: maxRestarts, window: window}
	}
}

// PassPanics lets a panic in the worker crash the program, as it would
// outside a group, instead of being recovered into a *[PanicError]. Use it
// when a crash (and its core dump or crash report) is the better outcome.
func PassPanics() Option {
	return func(o *workerOptions) { o.passPanics = true }
}
