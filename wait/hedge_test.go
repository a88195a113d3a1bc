package wait_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/crewgo/crew"
	"github.com/crewgo/crew/wait"
)

// hedged is a Hedge function whose attempts take the given times, succeed or
// fail as told, and record when they started and how they ended.
type hedged struct {
	start    time.Time
	take     func(attempt int) (time.Duration, error)
	mu       sync.Mutex
	started  []time.Duration // by attempt: when it started, since start
	causes   map[int]error   // cause of the attempts that were cancelled
	finished int
}

func newHedged(take func(attempt int) (time.Duration, error)) *hedged {
	return &hedged{start: time.Now(), take: take, causes: map[int]error{}}
}

func (h *hedged) fn(ctx context.Context, attempt int) (int, error) {
	h.mu.Lock()
	h.started = append(h.started, time.Since(h.start))
	h.mu.Unlock()
	d, err := h.take(attempt)
	defer func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.finished++
	}()
	select {
	case <-time.After(d):
		return attempt, err
	case <-ctx.Done():
		h.mu.Lock()
		defer h.mu.Unlock()
		h.causes[attempt] = context.Cause(ctx)
		return 0, ctx.Err()
	}
}

func TestHedgeStartsASecondAttemptAfterTheDelayAndReturnsTheFaster(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHedged(func(attempt int) (time.Duration, error) {
			if attempt == 0 {
				return 10 * time.Second, nil // stuck
			}
			return 50 * time.Millisecond, nil
		})
		got, err := wait.Hedge(t.Context(), h.fn, wait.HedgeAfter(100*time.Millisecond, 1))
		if err != nil || got != 1 {
			t.Fatalf("Hedge = %d, %v; want attempt 1's answer", got, err)
		}
		if elapsed := time.Since(h.start); elapsed != 150*time.Millisecond {
			t.Errorf("Hedge returned after %v, want 150ms", elapsed)
		}
		if want := []time.Duration{0, 100 * time.Millisecond}; !slices.Equal(h.started, want) {
			t.Errorf("attempts started at %v, want %v", h.started, want)
		}
		if h.causes[0] != wait.ErrLost || h.finished != 2 {
			t.Errorf("attempt 0: cause %v, %d attempts finished; want ErrLost and both finished", h.causes[0], h.finished)
		}
	})
}

func TestHedgeMakesNoExtraAttemptWhenTheFirstAnswersInTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHedged(func(int) (time.Duration, error) { return 50 * time.Millisecond, nil })
		got, err := wait.Hedge(t.Context(), h.fn, wait.HedgeAfter(100*time.Millisecond, 3))
		if err != nil || got != 0 || len(h.started) != 1 {
			t.Errorf("Hedge = %d, %v after %d attempts; want attempt 0 alone", got, err, len(h.started))
		}
	})
}

func TestHedgeStartsTheNextAttemptAtOnceWhenOneFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHedged(func(attempt int) (time.Duration, error) {
			if attempt == 0 {
				return 10 * time.Millisecond, errA
			}
			return 20 * time.Millisecond, nil
		})
		got, err := wait.Hedge(t.Context(), h.fn, wait.HedgeAfter(time.Second, 1))
		if err != nil || got != 1 {
			t.Fatalf("Hedge = %d, %v; want attempt 1's answer", got, err)
		}
		if want := []time.Duration{0, 10 * time.Millisecond}; !slices.Equal(h.started, want) {
			t.Errorf("attempts started at %v, want %v: the failure, not the delay, starts attempt 1", h.started, want)
		}
	})
}

func TestHedgeDoesNotLetAFastFailureWin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHedged(func(attempt int) (time.Duration, error) {
			if attempt == 0 {
				return 100 * time.Millisecond, nil
			}
			return time.Millisecond, errB // fails long before attempt 0 answers
		})
		got, err := wait.Hedge(t.Context(), h.fn, wait.HedgeAfter(10*time.Millisecond, 1))
		if err != nil || got != 0 {
			t.Errorf("Hedge = %d, %v; want attempt 0's success", got, err)
		}
		if elapsed := time.Since(h.start); elapsed != 100*time.Millisecond {
			t.Errorf("Hedge returned after %v, want 100ms", elapsed)
		}
	})
}

func TestHedgeStopsAfterMaxHedgesAndJoinsTheErrorsInAttemptOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		errs := []error{errA, errB, errC}
		h := newHedged(func(attempt int) (time.Duration, error) {
			// Attempt 2 fails first, attempt 0 last.
			return []time.Duration{time.Second, 500 * time.Millisecond, 100 * time.Millisecond}[attempt], errs[attempt]
		})
		_, err := wait.Hedge(t.Context(), h.fn, wait.HedgeAfter(100*time.Millisecond, 2))
		if want := []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond}; !slices.Equal(h.started, want) {
			t.Errorf("attempts started at %v, want %v", h.started, want)
		}
		if want := "attempt 0: error A\nattempt 1: error B\nattempt 2: error C"; err == nil || err.Error() != want {
			t.Fatalf("error = %q, want %q", err, want)
		}
		for i, e := range unjoin(t, err) {
			var ae *wait.AttemptError
			if !errors.As(e, &ae) || ae.Attempt != i || ae.Err != errs[i] {
				t.Errorf("error %d = %#v, want *AttemptError{Attempt: %d}", i, e, i)
			}
		}
	})
}

func TestHedgeWithoutHedgeAfterHedgesOnceAfterOneSecond(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHedged(func(attempt int) (time.Duration, error) {
			if attempt == 0 {
				return time.Hour, nil
			}
			return time.Hour, errA
		})
		_, err := wait.Hedge(t.Context(), h.fn, wait.MaxWait(time.Minute))
		if want := []time.Duration{0, time.Second}; !slices.Equal(h.started, want) {
			t.Errorf("attempts started at %v, want %v", h.started, want)
		}
		if err != wait.ErrMaxWait {
			t.Errorf("error = %v, want ErrMaxWait alone: both attempts were cancelled", err)
		}
	})
}

func TestHedgeWithNegativeMaxHedgesMakesASingleAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHedged(func(int) (time.Duration, error) { return time.Millisecond, errA })
		_, err := wait.Hedge(t.Context(), h.fn, wait.HedgeAfter(time.Microsecond, -1))
		var ae *wait.AttemptError
		if !errors.As(err, &ae) || ae.Attempt != 0 || len(h.started) != 1 {
			t.Errorf("error = %v after %d attempts, want attempt 0's error alone", err, len(h.started))
		}
	})
}

func TestHedgeWithZeroDelayStartsEveryAttemptAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHedged(func(attempt int) (time.Duration, error) { return time.Duration(3-attempt) * time.Second, nil })
		got, err := wait.Hedge(t.Context(), h.fn, wait.HedgeAfter(0, 2))
		if err != nil || got != 2 || !slices.Equal(h.started, []time.Duration{0, 0, 0}) {
			t.Errorf("Hedge = %d, %v, attempts started at %v; want attempt 2, all started at 0", got, err, h.started)
		}
	})
}

func TestHedgeStopsAtATerminalError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		denied := errors.New("AccessDenied")
		h := newHedged(func(attempt int) (time.Duration, error) {
			if attempt == 0 {
				return time.Hour, nil
			}
			return 5 * time.Millisecond, denied // at 15ms, before the next hedge at 20ms
		})
		_, err := wait.Hedge(t.Context(), h.fn, wait.HedgeAfter(10*time.Millisecond, 5),
			wait.Terminal(func(err error) bool { return errors.Is(err, denied) }))
		var ae *wait.AttemptError
		if !errors.As(err, &ae) || ae.Attempt != 1 || ae.Err != denied {
			t.Errorf("error = %v, want attempt 1's terminal error", err)
		}
		if len(h.started) != 2 || !errors.Is(h.causes[0], denied) {
			t.Errorf("%d attempts started, attempt 0 cancelled with %v; want 2 and the terminal error", len(h.started), h.causes[0])
		}
	})
}

func TestHedgeLeavesTheWinnersContextAlive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		got, err := wait.Hedge(ctx, func(ctx context.Context, attempt int) (context.Context, error) {
			if attempt == 0 {
				return blockUntilDone[context.Context](ctx)
			}
			return ctx, nil
		}, wait.HedgeAfter(time.Millisecond, 1))
		if err != nil || got.Err() != nil {
			t.Fatalf("Hedge = %v, %v; want a live context", got, err)
		}
		cancel()
		<-got.Done()
	})
}

func TestHedgeRepanicsOnceEveryAttemptHasReturned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHedged(func(int) (time.Duration, error) { return time.Hour, nil })
		defer func() {
			if _, ok := recover().(*crew.PanicError); !ok {
				t.Fatal("Hedge did not re-raise the panic as a *crew.PanicError")
			}
			if h.finished != 1 || h.causes[0] == nil {
				t.Errorf("attempt 0 finished: %d, cause %v; want it cancelled and returned", h.finished, h.causes[0])
			}
		}()
		wait.Hedge(t.Context(), func(ctx context.Context, attempt int) (int, error) {
			if attempt == 1 {
				explode()
			}
			return h.fn(ctx, attempt)
		}, wait.HedgeAfter(time.Millisecond, 1))
		t.Error("Hedge returned instead of panicking")
	})
}

func TestHedgeWithNilFunctionFailsAtOnce(t *testing.T) {
	if _, err := wait.Hedge[int](context.Background(), nil); err != wait.ErrNilTask {
		t.Errorf("error = %v, want ErrNilTask", err)
	}
}
