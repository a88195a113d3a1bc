package crewtest_test

import (
	"context"
	"log/slog"
	"syscall"
	"testing"

	"github.com/crewgo/crew"
	"github.com/crewgo/crew/crewtest"
)

// newService is the code under test: it builds the group that the program's
// main passes to crew.Main.
func newService(flushed chan<- struct{}) *crew.Group {
	g := &crew.Group{Logger: slog.New(slog.DiscardHandler)}
	g.Add("flusher", crew.Func(func(ctx context.Context) error {
		<-ctx.Done()
		close(flushed)
		return nil
	}))
	return g
}

// A test that delivers SIGTERM to a service without signalling the test
// process, then checks the exit code and the drain.
func ExampleMain() {
	testGracefulStop := func(t *testing.T) {
		flushed := make(chan struct{})
		g := newService(flushed)
		p := crewtest.Main(t, g)
		<-g.Ready()
		p.Signal(syscall.SIGTERM)
		if code := p.Wait(); code != 0 {
			t.Fatalf("exit code %d, want 0", code)
		}
		<-flushed
	}
	_ = testGracefulStop // run by the test framework in a real _test.go file
}

// Start runs a group for the length of a test.
func ExampleStart() {
	testAgainstRunningService := func(t *testing.T) {
		g := &crew.Group{}
		g.Add("http", crew.Func(func(ctx context.Context) error { <-ctx.Done(); return nil }))
		crewtest.Start(t, g) // returns once ready; stops the group when the test ends
		// ... exercise the service ...
	}
	_ = testAgainstRunningService
}
