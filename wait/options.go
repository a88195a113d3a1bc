package wait

import (
	"fmt"
	"reflect"
	"time"

	"github.com/crewgo/crew/backoff"
)

// Option configures one call of [First], [Hedge] or [Until]. The three share
// one Option type; an option that does not apply to a function (Delay to
// First, HedgeAfter to Until) is ignored by it, as the option's comment says.
// A nil Option is ignored. When an option is given twice, the last one wins.
type Option func(*config)

type config struct {
	maxWait        time.Duration
	attemptTimeout time.Duration
	delay          backoff.Policy
	hedgeDelay     time.Duration
	maxHedges      int
	terminal       func(error) bool
	discard        any // a func(T), checked against T when the call starts
	panicAsError   bool
}

// Defaults of the options that have one.
const (
	defaultHedgeDelay = time.Second
	defaultMaxHedges  = 1
)

// defaultDelay is Until's delay without a Delay option: exponential from
// 100ms to 5s, with equal jitter so that every wait is at least half of that.
var defaultDelay = backoff.EqualJitter(backoff.Exponential(100*time.Millisecond, 5*time.Second))

func newConfig(opts []Option) *config {
	c := &config{hedgeDelay: defaultHedgeDelay, maxHedges: defaultMaxHedges}
	for _, o := range opts {
		if o != nil {
			o(c)
		}
	}
	return c
}

// MaxWait bounds the whole call to d: when d has passed, every running task
// is cancelled (its context ends with context.DeadlineExceeded) and the call
// returns an error that joins [ErrMaxWait] with the failures seen so far (the
// last probe error, for Until). The deadline is the context's, so tasks see it
// through ctx.Deadline, and it keeps applying to the context of a winner after
// the call has returned. A ctx deadline that comes earlier still applies. Zero
// or a negative d means no limit other than ctx: the default. Applies to
// First, Hedge and Until.
func MaxWait(d time.Duration) Option {
	return func(c *config) { c.maxWait = max(d, 0) }
}

// AttemptTimeout bounds each task of First, each attempt of Hedge and each
// probe of Until to d, so that one hung call cannot use up the whole wait:
// its context ends with context.DeadlineExceeded and cause
// [ErrAttemptTimeout], and the attempt counts as failed (Hedge then starts the
// next attempt at once; Until retries). Like http.Client.Timeout, the deadline
// keeps applying to a value that depends on the context after the call has
// returned, such as a response body. Zero or a negative d means no limit: the
// default.
func AttemptTimeout(d time.Duration) Option {
	return func(c *config) { c.attemptTimeout = max(d, 0) }
}

// Delay sets how long [Until] waits after the n-th probe that did not end the
// wait, before probing again: p(n), with n counting from 1. Build p from
// [backoff.Exponential] and spread it with [backoff.EqualJitter] or
// [backoff.FullJitter] so that many waiters do not probe in step. A nil p, or
// no Delay option, waits EqualJitter(Exponential(100ms, 5s)). First and Hedge
// ignore it.
func Delay(p backoff.Policy) Option {
	return func(c *config) { c.delay = p }
}

// HedgeAfter makes [Hedge] start a new attempt whenever the latest one has
// been running for d without an answer, and at once whenever an attempt
// fails, until maxHedges attempts have been started beyond the first. A d of
// zero or less starts every attempt at once; a maxHedges of zero or less
// makes a single attempt. Without HedgeAfter, Hedge behaves as with
// HedgeAfter(time.Second, 1); set d from the latency you measure (the 95th
// percentile is a common choice). First and Until ignore it.
func HedgeAfter(d time.Duration, maxHedges int) Option {
	return func(c *config) {
		c.hedgeDelay = max(d, 0)
		c.maxHedges = max(maxHedges, 0)
	}
}

// Terminal marks errors that retrying cannot fix, such as AccessDenied or a
// validation error. In First and Hedge, the first error for which terminal
// returns true cancels every other task, and the call returns that error
// first, followed by the other failures in task order. In Until, a terminal error
// ends the wait at once when the state function would retry it (a state
// function that says Done or Fail for an error still decides). terminal runs
// on the task's goroutine and must be safe to call concurrently; a panic in it
// is a panic of the task. It is never called with a nil error.
func Terminal(terminal func(error) bool) Option {
	return func(c *config) { c.terminal = terminal }
}

// Discard receives every value that a task returned with a nil error and that
// the call does not return: in First and Hedge, the values of losers that
// succeeded after the winner (or of every success, when the call fails or
// re-panics); in Until, the value of every probe that did not end the wait
// with Done. Use it to close what such values hold, such as a response body.
// discard runs on the caller's goroutine, once every task has returned (Until
// calls it after each probe), in the order the values arrived.
//
// T must be exactly the value type of the call: the call panics when it is
// given Discard for another type, before it starts any task. A nil discard is
// ignored.
func Discard[T any](discard func(T)) Option {
	return func(c *config) {
		if discard == nil {
			c.discard = nil
			return
		}
		c.discard = discard
	}
}

// PanicAsError makes a panic in a task an error instead of a panic in the
// caller. The task's error is then a *work.PanicError holding the value and
// the stack, and, as by default, the panic cancels every other task at once.
// Without PanicAsError, the call waits for every task to return and then
// panics with that *work.PanicError in the caller's goroutine.
func PanicAsError() Option {
	return func(c *config) { c.panicAsError = true }
}

// discardFunc returns the Discard callback for values of type T, or nil.
func discardFunc[T any](c *config, fn string) func(T) {
	if c.discard == nil {
		return nil
	}
	f, ok := c.discard.(func(T))
	if !ok {
		panic(fmt.Sprintf("wait: %s for values of type %v was given Discard(%T)", fn, reflect.TypeFor[T](), c.discard))
	}
	return f
}
