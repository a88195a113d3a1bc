package crew

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/crewgo/crew/work"
)

// EveryOption configures a worker made by [Every].
type EveryOption func(*every)

// RunAtStart makes the first run happen as soon as the worker starts, instead
// of one interval later. The following runs keep to the interval counted from
// that start.
func RunAtStart() EveryOption {
	return func(e *every) { e.atStart = true }
}

// Jitter delays each run by a random duration in [0, max) after its tick, so
// that many replicas of a service started together do not all run at the
// same moment. The ticks themselves stay on the interval: jitter does not
// accumulate. Jitter panics if max is negative; zero means no jitter.
func Jitter(max time.Duration) EveryOption {
	if max < 0 {
		panic("crew: negative Jitter")
	}
	return func(e *every) { e.jitter = max }
}

// SkipMissed skips the ticks that fall while a run is still in progress: the
// next run waits for the first tick after the run returns. Without it, a run
// that overruns its interval is followed at once by the run it delayed.
func SkipMissed() EveryOption {
	return func(e *every) { e.skipMissed = true }
}

// ContinueOnError makes a run's error a log line instead of the worker's
// end: the error is logged to logger at level Error (nil: slog.Default()) and
// the worker waits for the next tick. An error that wraps [ErrPermanent] and
// a panic still end the worker.
func ContinueOnError(logger *slog.Logger) EveryOption {
	return func(e *every) {
		e.continueOnError = true
		e.log = logger
	}
}

// Every returns a Worker that calls fn once per interval until it is stopped:
// for periodic work inside a service, such as refreshing a cache or
// reconciling state, that should start, stop and fail with the rest of the
// service.
//
// Runs never overlap: fn runs on the worker's goroutine, one call at a time.
// The ticks are counted from the worker's start (the first run comes one
// interval after it, or at once with [RunAtStart]); a run that is still in
// progress when the next tick comes delays that tick's run until it returns,
// and the ticks it overran beyond that one are dropped, as with time.Ticker.
// [SkipMissed] drops the overrun tick too, and [Jitter] spreads runs across
// replicas.
//
// When ctx ends between runs, Run returns nil at once. A run in progress is
// not cancelled with ctx: fn's context is [DrainContext](ctx), so that inside
// a [Group] the run finishes within the group's stop budget and its context
// ends only at the drain deadline; then Run returns without starting another
// run. Outside a group nothing ends a run in progress but fn itself. The
// context passed to fn carries ctx's values.
//
// An error from fn ends the worker: Run returns it, which inside a Group
// stops the group (or restarts the worker, with the [Restart] option), as
// any worker's error does; an error that wraps [ErrPermanent] is not
// restarted. With [ContinueOnError] the error is logged instead and the
// worker waits for the next tick. A panic in fn is not
// recovered by Every: inside a Group it becomes the worker's *[PanicError].
//
// Every panics if interval is not positive, as time.NewTicker does, or if fn
// is nil.
func Every(interval time.Duration, fn func(ctx context.Context) error, opts ...EveryOption) Worker {
	if interval <= 0 {
		panic("crew: non-positive interval for Every")
	}
	if fn == nil {
		panic("crew: nil function for Every")
	}
	e := &every{interval: interval, fn: fn}
	for _, o := range opts {
		o(e)
	}
	return e
}

// every is the Worker that Every returns. Its fields are set once, by Every.
type every struct {
	interval        time.Duration
	fn              func(ctx context.Context) error
	atStart         bool
	jitter          time.Duration
	skipMissed      bool
	continueOnError bool
	log             *slog.Logger // nil: slog.Default()
}

// Run calls fn at each tick until ctx ends or fn fails; see [Every].
func (e *every) Run(ctx context.Context) error {
	tick := time.Now()
	if !e.atStart {
		tick = tick.Add(e.interval)
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		timer.Reset(time.Until(tick.Add(e.delay())))
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
			if ctx.Err() != nil { // both were ready: the stop wins
				return nil
			}
		}
		if err := e.fn(work.DrainContext(ctx)); err != nil {
			if !e.continueOnError || errors.Is(err, work.ErrPermanent) {
				return err
			}
			e.logger().ErrorContext(ctx, "crew: periodic run failed", "err", err)
		}
		if ctx.Err() != nil {
			return nil
		}
		tick = e.next(tick, time.Now())
	}
}

// logger returns the ContinueOnError logger, or the default one at the time
// of the error.
func (e *every) logger() *slog.Logger {
	if e.log != nil {
		return e.log
	}
	return slog.Default()
}

// delay returns the jitter for one run.
func (e *every) delay() time.Duration {
	if e.jitter <= 0 {
		return 0
	}
	return rand.N(e.jitter)
}

// next returns the tick of the run after the one that began at tick and
// returned at end. A tick at or before end was overrun: the last such tick
// runs at once, unless SkipMissed drops it too.
func (e *every) next(tick, end time.Time) time.Time {
	next := tick.Add(e.interval)
	if next.After(end) {
		return next
	}
	last := next.Add(end.Sub(next) / e.interval * e.interval)
	if e.skipMissed {
		return last.Add(e.interval)
	}
	return last
}
