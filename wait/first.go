package wait

import "context"

// First runs every task at once, each on its own goroutine with its own
// context derived from ctx, and returns the value of the first task to
// succeed (return a nil error) with its index. As soon as one succeeds, the
// context of every other task is cancelled, with cause [ErrLost], and First
// waits for them to return: no goroutine outlives the call. Their errors are
// not failures and are not reported; a value one of them still returns goes
// to [Discard].
//
// The winner's context is not cancelled when First returns, so a value that
// depends on it, such as an *http.Response whose body is still to be read,
// stays usable. It still ends when ctx ends, and at the deadlines that
// [MaxWait] and [AttemptTimeout] set. It is released once ctx ends or nothing
// refers to it any more, whichever comes first, so a long-lived ctx does not
// collect one context per call (a MaxWait or AttemptTimeout deadline holds
// it until the deadline passes).
//
// If every task fails, First returns the errors.Join of their errors in task
// order, each a *[TaskError] carrying the task's index. If the call was cut
// short, the reason comes first: context.Cause(ctx) when ctx ended,
// [ErrMaxWait] when MaxWait expired, or the first error that [Terminal] said
// was terminal. A lone error is returned as it is, unjoined. On error, the
// returned Win is the zero value with Index -1.
//
// A panic in a task is recovered into a *work.PanicError that cancels every
// other task at once; once they have all returned, First panics with it in
// the caller's goroutine (its message holds the task's stack), or, with
// [PanicAsError], returns it as the task's error.
//
// First returns [ErrNoTasks] at once, without starting anything, when tasks
// is empty, and context.Cause(ctx) when ctx has already ended. A nil task
// fails with [ErrNilTask] without running. Options: MaxWait, AttemptTimeout
// (per task), Terminal, Discard and PanicAsError; Delay and HedgeAfter are
// ignored.
func First[T any](ctx context.Context, tasks []Task[T], opts ...Option) (Win[T], error) {
	cfg := newConfig(opts)
	discard := discardFunc[T](cfg, "First")
	if len(tasks) == 0 {
		return Win[T]{Index: -1}, ErrNoTasks
	}
	if ctx.Err() != nil {
		return Win[T]{Index: -1}, context.Cause(ctx)
	}
	run := func(ctx context.Context, i int) (T, error) { return tasks[i](ctx) }
	r := newRace(ctx, cfg, len(tasks), discard, run, taskError)
	for i, task := range tasks {
		if task == nil {
			r.skip(i, ErrNilTask)
			continue
		}
		r.start(i)
	}
	for r.running > 0 {
		r.step(nil)
	}
	i, v, err := r.finish()
	return Win[T]{Value: v, Index: i}, err
}
