// Package wait waits for the first of several attempts to succeed, and for a
// condition to become true, without leaking goroutines, without losing the
// error that explains a failure, and without cancelling the result it
// returns.
//
// [First] runs tasks side by side and returns the first success: waiting for
// the first of N instances to be ready, asking several replicas and taking
// the fastest answer. [Hedge] does the same with copies of one request that
// it starts one after another, only when the earlier ones are slow or fail,
// which cuts tail latency at the price of a few extra requests. [Until] polls
// a probe with backoff until a state function says Done or Fail, as the AWS
// SDK's waiters do.
//
//	win, err := wait.First(ctx, []wait.Task[string]{
//		func(ctx context.Context) (string, error) { return waitReady(ctx, "i-0") },
//		func(ctx context.Context) (string, error) { return waitReady(ctx, "i-1") },
//	})
//
// # What the package gets right
//
// Every task gets its own context, derived from the caller's, so a forgotten
// context.TODO cannot cut a task off from cancellation. When a task wins,
// the others are cancelled at once and awaited: when First returns, every
// goroutine it started has returned. A failure never wins, however fast. The
// winner's context is not cancelled when the call returns, so a response body
// can still be read; it is not leaked either (see [First]).
//
// When everything fails, the error says why: every task's error, in task
// order, each with its index ([TaskError], [AttemptError]), after the reason
// the call was cut short. Errors that tasks return because wait cancelled
// them are not failures and are left out. A wait that times out returns
// errors.Join([ErrMaxWait], lastErr): it matches context.DeadlineExceeded
// and keeps the last error of the probe. [AttemptTimeout] stops one hung
// attempt from using up the whole wait, and [Terminal] stops retrying errors
// that retrying cannot fix.
//
// A panic in a task is recovered into a *work.PanicError, cancels the other
// tasks at once, and is raised again in the caller's goroutine once they have
// all returned, with the task's stack in its message; [PanicAsError] returns
// it as an error instead.
//
// # Options
//
// One [Option] type serves the three functions. Each function's comment
// lists the options it uses; it ignores the others. [MaxWait],
// [AttemptTimeout], [Terminal], [Discard] and [PanicAsError] apply to all
// three, [Delay] to Until only and [HedgeAfter] to Hedge only.
//
// # Comparisons
//
// golang.org/x/sync/errgroup cancels on the first error, not on the first
// success, and cancels every context, the winner's included, when Wait
// returns; use it when every task must succeed. Hedging libraries have
// repeatedly cancelled the winner's context before its body was read
// (failsafe-go#65, hedgedhttp#7, and resty until #1197, which ties the
// context to the body: an HTTP-only remedy). The AWS SDK's waiters retry every
// error, AccessDenied included, until their maximum wait and then report only
// that they timed out (aws-sdk-go-v2#2080, #2937); cenkalti/backoff dropped
// the last error on timeout until #182, and now joins it as Until does.
// Prefer those libraries for what wait does not do: retry budgets shared
// across calls, circuit breakers, or waiters generated from a service model.
package wait
