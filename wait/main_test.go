package wait_test

import (
	"context"
	"errors"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// blockUntilDone is a task that only its context can stop.
func blockUntilDone[T any](ctx context.Context) (T, error) {
	var zero T
	<-ctx.Done()
	return zero, ctx.Err()
}

// unjoin returns the errors that err joins, or err alone.
func unjoin(t *testing.T, err error) []error {
	t.Helper()
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

var (
	errA = errors.New("error A")
	errB = errors.New("error B")
	errC = errors.New("error C")
)
