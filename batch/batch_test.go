package batch_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/time/rate"

	"github.com/crewgo/crew"
	"github.com/crewgo/crew/backoff"
	"github.com/crewgo/crew/batch"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// gauge tracks how many calls are in progress and the most there ever were.
type gauge struct{ cur, max atomic.Int64 }

func (g *gauge) enter() {
	n := g.cur.Add(1)
	for {
		m := g.max.Load()
		if n <= m || g.max.CompareAndSwap(m, n) {
			return
		}
	}
}

func (g *gauge) exit() { g.cur.Add(-1) }

var errBoom = errors.New("boom")

func indexes(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// joined returns the errors that err joins.
func joined(t *testing.T, err error) []error {
	t.Helper()
	u, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("error %v (%T) is not a joined error", err, err)
	}
	return u.Unwrap()
}

func TestMapItemsBelongToTheirIndexWhateverOrderTheyFinishIn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		items := []string{"a", "bb", "ccc", "dddd", "eeeee", "ffffff"}
		var finished []int
		var mu sync.Mutex
		rep, err := batch.Map(t.Context(), items, func(ctx context.Context, i int, s string) (int, error) {
			// Later items finish first.
			time.Sleep(time.Duration(len(items)-i) * time.Second)
			mu.Lock()
			finished = append(finished, i)
			mu.Unlock()
			return len(s), nil
		}, batch.Workers(len(items)))
		if err != nil {
			t.Fatalf("Map: %v", err)
		}
		if want := []int{5, 4, 3, 2, 1, 0}; !slices.Equal(finished, want) {
			t.Fatalf("finish order %v, want %v: the test does not exercise reordering", finished, want)
		}
		if len(rep.Items) != len(items) {
			t.Fatalf("%d outcomes for %d items", len(rep.Items), len(items))
		}
		for i, o := range rep.Items {
			if o.Value != len(items[i]) || o.Status != batch.Succeeded || o.Err != nil || o.Attempts != 1 {
				t.Errorf("Items[%d] = %+v, want Value %d, Succeeded, 1 attempt", i, o, len(items[i]))
			}
			if want := time.Duration(len(items)-i) * time.Second; o.Elapsed != want {
				t.Errorf("Items[%d].Elapsed = %v, want %v", i, o.Elapsed, want)
			}
		}
		if rep.Succeeded != len(items) || rep.Failed != 0 || rep.Skipped != 0 {
			t.Errorf("counts %d/%d/%d, want %d/0/0", rep.Succeeded, rep.Failed, rep.Skipped, len(items))
		}
	})
}

func TestWorkersLimitIsReachedAndNeverExceeded(t *testing.T) {
	for _, workers := range []int{1, 3, batch.DefaultWorkers} {
		t.Run(fmt.Sprint(workers), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var g gauge
				var opts []batch.Option
				if workers != batch.DefaultWorkers {
					opts = append(opts, batch.Workers(workers))
				}
				_, err := batch.Each(t.Context(), indexes(50), func(ctx context.Context, i, _ int) error {
					g.enter()
					defer g.exit()
					time.Sleep(time.Duration(1+i%3) * time.Second)
					return nil
				}, opts...)
				if err != nil {
					t.Fatal(err)
				}
				if got := g.max.Load(); got != int64(workers) {
					t.Errorf("at most %d items ran at once, want exactly %d", got, workers)
				}
			})
		})
	}
}

func TestWorkersLimitHoldsUnderLoad(t *testing.T) {
	const workers = 5
	var g gauge
	_, err := batch.Each(t.Context(), indexes(20000), func(ctx context.Context, i, _ int) error {
		g.enter()
		defer g.exit()
		for range i % 4 {
			runtime.Gosched()
		}
		return nil
	}, batch.Workers(workers))
	if err != nil {
		t.Fatal(err)
	}
	if got := g.max.Load(); got > workers || got < 1 {
		t.Errorf("at most %d items ran at once, want between 1 and %d", got, workers)
	}
}

func TestMapReturnsOnlyAfterEveryStartedItemHasReturned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(time.Second, cancel)
		var running atomic.Int64
		rep, _ := batch.Each(ctx, indexes(10), func(ctx context.Context, i, _ int) error {
			running.Add(1)
			defer running.Add(-1)
			// Ignore the cancellation for a while, as slow clean-up does.
			time.Sleep(time.Duration(i+1) * time.Minute)
			return ctx.Err()
		}, batch.Workers(4))
		if n := running.Load(); n != 0 {
			t.Fatalf("Each returned with %d items still running", n)
		}
		if rep.Skipped != 6 {
			t.Errorf("Skipped = %d, want 6 (items 4 to 9)", rep.Skipped)
		}
	})
}

func TestUnstartedItemsAfterCancelAreSkippedAndNeverCalled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	var calls []int
	rep, err := batch.Map(ctx, indexes(10), func(ctx context.Context, i, _ int) (int, error) {
		calls = append(calls, i) // Workers(1): no race
		if ctx.Err() != nil {
			t.Errorf("item %d started with a context that had ended", i)
		}
		if i == 3 {
			cancel()
		}
		return i, nil
	}, batch.Workers(1))
	if want := []int{0, 1, 2, 3}; !slices.Equal(calls, want) {
		t.Fatalf("fn called for %v, want %v", calls, want)
	}
	if rep.Succeeded != 4 || rep.Failed != 0 || rep.Skipped != 6 {
		t.Errorf("counts %d/%d/%d, want 4/0/6", rep.Succeeded, rep.Failed, rep.Skipped)
	}
	for i, o := range rep.Items[4:] {
		if o.Status != batch.Skipped || o.Attempts != 0 || o.Elapsed != 0 || o.Value != 0 {
			t.Errorf("Items[%d] = %+v, want Skipped with no attempt", i+4, o)
		}
		if !errors.Is(o.Err, batch.ErrSkipped) || !errors.Is(o.Err, context.Canceled) {
			t.Errorf("Items[%d].Err = %v, want ErrSkipped wrapping context.Canceled", i+4, o.Err)
		}
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestCancelCauseComesFirstInTheError(t *testing.T) {
	cause := errors.New("shutting down")
	ctx, cancel := context.WithCancelCause(t.Context())
	_, err := batch.Each(ctx, indexes(5), func(ctx context.Context, i, _ int) error {
		if i == 1 {
			cancel(cause)
			return errBoom
		}
		return nil
	}, batch.Workers(1))
	errs := joined(t, err)
	if len(errs) != 2 || errs[0] != cause {
		t.Fatalf("err joins %q, want the cause then item 1", errs)
	}
	var ie *batch.ItemError
	if !errors.As(errs[1], &ie) || ie.Index != 1 || ie.Err != errBoom {
		t.Errorf("second error %v, want item 1's", errs[1])
	}
}

func TestAlreadyEndedContextSkipsEveryItem(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	rep, err := batch.Each(ctx, indexes(100), func(ctx context.Context, i, _ int) error {
		t.Errorf("item %d started", i)
		return nil
	})
	if rep.Skipped != 100 || !errors.Is(err, context.Canceled) {
		t.Errorf("Skipped %d, err %v; want 100 and context.Canceled", rep.Skipped, err)
	}
}

func TestErrorsFromAllItemsAreJoinedInIndexOrder(t *testing.T) {
	errA, errB := errors.New("a"), errors.New("b")
	rep, err := batch.Map(t.Context(), indexes(8), func(ctx context.Context, i, _ int) (string, error) {
		switch i {
		case 1, 6:
			return "", errA
		case 4:
			return "", errB
		}
		return "ok", nil
	}, batch.Workers(3))
	if rep.Failed != 3 || rep.Succeeded != 5 || rep.Skipped != 0 {
		t.Fatalf("counts %d/%d/%d, want 5/3/0", rep.Succeeded, rep.Failed, rep.Skipped)
	}
	errs := joined(t, err)
	var got []int
	for _, e := range errs {
		var ie *batch.ItemError
		if !errors.As(e, &ie) {
			t.Fatalf("%v is not an *ItemError", e)
		}
		got = append(got, ie.Index)
	}
	if want := []int{1, 4, 6}; !slices.Equal(got, want) {
		t.Errorf("errors for items %v, want %v", got, want)
	}
	if !errors.Is(err, errA) || !errors.Is(err, errB) {
		t.Errorf("errors.Is misses an item's error in %v", err)
	}
	if got, want := err.Error(), "item 1: a\nitem 4: b\nitem 6: a"; got != want {
		t.Errorf("err.Error() = %q, want %q", got, want)
	}
	for _, i := range []int{1, 4, 6} {
		if o := rep.Items[i]; o.Status != batch.Failed || o.Attempts != 1 || o.Err == nil {
			t.Errorf("Items[%d] = %+v, want Failed after 1 attempt", i, o)
		}
	}
}

func TestNilErrorIfAndOnlyIfEveryItemSucceeded(t *testing.T) {
	rep, err := batch.Each(t.Context(), indexes(100), func(context.Context, int, int) error { return nil })
	if err != nil || rep.Succeeded != 100 {
		t.Fatalf("err %v, %d succeeded", err, rep.Succeeded)
	}
	rep, err = batch.Each(t.Context(), []int{}, func(context.Context, int, int) error { return nil })
	if err != nil || rep.Items == nil || len(rep.Items) != 0 {
		t.Fatalf("empty batch: err %v, Items %v", err, rep.Items)
	}
}

func TestPanicBecomesAFailedItemAndTheBatchGoesOn(t *testing.T) {
	rep, err := batch.Map(t.Context(), indexes(6), func(ctx context.Context, i, _ int) (int, error) {
		if i == 2 {
			panicking(i)
		}
		return i * 10, nil
	}, batch.Workers(2))
	if rep.Succeeded != 5 || rep.Failed != 1 {
		t.Fatalf("counts %d/%d/%d, want 5/1/0", rep.Succeeded, rep.Failed, rep.Skipped)
	}
	var pe *crew.PanicError
	if !errors.As(rep.Items[2].Err, &pe) || !errors.As(err, &pe) {
		t.Fatalf("Items[2].Err = %v, want a *crew.PanicError", rep.Items[2].Err)
	}
	if pe.Value != "panicking on item 2" || !strings.Contains(string(pe.Stack), "batch_test.panicking") {
		t.Errorf("panic %v with stack\n%s\nwant the value and the panic site", pe.Value, pe.Stack)
	}
}

func panicking(i int) { panic(fmt.Sprintf("panicking on item %d", i)) }

func TestStopOnErrorSkipsTheRestAndCancelsRunningItems(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var cause error
		var calls atomic.Int64
		rep, err := batch.Each(t.Context(), indexes(10), func(ctx context.Context, i, _ int) error {
			calls.Add(1)
			switch i {
			case 0:
				<-ctx.Done() // running when item 1 fails
				cause = context.Cause(ctx)
				return ctx.Err()
			case 1:
				time.Sleep(time.Second)
				return errBoom
			}
			t.Errorf("item %d started after the failure", i)
			return nil
		}, batch.Workers(2), batch.StopOnError())
		if calls.Load() != 2 {
			t.Fatalf("%d calls, want 2", calls.Load())
		}
		if rep.Failed != 2 || rep.Skipped != 8 {
			t.Errorf("counts %d/%d/%d, want 0/2/8", rep.Succeeded, rep.Failed, rep.Skipped)
		}
		if cause == nil || !strings.Contains(cause.Error(), "StopOnError") {
			t.Errorf("the running item saw cause %v, want one naming StopOnError", cause)
		}
		if !errors.Is(rep.Items[5].Err, batch.ErrSkipped) || !strings.Contains(rep.Items[5].Err.Error(), "first failure") {
			t.Errorf("a skipped item's Err is %v, want it to say why", rep.Items[5].Err)
		}
		// The failures explain the stop; the error lists them only.
		if errs := joined(t, err); len(errs) != 2 || !errors.Is(errs[1], errBoom) {
			t.Errorf("err = %q, want items 0 and 1", errs)
		}
	})
}

func TestMaxErrorsStopsAfterNFailures(t *testing.T) {
	var calls int
	rep, err := batch.Each(t.Context(), indexes(10), func(context.Context, int, int) error {
		calls++
		return errBoom
	}, batch.Workers(1), batch.MaxErrors(3))
	if calls != 3 || rep.Failed != 3 || rep.Skipped != 7 {
		t.Fatalf("%d calls, counts %d/%d/%d; want 3 calls, 0/3/7", calls, rep.Succeeded, rep.Failed, rep.Skipped)
	}
	if len(joined(t, err)) != 3 {
		t.Errorf("err = %v, want three item errors", err)
	}
}

func TestMarginSkipsItemsOnceTheDeadlineIsCloserThanIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		start := time.Now()
		var starts []time.Duration
		rep, err := batch.Each(ctx, indexes(10), func(ctx context.Context, i, _ int) error {
			starts = append(starts, time.Since(start))
			time.Sleep(2 * time.Second)
			return nil
		}, batch.Workers(1), batch.Margin(4*time.Second))
		// Time left at each start: 10s, 8s, 6s, 4s (equal to the margin:
		// starts), then 2s: too close.
		want := []time.Duration{0, 2 * time.Second, 4 * time.Second, 6 * time.Second}
		if !slices.Equal(starts, want) {
			t.Fatalf("items started at %v, want %v", starts, want)
		}
		if rep.Succeeded != 4 || rep.Skipped != 6 {
			t.Errorf("counts %d/%d/%d, want 4/0/6", rep.Succeeded, rep.Failed, rep.Skipped)
		}
		if got := time.Since(start); got != 8*time.Second {
			t.Errorf("Each returned after %v, want 8s: in time, not at the deadline", got)
		}
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "margin") {
			t.Errorf("err = %v, want DeadlineExceeded mentioning the margin", err)
		}
		if !errors.Is(rep.Items[4].Err, context.DeadlineExceeded) {
			t.Errorf("Items[4].Err = %v, want DeadlineExceeded", rep.Items[4].Err)
		}
	})
}

func TestMarginWithoutDeadlineHasNoEffect(t *testing.T) {
	rep, err := batch.Each(t.Context(), indexes(10), func(context.Context, int, int) error { return nil }, batch.Margin(time.Hour))
	if err != nil || rep.Succeeded != 10 {
		t.Fatalf("err %v, %d succeeded", err, rep.Succeeded)
	}
}

func TestRateSpacesAttemptsExactly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var mu sync.Mutex
		var starts []time.Duration
		rep, err := batch.Each(t.Context(), indexes(6), func(ctx context.Context, i, _ int) error {
			mu.Lock()
			starts = append(starts, time.Since(start))
			mu.Unlock()
			return nil
		}, batch.Workers(4), batch.Rate(rate.Every(time.Second), 2))
		if err != nil {
			t.Fatal(err)
		}
		// A burst of two, then one a second.
		want := []time.Duration{0, 0, time.Second, 2 * time.Second, 3 * time.Second, 4 * time.Second}
		if !slices.Equal(starts, want) {
			t.Errorf("attempts started at %v, want %v", starts, want)
		}
		// The wait for the limiter is not part of an item's time.
		for i, o := range rep.Items {
			if o.Elapsed != 0 {
				t.Errorf("Items[%d].Elapsed = %v, want 0", i, o.Elapsed)
			}
		}
	})
}

func TestRateWaitThatWouldOverrunTheDeadlineSkipsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 2500*time.Millisecond)
		defer cancel()
		start := time.Now()
		var calls atomic.Int64
		rep, err := batch.Each(ctx, indexes(10), func(ctx context.Context, i, _ int) error {
			calls.Add(1)
			return nil
		}, batch.Workers(3), batch.Rate(rate.Every(time.Second), 1))
		// Turns at 0s, 1s, 2s; the one at 3s is past the deadline.
		if calls.Load() != 3 || rep.Succeeded != 3 || rep.Skipped != 7 {
			t.Errorf("%d calls, counts %d/%d/%d; want 3 and 3/0/7", calls.Load(), rep.Succeeded, rep.Failed, rep.Skipped)
		}
		if got := time.Since(start); got != 2*time.Second {
			t.Errorf("Each returned after %v, want 2s: a hopeless wait is not waited out", got)
		}
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "rate limiter") {
			t.Errorf("err = %v, want DeadlineExceeded mentioning the rate limiter", err)
		}
	})
}

func TestRateWaitThatWouldEndWithinTheMarginSkips(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		rep, _ := batch.Each(ctx, indexes(10), func(ctx context.Context, i, _ int) error { return nil },
			batch.Rate(rate.Every(2*time.Second), 1), batch.Margin(5*time.Second))
		// Turns at 0s, 2s, 4s; 6s would leave 4s, less than the margin.
		if rep.Succeeded != 3 || rep.Skipped != 7 {
			t.Errorf("counts %d/%d/%d, want 3/0/7", rep.Succeeded, rep.Failed, rep.Skipped)
		}
	})
}

func TestLimiterIsSharedBetweenBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lim := rate.NewLimiter(rate.Every(time.Second), 1)
		start := time.Now()
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				_, err := batch.Each(t.Context(), indexes(3), func(context.Context, int, int) error { return nil }, batch.Limiter(lim))
				if err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		// Six attempts, one token a second between them: the last at 5s.
		if got := time.Since(start); got != 5*time.Second {
			t.Errorf("two batches of three took %v, want 5s", got)
		}
	})
}

func TestRateCancelledWaitSkipsTheItem(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(1500*time.Millisecond, cancel)
		rep, err := batch.Each(ctx, indexes(5), func(context.Context, int, int) error { return nil },
			batch.Workers(5), batch.Rate(rate.Every(time.Second), 1))
		if rep.Succeeded != 2 || rep.Skipped != 3 || !errors.Is(err, context.Canceled) {
			t.Errorf("counts %d/%d/%d, err %v; want 2/0/3, Canceled", rep.Succeeded, rep.Failed, rep.Skipped, err)
		}
	})
}

func TestRetryCountsTheFirstTry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rep, err := batch.Each(t.Context(), indexes(1), func(context.Context, int, int) error { return errBoom },
			batch.Retry(3, backoff.Constant(time.Second), nil))
		o := rep.Items[0]
		if o.Status != batch.Failed || o.Attempts != 3 || o.Err != errBoom || o.Elapsed != 2*time.Second {
			t.Fatalf("outcome %+v, want Failed after 3 attempts and 2s", o)
		}
		var ie *batch.ItemError
		if !errors.As(err, &ie) || ie.Attempts != 3 || err.Error() != "item 0 (after 3 attempts): boom" {
			t.Errorf("err = %v, want item 0 after 3 attempts", err)
		}
	})
}

func TestRetryWaitsFollowThePolicyAndStopAtSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var starts []time.Duration
		rep, err := batch.Map(t.Context(), indexes(1), func(context.Context, int, int) (string, error) {
			starts = append(starts, time.Since(start))
			if len(starts) < 4 {
				return "", errBoom
			}
			return "done", nil
		}, batch.Retry(10, backoff.Exponential(time.Second, time.Minute), nil))
		if err != nil {
			t.Fatal(err)
		}
		want := []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second}
		if !slices.Equal(starts, want) {
			t.Errorf("attempts at %v, want %v", starts, want)
		}
		if o := rep.Items[0]; o.Value != "done" || o.Attempts != 4 || o.Elapsed != 7*time.Second {
			t.Errorf("outcome %+v, want done after 4 attempts and 7s", o)
		}
	})
}

func TestRetryableDecidesWhichErrorsAreRetried(t *testing.T) {
	errTransient := errors.New("503")
	var calls [2]atomic.Int64
	rep, _ := batch.Each(t.Context(), indexes(2), func(_ context.Context, i, _ int) error {
		calls[i].Add(1)
		if i == 0 {
			return errTransient
		}
		return errBoom
	}, batch.Retry(3, backoff.Constant(0), func(err error) bool { return errors.Is(err, errTransient) }))
	if calls[0].Load() != 3 || calls[1].Load() != 1 {
		t.Errorf("calls %d and %d, want 3 (retryable) and 1", calls[0].Load(), calls[1].Load())
	}
	if rep.Items[1].Attempts != 1 {
		t.Errorf("Items[1].Attempts = %d, want 1", rep.Items[1].Attempts)
	}
}

func TestRetryNeverRetriesPermanentErrorsOrPanics(t *testing.T) {
	rep, _ := batch.Each(t.Context(), indexes(3), func(_ context.Context, i, _ int) error {
		switch i {
		case 0:
			return fmt.Errorf("bad request: %w", crew.ErrPermanent)
		case 1:
			panic("bug")
		}
		return errBoom
	}, batch.Retry(5, backoff.Constant(0), nil))
	if got := []int{rep.Items[0].Attempts, rep.Items[1].Attempts, rep.Items[2].Attempts}; !slices.Equal(got, []int{1, 1, 5}) {
		t.Errorf("attempts %v, want [1 1 5]", got)
	}
	// A retryable that says yes to everything still cannot retry ErrPermanent.
	rep, _ = batch.Each(t.Context(), indexes(1), func(context.Context, int, int) error {
		return crew.ErrPermanent
	}, batch.Retry(5, backoff.Constant(0), func(error) bool { return true }))
	if rep.Items[0].Attempts != 1 {
		t.Errorf("ErrPermanent retried: %d attempts", rep.Items[0].Attempts)
	}
}

func TestRetryWaitThatWouldOverrunTheDeadlineKeepsTheLastError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		start := time.Now()
		n := 0
		rep, _ := batch.Each(ctx, indexes(1), func(context.Context, int, int) error {
			n++
			return fmt.Errorf("attempt %d failed", n)
		}, batch.Retry(5, backoff.Constant(2*time.Second), nil), batch.Margin(time.Second))
		// Attempts at 0s and 2s; a wait to 4s would leave 1s (the margin:
		// allowed); to 6s would pass the deadline.
		o := rep.Items[0]
		if o.Status != batch.Failed || o.Attempts != 3 || o.Err.Error() != "attempt 3 failed" {
			t.Errorf("outcome %+v, want Failed with attempt 3's error", o)
		}
		if got := time.Since(start); got != 4*time.Second {
			t.Errorf("Each returned after %v, want 4s", got)
		}
	})
}

func TestRetryStopsWhenTheBatchStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(90*time.Second, cancel)
		rep, err := batch.Each(ctx, indexes(1), func(context.Context, int, int) error { return errBoom },
			batch.Retry(100, backoff.Constant(time.Minute), nil))
		if o := rep.Items[0]; o.Attempts != 2 || o.Err != errBoom || o.Elapsed != 90*time.Second {
			t.Errorf("outcome %+v, want 2 attempts and the wait cut at 90s", o)
		}
		if !errors.Is(err, context.Canceled) || !errors.Is(err, errBoom) {
			t.Errorf("err = %v, want the cancellation and the item's error", err)
		}
	})
}

func TestItemTimeoutBoundsEachAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rep, _ := batch.Each(t.Context(), indexes(1), func(ctx context.Context, _, _ int) error {
			<-ctx.Done()
			return ctx.Err()
		}, batch.ItemTimeout(3*time.Second), batch.Retry(2, backoff.Constant(time.Second), nil))
		o := rep.Items[0]
		if o.Attempts != 2 || !errors.Is(o.Err, context.DeadlineExceeded) || o.Elapsed != 7*time.Second {
			t.Errorf("outcome %+v, want 2 timed-out attempts taking 3s+1s+3s", o)
		}
	})
}

func TestOnProgressIsSerializedAndEndsWithTheFinalCounts(t *testing.T) {
	var inside atomic.Bool
	var calls []batch.Progress
	_, err := batch.Each(t.Context(), indexes(500), func(_ context.Context, i, _ int) error {
		if i%7 == 0 {
			return errBoom
		}
		return nil
	}, batch.Workers(8), batch.OnProgress(func(p batch.Progress) {
		if !inside.CompareAndSwap(false, true) {
			t.Error("OnProgress called concurrently")
		}
		calls = append(calls, p)
		runtime.Gosched()
		inside.Store(false)
	}))
	if err == nil {
		t.Fatal("no error")
	}
	if len(calls) != 500 {
		t.Fatalf("%d calls, want one per item", len(calls))
	}
	for k, p := range calls {
		if p.Done != k+1 || p.Succeeded+p.Failed+p.Skipped != p.Done || p.Total != 500 {
			t.Fatalf("call %d: %+v", k, p)
		}
	}
	if last := calls[len(calls)-1]; last.Failed != 72 || last.Succeeded != 428 {
		t.Errorf("last call %+v, want 428 succeeded and 72 failed", last)
	}
}

func TestOnProgressFinalCallCountsSkippedItems(t *testing.T) {
	var last batch.Progress
	calls := 0
	batch.Each(t.Context(), indexes(10), func(context.Context, int, int) error { return errBoom },
		batch.Workers(1), batch.StopOnError(), batch.OnProgress(func(p batch.Progress) { calls++; last = p }))
	want := batch.Progress{Total: 10, Done: 10, Failed: 1, Skipped: 9, Elapsed: last.Elapsed}
	if calls != 2 || last != want {
		t.Errorf("%d calls, last %+v; want 2 calls, last %+v", calls, last, want)
	}
}

func TestInvalidOptionsAreReportedBeforeAnyItemStarts(t *testing.T) {
	for _, tc := range []struct {
		opt  batch.Option
		want string
	}{
		{batch.Workers(0), "Workers(0)"},
		{batch.Rate(0, 1), "Rate(0, 1)"},
		{batch.Rate(10, 0), "Rate(10, 0)"},
		{batch.Limiter(nil), "Limiter(nil)"},
		{batch.ItemTimeout(-time.Second), "ItemTimeout(-1s)"},
		{batch.Retry(0, nil, nil), "Retry(0"},
		{batch.MaxErrors(0), "MaxErrors(0)"},
		{batch.Margin(-time.Second), "Margin(-1s)"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			fn := func(context.Context, int, int) error {
				t.Error("an item started")
				return nil
			}
			rep, err := batch.Each(t.Context(), indexes(3), fn, tc.opt)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one naming %s", err, tc.want)
			}
			if rep.Skipped != 3 || len(rep.Items) != 3 || !errors.Is(rep.Items[0].Err, batch.ErrSkipped) {
				t.Errorf("report %+v, want every item Skipped", rep)
			}
			if _, err := batch.EachSeq(t.Context(), slices.Values(indexes(3)), fn, tc.opt); err == nil {
				t.Error("EachSeq accepted the option")
			}
		})
	}
}

func TestRateInfNeedsNoBurst(t *testing.T) {
	rep, err := batch.Each(t.Context(), indexes(3), func(context.Context, int, int) error { return nil }, batch.Rate(rate.Inf, 0))
	if err != nil || rep.Succeeded != 3 {
		t.Errorf("err %v, %d succeeded", err, rep.Succeeded)
	}
}

func TestNilFnPanics(t *testing.T) {
	for name, call := range map[string]func(){
		"Map":     func() { batch.Map[int, int](t.Context(), nil, nil) },
		"Each":    func() { batch.Each[int](t.Context(), nil, nil) },
		"MapSeq":  func() { batch.MapSeq[int, int](t.Context(), nil, nil) },
		"EachSeq": func() { batch.EachSeq[int](t.Context(), nil, nil) },
	} {
		func() {
			defer func() {
				if v := recover(); v == nil || !strings.Contains(fmt.Sprint(v), name) {
					t.Errorf("%s: recovered %v, want a panic naming it", name, v)
				}
			}()
			call()
		}()
	}
}

func TestStatusString(t *testing.T) {
	for s, want := range map[batch.Status]string{batch.Skipped: "skipped", batch.Succeeded: "succeeded", batch.Failed: "failed", 9: "Status(9)"} {
		if got := s.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", s, got, want)
		}
	}
}

func TestRateAppliesToEveryAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var starts []time.Duration
		rep, _ := batch.Each(t.Context(), indexes(1), func(context.Context, int, int) error {
			starts = append(starts, time.Since(start))
			if len(starts) < 3 {
				return errBoom
			}
			return nil
		}, batch.Rate(rate.Every(time.Second), 1), batch.Retry(3, backoff.Constant(0), nil))
		// Retries are requests too: each one waits for its turn.
		if want := []time.Duration{0, time.Second, 2 * time.Second}; !slices.Equal(starts, want) {
			t.Errorf("attempts at %v, want %v", starts, want)
		}
		if o := rep.Items[0]; o.Status != batch.Succeeded || o.Elapsed != 2*time.Second {
			t.Errorf("outcome %+v, want Succeeded after 2s (the retries' turns count)", o)
		}
	})
}

func TestLimiterThatCanNeverGrantSkipsEverything(t *testing.T) {
	rep, err := batch.Each(t.Context(), indexes(3), func(_ context.Context, i, _ int) error {
		t.Errorf("item %d started", i)
		return nil
	}, batch.Limiter(rate.NewLimiter(1, 0)))
	if rep.Skipped != 3 || err == nil || !strings.Contains(err.Error(), "burst") {
		t.Errorf("Skipped %d, err %v; want 3 and an error about the burst", rep.Skipped, err)
	}
}

func TestTheLastOfTwoOptionsCounts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g gauge
		batch.Each(t.Context(), indexes(10), func(context.Context, int, int) error {
			g.enter()
			defer g.exit()
			time.Sleep(time.Second)
			return nil
		}, batch.Workers(2), batch.Workers(5))
		if got := g.max.Load(); got != 5 {
			t.Errorf("%d at once, want 5", got)
		}
	})
}
