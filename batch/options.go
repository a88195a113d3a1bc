package batch

import (
	"fmt"
	"time"

	"golang.org/x/time/rate"

	"github.com/crewgo/crew/backoff"
)

// DefaultWorkers is how many items run at once when no [Workers] option is
// given. It is a fixed number rather than runtime.GOMAXPROCS(0) because batch
// work is usually I/O against some other service, and the load a batch puts
// on that service should not change with the size of the machine it happens
// to run on. For CPU-bound work, pass Workers(runtime.GOMAXPROCS(0)).
const DefaultWorkers = 8

// defaultRetryPolicy is the wait between attempts when [Retry] is given a nil
// policy: the same jittered exponential backoff that crew.Restart uses.
var defaultRetryPolicy = backoff.FullJitter(backoff.Exponential(100*time.Millisecond, 10*time.Second))

// Option configures one call of [Map], [Each], [MapSeq] or [EachSeq].
//
// Options are values: the same options may be passed to any number of calls,
// one after the other or at the same time. An option given an invalid
// argument (Workers(0), for example) does not panic; the call it is passed to
// reports the mistake instead, before it starts any item. When an option is
// given twice, the last one counts.
type Option func(*config)

type config struct {
	workers     int
	rateLimit   rate.Limit
	rateBurst   int
	limiter     *rate.Limiter // shared, from Limiter
	itemTimeout time.Duration
	attempts    int
	policy      backoff.Policy
	retryable   func(error) bool
	maxErrors   int // 0: no limit
	margin      time.Duration
	onProgress  func(Progress)
	err         error // the first invalid option
}

func newConfig(opts []Option) config {
	c := config{workers: DefaultWorkers, attempts: 1, rateLimit: rate.Inf}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	return c
}

func (c *config) fail(format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf("batch: "+format, args...)
	}
}

// Workers sets how many items run at once (at most n calls of fn are in
// progress at any moment); the default is [DefaultWorkers]. A slice batch
// never starts more goroutines than it has items. n must be at least 1.
func Workers(n int) Option {
	return func(c *config) {
		if n < 1 {
			c.fail("Workers(%d): need at least one worker", n)
			return
		}
		c.workers = n
	}
}

// Rate limits how often attempts start: on average r per second, with bursts
// of up to burst attempts at once (see [rate.NewLimiter]). Every attempt,
// retries included, waits for its turn before it calls fn, because every
// attempt is one more request to whatever the rate protects. Each call of
// Map, Each, MapSeq or EachSeq gets a limiter of its own; use [Limiter] to
// share one between batches.
//
// A wait that would end past the context's deadline (or within the [Margin]
// of it) is not waited out: the item is Skipped at once and the batch stops
// starting items, since every later item would wait even longer.
//
// r must be positive (rate.Inf means no limit) and burst at least 1.
func Rate(r rate.Limit, burst int) Option {
	return func(c *config) {
		switch {
		case r <= 0:
			c.fail("Rate(%v, %d): the rate must be positive (rate.Inf means no limit)", r, burst)
		case burst < 1 && r != rate.Inf:
			c.fail("Rate(%v, %d): the burst must be at least 1", r, burst)
		default:
			c.rateLimit, c.rateBurst, c.limiter = r, burst, nil
		}
	}
}

// Limiter is [Rate] with a limiter that the caller owns, so that several
// batches (or a batch and other code) share one budget of requests. The
// batch takes one token per attempt, as Rate does. l must not be nil.
func Limiter(l *rate.Limiter) Option {
	return func(c *config) {
		if l == nil {
			c.fail("Limiter(nil)")
			return
		}
		c.limiter, c.rateLimit = l, rate.Inf
	}
}

// ItemTimeout bounds each attempt: fn's context ends d after the attempt
// starts, with [context.DeadlineExceeded], and a [Retry] may then try again.
// It bounds attempts rather than whole items so that a slow first try does
// not eat the time of the retries. Zero means no timeout (the default); d
// must not be negative.
//
// fn must watch its context for the timeout to have any effect: the batch
// cannot stop a call that ignores it.
func ItemTimeout(d time.Duration) Option {
	return func(c *config) {
		if d < 0 {
			c.fail("ItemTimeout(%v): the timeout must not be negative", d)
			return
		}
		c.itemTimeout = d
	}
}

// Retry calls fn again when it fails, up to maxAttempts calls in all (the
// first try counts, so Retry(1, ...) never retries), waiting p(n) after the
// n-th failure. A nil p waits with jittered exponential backoff from 100ms to
// 10s, as [github.com/crewgo/crew.Restart] does.
//
// retryable decides which errors are worth another try; nil means every
// error except a panic (a bug, which a retry would only repeat). Whatever
// retryable says, an error that wraps [work.ErrPermanent] is never retried, and
// nothing is retried once the batch has stopped (the parent context ended,
// [StopOnError] or [MaxErrors] fired): a retry is a new start.
//
// A retry whose wait would end past the context's deadline (or within the
// [Margin] of it) is not attempted: the item fails at once with the error of
// its last attempt. [Outcome.Attempts] counts the calls made.
func Retry(maxAttempts int, p backoff.Policy, retryable func(error) bool) Option {
	return func(c *config) {
		if maxAttempts < 1 {
			c.fail("Retry(%d, ...): maxAttempts counts the first try and must be at least 1", maxAttempts)
			return
		}
		if p == nil {
			p = defaultRetryPolicy
		}
		c.attempts, c.policy, c.retryable = maxAttempts, p, retryable
	}
}

// StopOnError stops the batch at the first item that fails (after its
// retries): it is MaxErrors(1).
func StopOnError() Option { return MaxErrors(1) }

// MaxErrors stops the batch once n items have failed (after their retries).
// Stopping means that no item and no retry starts any more: the items not
// started yet are Skipped. The items already running are told to stop too,
// through their context, whose [context.Cause] says why, as errgroup does: a
// batch that is giving up should not wait for slow calls whose results it
// will not use. n must be at least 1.
func MaxErrors(n int) Option {
	return func(c *config) {
		if n < 1 {
			c.fail("MaxErrors(%d): n must be at least 1", n)
			return
		}
		c.maxErrors = n
	}
}

// Margin stops the batch from starting items, and retries, once the
// context's deadline is less than d away: the items not started are Skipped
// and the ones running are left to finish. This is the room a job keeps for
// itself at the end of its time (a Kubernetes CronJob's
// activeDeadlineSeconds, say) to finish its last calls, record what it did
// and exit before it is killed. A wait for the [Rate] limiter or for a retry
// also counts: one that would end within the margin does not start.
//
// Without a deadline on the context, Margin has no effect. Zero means no
// margin (the default); d must not be negative.
func Margin(d time.Duration) Option {
	return func(c *config) {
		if d < 0 {
			c.fail("Margin(%v): the margin must not be negative", d)
			return
		}
		c.margin = d
	}
}

// OnProgress calls f after every item that ran has finished, and once more at
// the end when items were skipped, so that the last call always carries the
// final counts. Calls are never concurrent and never overlap: f runs under a
// lock that the finishing items share, so it must be quick (update a gauge,
// print a line every so often) and must not call back into the batch. All
// calls have returned by the time the batch returns.
//
// A nil f means no callback.
func OnProgress(f func(Progress)) Option {
	return func(c *config) { c.onProgress = f }
}
