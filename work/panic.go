package work

import (
	"errors"
	"fmt"
	"runtime/debug"
)

// ErrPermanent marks an error as final: trying the same work again cannot
// succeed. Wrap it, as in fmt.Errorf("malformed order: %w", work.ErrPermanent);
// crew's retrying parts check for it with errors.Is and then give up at once:
// a queue message is dead-lettered, a batch item is not retried, a supervised
// worker is not restarted.
var ErrPermanent = errors.New("crew: permanent error")

// PanicError is a recovered panic: the value passed to panic and the stack of
// the goroutine that panicked. Every crew package reports panics in tasks,
// handlers and workers as a *PanicError, so one errors.As finds them all.
type PanicError struct {
	Value any    // the value passed to panic
	Stack []byte // the panicking goroutine's stack, as debug.Stack formats it
}

// NewPanicError returns a PanicError for value with the current goroutine's
// stack. Call it from the deferred function that recovered the panic, so that
// the stack still shows where the panic happened:
//
//	defer func() {
//		if v := recover(); v != nil {
//			err = work.NewPanicError(v)
//		}
//	}()
//
// [Catch] does exactly this around a function call.
func NewPanicError(value any) *PanicError {
	return &PanicError{Value: value, Stack: debug.Stack()}
}

// Error returns the panic value followed by the stack, so that a logged or
// printed error shows where the panic came from.
func (e *PanicError) Error() string {
	return fmt.Sprintf("panic: %v\n\n%s", e.Value, e.Stack)
}

// Unwrap returns the panic value if it is an error, so that errors.Is finds a
// sentinel that was passed to panic.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// Catch calls fn on the calling goroutine and returns nil when fn returns, or
// the panic fn raised, recovered into a *PanicError whose stack shows where it
// happened. Catch does not stop runtime.Goexit: if fn calls it, Catch does not
// return either. Results travel through variables that fn captures:
//
//	if pe := work.Catch(func() { err = task(ctx) }); pe != nil {
//		err = pe
//	}
func Catch(fn func()) (panicked *PanicError) {
	defer func() {
		if v := recover(); v != nil {
			panicked = NewPanicError(v)
		}
	}()
	fn()
	return nil
}
