package crew_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/crewgo/crew"
)

// schedule runs the worker Every makes from fn and opts, inside a synctest
// bubble, until fn has been called runs times, and returns when each call
// began, counted from the worker's start. take(i) is how long call i lasts.
func schedule(t *testing.T, runs int, take func(i int) time.Duration, opts ...crew.EveryOption) []time.Duration {
	t.Helper()
	var got []time.Duration
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var inFlight atomic.Int32
		start := time.Now()
		w := crew.Every(time.Minute, func(context.Context) error {
			if inFlight.Add(1) > 1 {
				t.Error("two runs at once")
			}
			defer inFlight.Add(-1)
			got = append(got, time.Since(start))
			time.Sleep(take(len(got) - 1))
			if len(got) == runs {
				cancel()
			}
			return nil
		}, opts...)
		if err := w.Run(ctx); err != nil {
			t.Errorf("Run = %v, want nil after a stop", err)
		}
	})
	return got
}

func instant(int) time.Duration { return 0 }

func TestEveryRunsOncePerIntervalFromItsStart(t *testing.T) {
	got := schedule(t, 3, func(int) time.Duration { return 10 * time.Second })
	want := []time.Duration{time.Minute, 2 * time.Minute, 3 * time.Minute}
	if !slices.Equal(got, want) {
		t.Errorf("runs began at %v, want %v: a run's length must not shift the ticks", got, want)
	}
}

func TestEveryRunAtStartRunsAtOnce(t *testing.T) {
	got := schedule(t, 3, instant, crew.RunAtStart())
	want := []time.Duration{0, time.Minute, 2 * time.Minute}
	if !slices.Equal(got, want) {
		t.Errorf("runs began at %v, want %v", got, want)
	}
}

func TestEveryDelaysTheTickThatARunOverran(t *testing.T) {
	// Run 0 (tick 1m) lasts 3.5 intervals, past the ticks at 2m, 3m and 4m:
	// the last of them runs as soon as it returns, the others are dropped.
	got := schedule(t, 3, func(i int) time.Duration {
		if i == 0 {
			return 210 * time.Second
		}
		return 0
	})
	want := []time.Duration{time.Minute, 270 * time.Second, 5 * time.Minute}
	if !slices.Equal(got, want) {
		t.Errorf("runs began at %v, want %v", got, want)
	}
}

func TestEverySkipMissedWaitsForTheNextTick(t *testing.T) {
	got := schedule(t, 3, func(i int) time.Duration {
		if i == 0 {
			return 90 * time.Second
		}
		return 0
	}, crew.SkipMissed())
	want := []time.Duration{time.Minute, 3 * time.Minute, 4 * time.Minute}
	if !slices.Equal(got, want) {
		t.Errorf("runs began at %v, want %v", got, want)
	}
}

func TestEveryRunEndingExactlyOnTheNextTickOverranIt(t *testing.T) {
	got := schedule(t, 3, func(i int) time.Duration {
		if i == 0 {
			return time.Minute
		}
		return 0
	}, crew.SkipMissed())
	want := []time.Duration{time.Minute, 3 * time.Minute, 4 * time.Minute}
	if !slices.Equal(got, want) {
		t.Errorf("runs began at %v, want %v: a run that lasts the whole interval overran the next tick", got, want)
	}
}

func TestEveryJitterDelaysEachRunWithinItsBoundOnly(t *testing.T) {
	const runs = 50
	got := schedule(t, runs, instant, crew.Jitter(10*time.Second))
	distinct := map[time.Duration]bool{}
	for i, at := range got {
		tick := time.Duration(i+1) * time.Minute
		if at < tick || at >= tick+10*time.Second {
			t.Errorf("run %d began at %v, want within [%v, %v)", i, at, tick, tick+10*time.Second)
		}
		distinct[at-tick] = true
	}
	if len(distinct) < runs/2 {
		t.Errorf("only %d distinct delays in %d runs: the jitter is not random", len(distinct), runs)
	}
}

func TestEveryStopsAtOnceBetweenRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := crew.Group{Logger: quiet}
		var runs atomic.Int32
		g.Add("tick", crew.Every(time.Hour, func(context.Context) error {
			runs.Add(1)
			return nil
		}))
		go func() {
			<-g.Ready()
			time.Sleep(90 * time.Minute)
			g.Stop(nil)
		}()
		start := time.Now()
		if err := g.Run(context.Background()); err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		if took := time.Since(start); took != 90*time.Minute {
			t.Errorf("Run returned %v after the start, want at the stop (90m)", took)
		}
		if runs.Load() != 1 {
			t.Errorf("%d runs, want 1", runs.Load())
		}
	})
}

func TestEveryRunInProgressFinishesWithinTheDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := crew.Group{StopTimeout: 10 * time.Second, Logger: quiet}
		started, stopped := make(chan struct{}), make(chan struct{})
		var finished, cancelledEarly atomic.Bool
		var runs atomic.Int32
		g.Add("report", crew.Every(time.Minute, func(ctx context.Context) error {
			if runs.Add(1) > 1 {
				t.Error("a run started after the stop")
			}
			close(started)
			<-stopped
			time.Sleep(5 * time.Second) // finishing the report takes half the budget
			cancelledEarly.Store(ctx.Err() != nil)
			finished.Store(true)
			return nil
		}, crew.RunAtStart()))
		go func() {
			<-started
			g.Stop(nil)
			close(stopped)
		}()
		if err := g.Run(context.Background()); err != nil {
			t.Fatalf("Run = %v, want nil: the run finished within the budget", err)
		}
		if !finished.Load() || cancelledEarly.Load() {
			t.Errorf("finished=%v, context ended before the drain deadline=%v; want a finished run with a live context", finished.Load(), cancelledEarly.Load())
		}
	})
}

func TestEveryRunInProgressEndsAtTheDrainDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := crew.Group{StopTimeout: 10 * time.Second, Logger: quiet}
		ended := make(chan time.Duration, 1)
		var stopAt time.Time
		started := make(chan struct{})
		g.Add("report", crew.Every(time.Minute, func(ctx context.Context) error {
			close(started)
			<-ctx.Done() // a run that would take longer than the group can wait
			ended <- time.Since(stopAt)
			return ctx.Err()
		}, crew.RunAtStart()))
		go func() {
			<-started
			stopAt = time.Now()
			g.Stop(nil)
		}()
		err := g.Run(context.Background())
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Run = %v, want the run's DeadlineExceeded", err)
		}
		if d := <-ended; d < 9*time.Second || d >= 10*time.Second {
			t.Errorf("the run's context ended %v after the stop, want in the last second before the 10s budget", d)
		}
	})
}

func TestEveryErrorEndsTheWorker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		boom := errors.New("boom")
		var runs int
		err := crew.Every(time.Minute, func(context.Context) error {
			runs++
			return boom
		}).Run(context.Background())
		if !errors.Is(err, boom) || runs != 1 {
			t.Fatalf("Run = %v after %d runs, want boom after 1", err, runs)
		}
	})
}

func TestEveryContinueOnErrorLogsAndKeepsTicking(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs bytes.Buffer
		logger := slog.New(slog.NewTextHandler(&logs, nil))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var runs int
		err := crew.Every(time.Minute, func(context.Context) error {
			runs++
			if runs == 3 {
				cancel()
			}
			return errors.New("upstream unavailable")
		}, crew.ContinueOnError(logger)).Run(ctx)
		if err != nil || runs != 3 {
			t.Fatalf("Run = %v after %d runs, want nil after 3", err, runs)
		}
		if n := strings.Count(logs.String(), "upstream unavailable"); n != 3 {
			t.Errorf("%d errors logged, want 3:\n%s", n, logs.String())
		}
	})
}

func TestEveryContinueOnErrorStillEndsOnAPermanentError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var runs int
		err := crew.Every(time.Minute, func(context.Context) error {
			runs++
			return fmt.Errorf("credentials revoked: %w", crew.ErrPermanent)
		}, crew.ContinueOnError(quiet)).Run(context.Background())
		if !errors.Is(err, crew.ErrPermanent) || runs != 1 {
			t.Fatalf("Run = %v after %d runs, want the permanent error after 1", err, runs)
		}
	})
}

func TestEveryPanicIsTheWorkersPanicError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := crew.Group{Logger: quiet}
		g.Add("tick", crew.Every(time.Minute, func(context.Context) error {
			panic("tick")
		}, crew.ContinueOnError(quiet)))
		var pe *crew.PanicError
		if err := g.Run(context.Background()); !errors.As(err, &pe) || pe.Value != "tick" {
			t.Fatalf("Run = %v, want the run's *PanicError", err)
		}
	})
}

func TestEveryPanicsOnABadArgument(t *testing.T) {
	for _, d := range []time.Duration{0, -time.Second} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Every(%v) did not panic", d)
				}
			}()
			crew.Every(d, func(context.Context) error { return nil })
		}()
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("Every(nil) did not panic")
			}
		}()
		crew.Every(time.Second, nil)
	}()
	defer func() {
		if recover() == nil {
			t.Error("Jitter(-1s) did not panic")
		}
	}()
	crew.Jitter(-time.Second)
}
