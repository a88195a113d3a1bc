// Package crewtest helps test code that uses crew.
//
// [Start] runs a [crew.Group] for the length of a test and fails the test if
// any worker fails or does not stop in time. [Main] runs a group the way
// [crew.Main] does in a program, but with signals that the test sends itself
// and an exit code that it reads back, so that a test can check a graceful
// SIGTERM without signalling the test process.
package crewtest

import (
	"context"
	"os"
	"sync/atomic"
	"testing"

	"github.com/crewgo/crew"
)

// Start runs g in the background and returns once every worker is ready. If
// Run returns before that, Start fails the test at once (with Run's error, if
// any). When the test ends, Start stops the group, waits for Run to return,
// and fails the test if Run returned an error: a failed or panicking worker,
// or a straggler that did not stop within the group's StopTimeout.
func Start(t testing.TB, g *crew.Group) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- g.Run(context.Background()) }()
	t.Cleanup(func() {
		g.Stop(nil)
		if err := <-done; err != nil {
			t.Errorf("crewtest: group: %v", err)
		}
	})
	select {
	case <-g.Ready():
	case err := <-done:
		done <- err // for the cleanup
		if err != nil {
			t.Fatalf("crewtest: group stopped before it was ready: %v", err)
		}
		t.Fatalf("crewtest: group stopped before it was ready")
	}
}

// Process is a group running under [crew.Main] in a test: it receives fake
// signals and its exit code is captured instead of ending the test binary.
type Process struct {
	sigs   chan os.Signal
	code   chan int
	done   chan struct{} // closed when Main has returned
	waited atomic.Bool
}

// Main runs crew.Main(g, opts...) in the background with a fake signal source
// and a captured exit code. Use [Process.Signal] to deliver a signal and
// [Process.Wait] for the exit code. If the test ends before Main has
// returned, Main fails the test.
//
// After a second signal Main returns 1 at once, as the real crew.Main exits
// at once; the group may then still be draining, for up to its StopTimeout.
func Main(t testing.TB, g *crew.Group, opts ...crew.MainOption) *Process {
	t.Helper()
	p := &Process{sigs: make(chan os.Signal, 2), code: make(chan int, 1), done: make(chan struct{})}
	opts = append(opts, crew.SignalSource(p.sigs), crew.ExitFunc(func(code int) { p.code <- code }))
	go func() {
		defer close(p.done)
		crew.Main(g, opts...)
	}()
	t.Cleanup(func() {
		if p.waited.Load() {
			<-p.done // Main returns right after its exit function
			return
		}
		select {
		case <-p.done:
		default:
			t.Errorf("crewtest: crew.Main had not returned when the test ended; send a signal and call Wait")
		}
	})
	return p
}

// Signal delivers sig to the process as if the operating system had sent it.
func (p *Process) Signal(sig os.Signal) {
	p.sigs <- sig
}

// Wait waits for Main to finish and returns the exit code it asked for. Call
// it once.
func (p *Process) Wait() int {
	p.waited.Store(true)
	return <-p.code
}
