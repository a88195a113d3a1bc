package crew_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/crewgo/crew"
	"github.com/crewgo/crew/work"
)

// crew re-exports package work's names: code written against either finds
// the other's errors.
func TestCrewsPanicErrorAndErrPermanentAreWorks(t *testing.T) {
	var err error = work.Catch(func() { panic("boom") })
	var pe *crew.PanicError
	if !errors.As(err, &pe) || pe.Value != "boom" {
		t.Errorf("errors.As(work.Catch's panic, *crew.PanicError) = false")
	}
	err = crew.NewPanicError("boom")
	var wpe *work.PanicError
	if !errors.As(err, &wpe) {
		t.Errorf("errors.As(crew.NewPanicError, *work.PanicError) = false")
	}
	if !errors.Is(fmt.Errorf("bad config: %w", work.ErrPermanent), crew.ErrPermanent) ||
		!errors.Is(fmt.Errorf("bad config: %w", crew.ErrPermanent), work.ErrPermanent) {
		t.Error("crew.ErrPermanent and work.ErrPermanent are different errors")
	}
}

// A package that knows only work, such as queue, sees the group's drain.
func TestWorksDrainContextEndsWithTheGroupsDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := crew.Group{StopTimeout: 5 * time.Second, Logger: quiet}
		g.Add("consumer", crew.Func(func(ctx context.Context) error {
			<-ctx.Done()
			stoppedAt := time.Now()
			d := work.DrainContext(ctx)
			if _, ok := d.Deadline(); !ok {
				t.Error("work.DrainContext has no deadline once the group is stopping")
			}
			<-d.Done()
			if took := time.Since(stoppedAt); took < 4*time.Second || took >= 5*time.Second {
				t.Errorf("the drain ended %v after the stop, want in the last second of the 5s budget", took)
			}
			return nil
		}))
		go func() {
			<-g.Ready()
			g.Stop(nil)
		}()
		if err := g.Run(context.Background()); err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
	})
}
