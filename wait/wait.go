package wait

import (
	"context"
	"errors"
	"fmt"
)

// Task is one piece of work that [First] races against others, or the probe
// that [Until] polls. It must return soon after ctx is done: wait never
// abandons a goroutine, so a task that ignores its context holds up the call
// that started it.
type Task[T any] func(ctx context.Context) (T, error)

// Win is the result of [First]: the value of the task that succeeded first and
// that task's position in the slice given to First. On error, Index is -1.
type Win[T any] struct {
	Value T
	Index int
}

// State is what the state function of [Until] makes of one probe.
type State int

const (
	// Retry waits for the next delay and probes again. It is the zero State.
	Retry State = iota
	// Done ends the wait: Until returns the probe's value and a nil error.
	Done
	// Fail ends the wait at once: Until returns the probe's error, or
	// [ErrFailed] if it had none.
	Fail
)

// String returns "Retry", "Done" or "Fail".
func (s State) String() string {
	switch s {
	case Retry:
		return "Retry"
	case Done:
		return "Done"
	case Fail:
		return "Fail"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// ErrMaxWait is the error of a wait that ran out of the time [MaxWait] gave
// it. It satisfies errors.Is(ErrMaxWait, context.DeadlineExceeded), so code
// that checks for timeouts keeps working, and wait joins it with the last
// error the tasks or probes returned, so that the cause is never lost:
//
//	errors.Join(ErrMaxWait, lastErr)
var ErrMaxWait error = &deadlineError{"wait: gave up after MaxWait"}

// ErrAttemptTimeout is the cause of the context of a task or probe that ran
// longer than [AttemptTimeout]. When such a task returns the bare
// context.DeadlineExceeded, wait reports ErrAttemptTimeout instead, which
// says more and still satisfies errors.Is(err, context.DeadlineExceeded).
var ErrAttemptTimeout error = &deadlineError{"wait: attempt timed out"}

// ErrLost is the cause (see [context.Cause]) of the context of a task that
// wait no longer needs: a loser, once another task has succeeded, or any
// task still holding a context when the call returns with an error. A task
// that returns after wait cancelled it has not failed: its error is never
// reported.
var ErrLost = errors.New("wait: cancelled: another task succeeded first or the wait is over")

// ErrNoTasks is returned at once by [First] when it is given no tasks.
var ErrNoTasks = errors.New("wait: no tasks")

// ErrNilTask is the error of a nil task given to [First], and what [Hedge]
// and [Until] return at once when given a nil function. A nil task in First
// fails without running; the others still race.
var ErrNilTask = errors.New("wait: nil task")

// ErrFailed is what [Until] reports when the state function returned [Fail]
// for a probe that returned no error.
var ErrFailed = errors.New("wait: probe reached a failure state")

// deadlineError is a timeout that wait gave a name to.
type deadlineError struct{ msg string }

func (e *deadlineError) Error() string { return e.msg }

// Is makes the error match context.DeadlineExceeded.
func (e *deadlineError) Is(target error) bool { return target == context.DeadlineExceeded }

// Timeout reports true, as context.DeadlineExceeded does.
func (e *deadlineError) Timeout() bool { return true }

// TaskError is the error of one task of [First], with the task's position in
// the slice given to First. When every task fails, First joins their
// TaskErrors in task order.
type TaskError struct {
	Index int   // the task's index in First's slice
	Err   error // what the task returned, or a *work.PanicError
}

// Error returns "task <index>: <error>".
func (e *TaskError) Error() string { return fmt.Sprintf("task %d: %v", e.Index, e.Err) }

// Unwrap returns the task's error.
func (e *TaskError) Unwrap() error { return e.Err }

// AttemptError is the error of one attempt of [Hedge] or [Until], with the
// attempt's number, counted from 0 (the number Hedge passes to its function).
type AttemptError struct {
	Attempt int   // 0 for the first attempt
	Err     error // what the attempt returned, or a *work.PanicError
}

// Error returns "attempt <n>: <error>".
func (e *AttemptError) Error() string { return fmt.Sprintf("attempt %d: %v", e.Attempt, e.Err) }

// Unwrap returns the attempt's error.
func (e *AttemptError) Unwrap() error { return e.Err }

func taskError(i int, err error) error    { return &TaskError{Index: i, Err: err} }
func attemptError(i int, err error) error { return &AttemptError{Attempt: i, Err: err} }

// errGoexit is the error of a task that called runtime.Goexit (t.FailNow in
// a test does) instead of returning.
var errGoexit = errors.New("wait: task called runtime.Goexit")
