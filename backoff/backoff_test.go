package backoff_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/crewgo/crew/backoff"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestExponentialDoublesUpToMax(t *testing.T) {
	p := backoff.Exponential(100*time.Millisecond, time.Second)
	want := []time.Duration{100, 100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		attempt := i // attempt 0 counts as 1
		if got := p(attempt); got != w*time.Millisecond {
			t.Errorf("p(%d) = %v, want %v", attempt, got, w*time.Millisecond)
		}
	}
	if got := p(1 << 30); got != time.Second {
		t.Errorf("p(huge) = %v, want max without overflow", got)
	}
}

func TestExponentialWithMaxBelowMinWaitsMin(t *testing.T) {
	p := backoff.Exponential(time.Second, time.Millisecond)
	for n := 1; n < 5; n++ {
		if got := p(n); got != time.Second {
			t.Errorf("p(%d) = %v, want 1s", n, got)
		}
	}
	if got := backoff.Exponential(-time.Second, time.Second)(3); got != 0 {
		t.Errorf("negative min: p(3) = %v, want 0", got)
	}
}

func TestConstant(t *testing.T) {
	if got := backoff.Constant(time.Second)(7); got != time.Second {
		t.Errorf("Constant(1s)(7) = %v", got)
	}
	if got := backoff.Constant(-time.Second)(1); got != 0 {
		t.Errorf("Constant(-1s)(1) = %v, want 0", got)
	}
}

func TestJitterStaysInRangeAndVaries(t *testing.T) {
	base := backoff.Constant(time.Second)
	for _, tc := range []struct {
		name   string
		p      backoff.Policy
		lo, hi time.Duration
	}{
		{"full", backoff.FullJitter(base), 0, time.Second},
		{"equal", backoff.EqualJitter(base), time.Second / 2, time.Second},
	} {
		seen := make(map[time.Duration]bool)
		for range 1000 {
			d := tc.p(1)
			if d < tc.lo || d > tc.hi {
				t.Fatalf("%s jitter: %v outside [%v, %v]", tc.name, d, tc.lo, tc.hi)
			}
			seen[d] = true
		}
		if len(seen) < 900 {
			t.Errorf("%s jitter: only %d distinct values in 1000 draws", tc.name, len(seen))
		}
	}
	if got := backoff.FullJitter(backoff.Constant(0))(1); got != 0 {
		t.Errorf("jitter of 0 = %v", got)
	}
}

func TestPoliciesAreSafeForConcurrentUse(t *testing.T) {
	p := backoff.EqualJitter(backoff.Exponential(time.Millisecond, time.Second))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for n := range 1000 {
				if d := p(n); d < 0 || d > time.Second {
					t.Errorf("p(%d) = %v", n, d)
				}
			}
		})
	}
	wg.Wait()
}

func TestClampShortensToTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if got := backoff.Clamp(ctx, 10*time.Second); got != 3*time.Second {
			t.Errorf("Clamp = %v, want the 3s left", got)
		}
		if got := backoff.Clamp(ctx, time.Second); got != time.Second {
			t.Errorf("Clamp = %v, want 1s unchanged", got)
		}
		if got := backoff.Clamp(context.Background(), time.Hour); got != time.Hour {
			t.Errorf("Clamp without deadline = %v", got)
		}
		time.Sleep(4 * time.Second)
		if got := backoff.Clamp(ctx, time.Second); got != 0 {
			t.Errorf("Clamp after the deadline = %v, want 0", got)
		}
	})
}

func TestSleepWaitsTheFullDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if err := backoff.Sleep(context.Background(), 2*time.Second); err != nil {
			t.Fatal(err)
		}
		if got := time.Since(start); got != 2*time.Second {
			t.Errorf("slept %v, want 2s", got)
		}
	})
}

func TestSleepRefusesToOverrunTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		err := backoff.Sleep(ctx, 5*time.Second)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Sleep = %v, want DeadlineExceeded", err)
		}
		if time.Since(start) != 0 {
			t.Errorf("Sleep waited %v for a deadline it could not outlive", time.Since(start))
		}
	})
}

func TestSleepReturnsTheCauseWhenCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cause := errors.New("shutting down")
		ctx, cancel := context.WithCancelCause(context.Background())
		go func() {
			time.Sleep(time.Second)
			cancel(cause)
		}()
		if err := backoff.Sleep(ctx, time.Hour); err != cause {
			t.Fatalf("Sleep = %v, want the cause", err)
		}
		if err := backoff.Sleep(ctx, 0); err != cause {
			t.Fatalf("Sleep on a done context = %v, want the cause", err)
		}
	})
}
