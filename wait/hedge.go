package wait

import (
	"context"
	"time"
)

// maxHedgeBuffer bounds the buffer of a Hedge's result channel; attempts
// beyond it wait for the caller to receive their outcome.
const maxHedgeBuffer = 64

// Hedge calls fn(ctx, 0), and starts another attempt, fn(ctx, 1) and so on,
// on a goroutine of its own, whenever the latest attempt has been running for
// the delay of [HedgeAfter] without an answer, and at once whenever an attempt
// fails, until maxHedges attempts have been started beyond the first (by
// default one, after one second). It returns the value of the first attempt to
// succeed. A fast failure never wins: Hedge waits for a success as long as an
// attempt is running.
//
// Every attempt has its own context derived from ctx. The rules are those of
// [First]: once one succeeds, the others are cancelled with cause [ErrLost]
// and awaited, their errors are not reported and their values go to
// [Discard]; the winner's context is not cancelled, so that a response body
// stays readable after Hedge returns, and it ends with ctx. If every attempt
// fails, Hedge returns the errors.Join of their errors in attempt order, each
// an *[AttemptError], after the reason the call was cut short, if it was
// (context.Cause(ctx), [ErrMaxWait] or a [Terminal] error). A panic in fn
// cancels the other attempts and, once they have returned, panics in the
// caller's goroutine, unless [PanicAsError] is given.
//
// Hedge returns [ErrNilTask] at once when fn is nil, and context.Cause(ctx)
// when ctx has already ended. Options: HedgeAfter, MaxWait, AttemptTimeout
// (per attempt), Terminal, Discard and PanicAsError; Delay is ignored.
func Hedge[T any](ctx context.Context, fn func(ctx context.Context, attempt int) (T, error), opts ...Option) (T, error) {
	var zero T
	cfg := newConfig(opts)
	discard := discardFunc[T](cfg, "Hedge")
	if fn == nil {
		return zero, ErrNilTask
	}
	if ctx.Err() != nil {
		return zero, context.Cause(ctx)
	}
	attempts := 1 + cfg.maxHedges
	r := newRace(ctx, cfg, min(attempts, maxHedgeBuffer), discard, fn, attemptError)
	r.start(0)
	var tick <-chan time.Time
	var timer *time.Timer
	if attempts > 1 {
		timer = time.NewTimer(cfg.hedgeDelay)
		defer timer.Stop()
		tick = timer.C
	}
	// next starts the next attempt, if there is one to start, and restarts
	// the hedge delay from now.
	next := func() {
		if r.stopped || len(r.cancels) >= attempts {
			return
		}
		r.start(len(r.cancels))
		if len(r.cancels) < attempts {
			timer.Reset(cfg.hedgeDelay)
		} else {
			timer.Stop()
			tick = nil
		}
	}
	for r.running > 0 {
		failed, ticked := r.step(tick)
		if failed || ticked {
			next()
		}
	}
	_, v, err := r.finish()
	return v, err
}
