package crewtest_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/crewgo/crew"
	"github.com/crewgo/crew/crewtest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.DiscardHandler)

// fakeT records failures instead of failing the real test, so that these
// tests can check that crewtest fails a test when it should.
type fakeT struct {
	*testing.T
	mu       sync.Mutex
	failures []string
	cleanups []func()
}

func (f *fakeT) Helper() {}

func (f *fakeT) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures = append(f.failures, fmt.Sprintf(format, args...))
}

func (f *fakeT) Fatalf(format string, args ...any) {
	f.Errorf(format, args...)
	runtime.Goexit()
}

func (f *fakeT) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }

// run calls body as a test would, then the cleanups, and returns the
// failures.
func (f *fakeT) run(body func()) []string {
	done := make(chan struct{})
	go func() {
		defer close(done)
		body()
	}()
	<-done
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
	return f.failures
}

func untilDone(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

func TestStartReturnsOnceReadyAndStopsAtCleanup(t *testing.T) {
	g := &crew.Group{Logger: quiet}
	ready := make(chan struct{})
	stopped := make(chan struct{})
	g.Add("w", crew.Func(func(ctx context.Context) error {
		close(ready)
		crew.MarkReady(ctx)
		<-ctx.Done()
		close(stopped)
		return nil
	}), crew.WaitReady())
	ft := &fakeT{T: t}
	failures := ft.run(func() {
		crewtest.Start(ft, g)
		select {
		case <-ready:
		default:
			t.Error("Start returned before the worker was ready")
		}
		select {
		case <-stopped:
			t.Error("worker stopped before cleanup")
		default:
		}
	})
	if len(failures) != 0 {
		t.Fatalf("failures: %q", failures)
	}
	<-stopped
}

func TestStartFailsTheTestWhenAWorkerFails(t *testing.T) {
	g := &crew.Group{Logger: quiet}
	fail := make(chan struct{})
	g.Add("w", crew.Func(func(ctx context.Context) error {
		<-fail
		return errors.New("broken")
	}))
	g.Add("other", crew.Func(untilDone))
	ft := &fakeT{T: t}
	failures := ft.run(func() {
		crewtest.Start(ft, g)
		close(fail)
	})
	if len(failures) != 1 || !strings.Contains(failures[0], "broken") {
		t.Fatalf("failures = %q, want the worker's error", failures)
	}
}

func TestStartFailsTheTestWhenTheGroupNeverBecomesReady(t *testing.T) {
	g := &crew.Group{Logger: quiet}
	g.Add("w", crew.Func(func(ctx context.Context) error {
		return errors.New("cannot listen")
	}), crew.WaitReady())
	ft := &fakeT{T: t}
	failures := ft.run(func() {
		crewtest.Start(ft, g)
		t.Error("Start returned although the group stopped before it was ready")
	})
	if len(failures) == 0 || !strings.Contains(failures[0], "cannot listen") {
		t.Fatalf("failures = %q", failures)
	}
}

func TestMainExitsZeroOnAGracefulSignal(t *testing.T) {
	g := &crew.Group{Logger: quiet}
	cause := make(chan error, 1)
	g.Add("w", crew.Func(func(ctx context.Context) error {
		<-ctx.Done()
		cause <- context.Cause(ctx)
		return nil
	}))
	p := crewtest.Main(t, g)
	<-g.Ready()
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	var se *crew.SignalError
	if c := <-cause; !errors.As(c, &se) || se.Signal != syscall.SIGTERM {
		t.Fatalf("worker saw cause %v, want SIGTERM", c)
	}
}

func TestMainSecondSignalExitsOneAtOnce(t *testing.T) {
	g := &crew.Group{Logger: quiet}
	draining := make(chan struct{})
	release := make(chan struct{})
	g.Add("w", crew.Func(func(ctx context.Context) error {
		<-ctx.Done()
		close(draining)
		<-release // a drain that outlasts the second signal
		return nil
	}))
	p := crewtest.Main(t, g)
	<-g.Ready()
	p.Signal(syscall.SIGINT)
	<-draining
	p.Signal(syscall.SIGINT)
	if code := p.Wait(); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	close(release) // let the drain end so no goroutine outlives the test
	for g.Status()[0].State != crew.StateDone {
		runtime.Gosched()
	}
}

func TestMainExitsOneWhenAWorkerFails(t *testing.T) {
	g := &crew.Group{Logger: quiet}
	g.Add("w", crew.Func(func(ctx context.Context) error { return errors.New("boom") }))
	if code := crewtest.Main(t, g).Wait(); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
}
