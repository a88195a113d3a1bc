package work_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/crewgo/crew/work"
)

// Catch turns a panic in code you call into an error, with the stack of the
// panic, as every crew package does for the tasks it runs.
func ExampleCatch() {
	parse := func(s string) (n int, err error) {
		if pe := work.Catch(func() { n = len(s) / len(s[1:]) }); pe != nil {
			return 0, pe
		}
		return n, nil
	}
	_, err := parse("x")
	var pe *work.PanicError
	fmt.Println(errors.As(err, &pe), pe.Value)
	// Output: true runtime error: integer divide by zero
}

// A handler wraps ErrPermanent in the error of a message that no retry can
// fix; a queue consumer then dead-letters the message at once.
func ExampleErrPermanent() {
	handle := func(body []byte) error {
		if len(body) == 0 {
			return fmt.Errorf("empty order: %w", work.ErrPermanent)
		}
		return nil
	}
	err := handle(nil)
	fmt.Println(err, errors.Is(err, work.ErrPermanent))
	// Output: empty order: crew: permanent error true
}

// A supervisor attaches its drain with WithDrain; the work it runs finishes
// with DrainContext after its own context has been cancelled.
func ExampleDrainContext() {
	drain, endDrain := context.WithTimeout(context.Background(), time.Minute)
	defer endDrain()
	ctx, stop := context.WithCancel(work.WithDrain(context.Background(), drain))

	stop() // the supervisor stops its workers
	flush := work.DrainContext(ctx)
	fmt.Println("worker context:", ctx.Err())
	fmt.Println("drain context:", flush.Err())
	// Output:
	// worker context: context canceled
	// drain context: <nil>
}

// NewPanicError is the recovery that Catch does, for a deferred function
// of your own: here a worker goroutine that reports its panic on a channel
// instead of crashing the program.
func ExampleNewPanicError() {
	errs := make(chan error, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				errs <- work.NewPanicError(v)
			}
		}()
		fields := strings.Fields("order-42")
		fmt.Println("customer:", fields[1]) // only one field: panics
		errs <- nil
	}()
	var pe *work.PanicError
	err := <-errs
	fmt.Println(errors.As(err, &pe), pe.Value)
	// Output: true runtime error: index out of range [1] with length 1
}
