package wait

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/crewgo/crew/work"
)

// Until calls probe, on the caller's goroutine, until state says the wait is
// over, and returns the value of the probe that ended it.
//
// After each probe, state(value, err) decides: [Done] returns the value with
// a nil error; [Fail] returns at once with the probe's error (or [ErrFailed]),
// wrapped in an *[AttemptError]; [Retry] sleeps for the [Delay] policy's next
// delay (by default jittered exponential from 100ms to 5s) and probes again.
// A nil state means Done when the probe returns a nil error and Retry
// otherwise. Errors for which [Terminal] returns true fail at once instead of
// being retried. Any State other than the three fails the wait.
//
// [MaxWait] bounds the whole wait and [AttemptTimeout] each probe. Until
// never sleeps past the deadline (MaxWait's or ctx's, whichever comes first):
// when the next delay would reach it, the sleep is cut short and one final
// probe is made with the time left, half of it or AttemptTimeout, whichever is
// less; Until gives up after that probe, or as soon as the deadline passes.
// Then it returns errors.Join(ErrMaxWait, lastErr), where lastErr is the last
// error a probe returned, as an *AttemptError: errors.Is reports true for
// ErrMaxWait, for context.DeadlineExceeded and for that error. When ctx ends
// first, Until returns errors.Join(context.Cause(ctx), lastErr) instead (its
// own deadline gives context.DeadlineExceeded). A probe cut short by the
// end of the wait is not a failure, whatever state says, and its error (the
// context's, as a rule) is not kept as lastErr. Without MaxWait
// and without a deadline on ctx, Until polls until ctx is cancelled.
//
// The context of the probe that ended the wait with Done is not cancelled
// when Until returns, so a value that depends on it stays usable; the
// deadlines of MaxWait and AttemptTimeout still apply to it. Values that
// probes returned with a nil error and that Until does not return go to
// [Discard].
//
// A panic in probe is recovered into a *work.PanicError and re-raised in the
// caller's goroutine, or, with [PanicAsError], ends the wait with it as the
// error. It is not retried. A panic in state is not recovered.
//
// Until returns [ErrNilTask] at once when probe is nil, and context.Cause(ctx)
// without probing when ctx has already ended. Options: MaxWait,
// AttemptTimeout, Delay, Terminal, Discard and PanicAsError; HedgeAfter is
// ignored.
func Until[T any](ctx context.Context, probe Task[T], state func(T, error) State, opts ...Option) (T, error) {
	var zero T
	cfg := newConfig(opts)
	discard := discardFunc[T](cfg, "Until")
	if probe == nil {
		return zero, ErrNilTask
	}
	if ctx.Err() != nil {
		return zero, context.Cause(ctx)
	}
	if state == nil {
		state = succeeded[T]
	}
	delay := cfg.delay
	if delay == nil {
		delay = defaultDelay
	}

	wctx := ctx // the whole wait: ctx, bounded by MaxWait
	maxWaitBinds := false
	kept := false // the wait ended with Done: its contexts stay as they are
	if cfg.maxWait > 0 {
		parentDeadline, ok := ctx.Deadline()
		maxWaitBinds = !ok || time.Now().Add(cfg.maxWait).Before(parentDeadline)
		var endWait context.CancelFunc
		wctx, endWait = context.WithTimeoutCause(ctx, cfg.maxWait, ErrMaxWait)
		defer func() {
			// The value that ended the wait may depend on its context:
			// leave its deadline to expire on its own.
			if !kept {
				endWait()
			}
		}()
	}

	var lastErr error
	final := false
	for attempt := 0; ; attempt++ {
		v, panicked, endAttempt, err := try(wctx, probe, cfg.attemptTimeout)
		if panicked != nil {
			endAttempt()
			if !cfg.panicAsError {
				panic(panicked)
			}
			return zero, &AttemptError{Attempt: attempt, Err: panicked}
		}
		s := state(v, err)
		if s == Retry && err != nil && cfg.terminal != nil && cfg.terminal(err) {
			s = Fail
		}
		if s == Fail && err != nil && wctx.Err() != nil {
			s = Retry // the probe failed because the wait ended: say why it ended
		}
		if s == Done {
			kept = true
			return v, nil
		}
		endAttempt()
		if err == nil && discard != nil {
			discard(v)
		}
		switch s {
		case Retry:
		case Fail:
			if err == nil {
				err = ErrFailed
			}
			return zero, &AttemptError{Attempt: attempt, Err: err}
		default:
			return zero, &AttemptError{Attempt: attempt, Err: fmt.Errorf("wait: state returned an invalid %v", s)}
		}
		if err != nil && wctx.Err() == nil {
			lastErr = &AttemptError{Attempt: attempt, Err: err}
		}
		if final || wctx.Err() != nil {
			return zero, gaveUp(wctx, maxWaitBinds, lastErr)
		}

		d := max(delay(attempt+1), 0)
		if deadline, ok := wctx.Deadline(); ok {
			left := time.Until(deadline)
			if left <= 0 {
				return zero, gaveUp(wctx, maxWaitBinds, lastErr)
			}
			if d >= left {
				reserve := left / 2
				if cfg.attemptTimeout > 0 {
					reserve = min(cfg.attemptTimeout, left)
				}
				d, final = left-reserve, true
			}
		}
		if !sleep(wctx, d) {
			return zero, gaveUp(wctx, maxWaitBinds, lastErr)
		}
	}
}

// succeeded is the state function of a nil state: done once the probe
// returns no error.
func succeeded[T any](_ T, err error) State {
	if err != nil {
		return Retry
	}
	return Done
}

// try calls probe once, with AttemptTimeout if set, and recovers a panic.
// endAttempt releases the attempt's deadline; Until leaves it to expire when
// the probe ended the wait.
func try[T any](ctx context.Context, probe Task[T], timeout time.Duration) (v T, panicked *work.PanicError, endAttempt context.CancelFunc, err error) {
	endAttempt = func() {}
	actx := ctx
	if timeout > 0 {
		actx, endAttempt = context.WithTimeoutCause(ctx, timeout, ErrAttemptTimeout)
	}
	panicked = work.Catch(func() { v, err = probe(actx) })
	if err != nil {
		err = timeoutCause(actx, err, timeout > 0)
	}
	return v, panicked, endAttempt, err
}

// sleep waits for d, or until ctx ends; it reports whether it waited d.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// gaveUp returns the error of a wait that ran out of time, or whose ctx
// ended: why, joined with the last error a probe returned.
func gaveUp(wctx context.Context, maxWaitBinds bool, lastErr error) error {
	var why error
	switch {
	case wctx.Err() != nil:
		why = context.Cause(wctx) // ErrMaxWait, or the cause of ctx
	case maxWaitBinds:
		why = ErrMaxWait // no probe can start before MaxWait expires
	default:
		why = context.DeadlineExceeded // nor before the deadline of ctx
	}
	if lastErr == nil {
		return why
	}
	return errors.Join(why, lastErr)
}
