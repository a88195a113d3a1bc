// Package backoff provides retry delay policies shared by every crew package.
//
// A [Policy] maps an attempt number to a delay. Policies are plain functions:
// pure apart from the jitter variants' randomness, safe to call from many
// goroutines at once, and cheap enough to call on every retry. Build one from
// [Exponential] or [Constant] and, usually, spread it with [FullJitter] or
// [EqualJitter] so that many clients retrying the same failure do not all
// come back at the same instant.
//
// [Sleep] waits out a delay but never past a context's deadline, and [Clamp]
// shortens a delay to the time a context has left, so that the last wait of a
// retry loop leaves room for a final attempt instead of overrunning the
// deadline it was given.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy returns how long to wait before the next attempt, given the number
// of attempts that have failed so far (1 after the first failure). A Policy
// must be safe for concurrent use and must not return a negative duration;
// callers treat attempt numbers below 1 as 1.
type Policy func(attempt int) time.Duration

// Exponential returns a Policy that waits min after the first failure and
// doubles the wait after each further failure, never exceeding max. If max is
// less than min, every wait is min. A min of zero or less waits zero.
func Exponential(min, max time.Duration) Policy {
	if min <= 0 {
		return Constant(0)
	}
	if max < min {
		max = min
	}
	return func(attempt int) time.Duration {
		if attempt < 1 {
			attempt = 1
		}
		d := min
		for i := 1; i < attempt; i++ {
			if d >= max/2 {
				return max
			}
			d *= 2
		}
		return d
	}
}

// Constant returns a Policy that always waits d (zero if d is negative).
func Constant(d time.Duration) Policy {
	d = max(d, 0)
	return func(int) time.Duration { return d }
}

// FullJitter returns a Policy whose wait is drawn uniformly from [0, p(n)].
// It spreads retries the most and suits many clients hitting one server.
func FullJitter(p Policy) Policy {
	return func(attempt int) time.Duration {
		return random(p(attempt))
	}
}

// EqualJitter returns a Policy whose wait is drawn uniformly from
// [p(n)/2, p(n)]: half of the delay is kept, half is spread. It suits callers
// that want a lower bound on the wait.
func EqualJitter(p Policy) Policy {
	return func(attempt int) time.Duration {
		d := p(attempt)
		return d/2 + random(d-d/2)
	}
}

// random returns a duration drawn uniformly from [0, d].
func random(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d) + 1))
}

// Clamp returns d shortened so that a wait of that length ends no later than
// ctx's deadline. Without a deadline it returns d; with a deadline already
// passed it returns 0. It never returns a negative duration.
func Clamp(ctx context.Context, d time.Duration) time.Duration {
	d = max(d, 0)
	if deadline, ok := ctx.Deadline(); ok {
		d = min(d, max(time.Until(deadline), 0))
	}
	return d
}

// Sleep waits for d, or until ctx is done, whichever comes first. If ctx has
// a deadline that falls before d has elapsed, Sleep returns at once with
// [context.DeadlineExceeded] instead of waiting for a deadline it cannot
// outlive. It returns nil after a full wait and context.Cause(ctx) when ctx
// ends first (or had already ended). To use up the time that is left
// instead, wait for [Clamp](ctx, d) with a timer of your own.
func Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < d {
		return context.DeadlineExceeded
	}
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
