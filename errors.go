package crew

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/crewgo/crew/work"
)

// ErrPermanent marks a worker's error as final: a worker whose error wraps
// ErrPermanent (for example fmt.Errorf("bad config: %w", crew.ErrPermanent))
// is never restarted, whatever its [Restart] option says. It is
// [work.ErrPermanent], which every crew package honours.
var ErrPermanent = work.ErrPermanent

// ErrStopped is the cause that workers see (through [context.Cause]) when the
// group was stopped by [Group.Stop] with a nil cause, or because a worker that
// was expected to run until stopped returned nil. It is not a failure: Run
// still returns nil in that case.
var ErrStopped = errors.New("crew: group stopped")

// Error is what [Group.Run] returns when a worker failed, panicked or did not
// stop in time, or when [Group.Stop] was given a non-nil cause.
//
// Use errors.Is and errors.As on it as on any error: Unwrap reaches the cause
// and every worker's error.
type Error struct {
	// Cause is what began the stop: the first worker failure (a *WorkerError),
	// the cause given to Stop, or the cause of the context passed to Run.
	Cause error
	// Workers lists every worker that failed, in the order they failed.
	Workers []WorkerError
	// Stragglers names the workers that were still running when the stop
	// timeout expired. Their goroutines may still be running.
	Stragglers []string
}

// Error reports the failed workers, the stragglers and, when no worker
// failed, the cause of the stop.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("crew: ")
	switch {
	case len(e.Workers) == 1:
		b.WriteString(e.Workers[0].Error())
	case len(e.Workers) > 1:
		fmt.Fprintf(&b, "%d workers failed: ", len(e.Workers))
		for i := range e.Workers {
			if i > 0 {
				b.WriteString("; ")
			}
			b.WriteString(e.Workers[i].Error())
		}
	case e.Cause != nil:
		fmt.Fprintf(&b, "stopped: %v", e.Cause)
	default:
		b.WriteString("stopped")
	}
	if len(e.Stragglers) > 0 {
		if len(e.Workers) > 0 || e.Cause != nil {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "did not stop in time: %s", strings.Join(e.Stragglers, ", "))
	}
	return b.String()
}

// Unwrap returns the cause followed by every worker's error, so that
// errors.Is and errors.As see all of them.
func (e *Error) Unwrap() []error {
	errs := make([]error, 0, 1+len(e.Workers))
	if e.Cause != nil {
		errs = append(errs, e.Cause)
	}
	for i := range e.Workers {
		errs = append(errs, &e.Workers[i])
	}
	return errs
}

// WorkerError is the error of one named worker.
type WorkerError struct {
	Name string // the name given to Add
	Err  error  // what the worker returned, or a *PanicError
	// Restarts is how many times the worker had been restarted before it
	// failed for good.
	Restarts int
}

// Error returns the worker's name and error.
func (e *WorkerError) Error() string {
	if e.Restarts > 0 {
		return fmt.Sprintf("worker %q (after %d restarts): %v", e.Name, e.Restarts, e.Err)
	}
	return fmt.Sprintf("worker %q: %v", e.Name, e.Err)
}

// Unwrap returns the worker's error.
func (e *WorkerError) Unwrap() error { return e.Err }

// PanicError is a recovered panic: the value passed to panic and the stack of
// the goroutine that panicked. It is [work.PanicError]: every crew package
// reports panics in tasks and workers as one, so one errors.As finds them all.
type PanicError = work.PanicError

// NewPanicError returns a PanicError for value with the current goroutine's
// stack; see [work.NewPanicError]. Call it from the deferred function that
// recovered the panic, so that the stack still shows where the panic happened.
func NewPanicError(value any) *PanicError { return work.NewPanicError(value) }

// SignalError is the cause that workers see, through [context.Cause], when
// [Main] stops the group because the process received a signal.
type SignalError struct {
	Signal os.Signal
}

// Error names the signal.
func (e *SignalError) Error() string {
	return "received signal " + e.Signal.String()
}
