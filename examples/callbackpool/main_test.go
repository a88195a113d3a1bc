package main

import (
	"context"
	"log/slog"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/crewgo/crew/crewtest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSIGTERMFinishesEveryAcceptedEvent(t *testing.T) {
	var started, finished atomic.Int64
	release := make(chan struct{})
	handle := func(ctx context.Context, e Event) error {
		started.Add(1)
		<-release // the slow service answers only after the signal
		if err := ctx.Err(); err != nil {
			return err // the signal must not cancel accepted events
		}
		finished.Add(1)
		return nil
	}
	g := newGroup(4, time.Millisecond, handle, slog.New(slog.DiscardHandler))
	p := crewtest.Main(t, g)
	// Wait until the pool is full and the library is blocked in the
	// callback, then signal while events are in flight.
	for started.Load() < 4 {
		time.Sleep(time.Millisecond) // polling a condition, not timing
	}
	p.Signal(syscall.SIGTERM)
	close(release)
	if code := p.Wait(); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	if s, f := started.Load(), finished.Load(); s != f || s < 4 {
		t.Fatalf("%d events started, %d finished: every accepted event must finish", s, f)
	}
}
