package wait_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/crewgo/crew"
	"github.com/crewgo/crew/backoff"
	"github.com/crewgo/crew/wait"
)

// poller is a probe that records when it was called and answers from a
// script: one (value, error) per call, the last repeated for ever.
type poller struct {
	start   time.Time
	calls   []time.Duration
	answers []answer
}

type answer struct {
	status string
	err    error
}

func newPoller(answers ...answer) *poller { return &poller{start: time.Now(), answers: answers} }

func (p *poller) probe(context.Context) (string, error) {
	p.calls = append(p.calls, time.Since(p.start))
	a := p.answers[min(len(p.calls), len(p.answers))-1]
	return a.status, a.err
}

func statusOK(status string, err error) wait.State {
	switch {
	case err != nil:
		return wait.Retry
	case status == "ok":
		return wait.Done
	case status == "terminated":
		return wait.Fail
	}
	return wait.Retry
}

func seconds(s ...float64) []time.Duration {
	d := make([]time.Duration, len(s))
	for i, v := range s {
		d[i] = time.Duration(v * float64(time.Second))
	}
	return d
}

func TestUntilReturnsTheValueOnceStateSaysDone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPoller(answer{"pending", nil}, answer{"", errA}, answer{"ok", nil})
		got, err := wait.Until(t.Context(), p.probe, statusOK, wait.Delay(backoff.Constant(time.Second)))
		if err != nil || got != "ok" {
			t.Fatalf("Until = %q, %v; want ok", got, err)
		}
		if want := seconds(0, 1, 2); !slices.Equal(p.calls, want) {
			t.Errorf("probed at %v, want %v", p.calls, want)
		}
	})
}

func TestUntilReturnsAtOnceWhenStateSaysFail(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPoller(answer{"pending", nil}, answer{"terminated", nil})
		_, err := wait.Until(t.Context(), p.probe, statusOK, wait.Delay(backoff.Constant(time.Second)))
		var ae *wait.AttemptError
		if !errors.Is(err, wait.ErrFailed) || !errors.As(err, &ae) || ae.Attempt != 1 {
			t.Errorf("error = %v, want attempt 1: ErrFailed", err)
		}
		if len(p.calls) != 2 {
			t.Errorf("probed %d times, want 2", len(p.calls))
		}
	})
}

func TestUntilTimeoutIsDeadlineExceededAndWrapsTheLastProbeError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var last error
		n := 0
		probe := func(context.Context) (string, error) {
			n++
			last = fmt.Errorf("not ready (probe %d)", n)
			return "", last
		}
		_, err := wait.Until(t.Context(), probe, nil, wait.MaxWait(10*time.Second), wait.Delay(backoff.Constant(3*time.Second)))
		for _, target := range []error{wait.ErrMaxWait, context.DeadlineExceeded, last} {
			if !errors.Is(err, target) {
				t.Errorf("errors.Is(%q, %q) = false", err, target)
			}
		}
		if want := "wait: gave up after MaxWait\nattempt 4: not ready (probe 5)"; err.Error() != want {
			t.Errorf("error = %q, want %q", err, want)
		}
	})
}

func TestUntilShortensTheLastSleepToLeaveTimeForAFinalProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPoller(answer{"pending", nil})
		start := time.Now()
		_, err := wait.Until(t.Context(), p.probe, statusOK, wait.MaxWait(10*time.Second), wait.Delay(backoff.Constant(3*time.Second)))
		// At 9s, a 3s sleep would end past the deadline: Until sleeps half of
		// the 1s left and probes a last time.
		if want := seconds(0, 3, 6, 9, 9.5); !slices.Equal(p.calls, want) {
			t.Errorf("probed at %v, want %v", p.calls, want)
		}
		if elapsed := time.Since(start); elapsed != 9500*time.Millisecond || err != wait.ErrMaxWait {
			t.Errorf("Until returned %v after %v, want ErrMaxWait after the final probe at 9.5s", err, elapsed)
		}
	})
}

func TestUntilLeavesAttemptTimeoutForTheFinalProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPoller(answer{"pending", nil})
		wait.Until(t.Context(), p.probe, statusOK, wait.MaxWait(10*time.Second),
			wait.AttemptTimeout(time.Second), wait.Delay(backoff.Constant(4*time.Second)))
		if want := seconds(0, 4, 8, 9); !slices.Equal(p.calls, want) {
			t.Errorf("probed at %v, want %v", p.calls, want)
		}
	})
}

func TestUntilAttemptTimeoutBoundsAHungProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var begun []time.Duration
		probe := func(ctx context.Context) (string, error) {
			begun = append(begun, time.Since(start))
			<-ctx.Done() // hung until its context ends
			return "", ctx.Err()
		}
		_, err := wait.Until(t.Context(), probe, nil, wait.MaxWait(5*time.Second),
			wait.AttemptTimeout(time.Second), wait.Delay(backoff.Constant(500*time.Millisecond)))
		// 0-1s, 1.5-2.5s, 3-4s, then 4.5s until MaxWait cuts it at 5s.
		if want := seconds(0, 1.5, 3, 4.5); !slices.Equal(begun, want) {
			t.Errorf("probes began at %v, want %v", begun, want)
		}
		if elapsed := time.Since(start); elapsed != 5*time.Second {
			t.Errorf("Until returned after %v, want 5s", elapsed)
		}
		// The last probe was cut short by MaxWait; the error before it says more.
		errs := unjoin(t, err)
		var ae *wait.AttemptError
		if len(errs) != 2 || errs[0] != wait.ErrMaxWait || !errors.As(errs[1], &ae) || ae.Attempt != 2 || ae.Err != wait.ErrAttemptTimeout {
			t.Errorf("error = %q, want ErrMaxWait and attempt 2: ErrAttemptTimeout", err)
		}
	})
}

func TestUntilReturnsTheParentsCauseJoinedWithTheLastError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancelCause(t.Context())
		stop := errors.New("deploy cancelled")
		time.AfterFunc(2500*time.Millisecond, func() { cancel(stop) })
		p := newPoller(answer{"", errA})
		_, err := wait.Until(ctx, p.probe, nil, wait.MaxWait(time.Minute), wait.Delay(backoff.Constant(time.Second)))
		errs := unjoin(t, err)
		var ae *wait.AttemptError
		if len(errs) != 2 || errs[0] != stop || !errors.As(errs[1], &ae) || ae.Attempt != 2 || ae.Err != errA {
			t.Errorf("error = %q, want the cause, then attempt 2: error A", err)
		}
		if errors.Is(err, wait.ErrMaxWait) {
			t.Error("a cancelled parent is reported as ErrMaxWait")
		}
	})
}

func TestUntilReportsTheParentsCauseEvenWhenStateFailsTheCutShortProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancelCause(t.Context())
		stop := errors.New("deploy cancelled")
		time.AfterFunc(time.Second, func() { cancel(stop) })
		probe := func(ctx context.Context) (int, error) { return blockUntilDone[int](ctx) }
		failOnError := func(_ int, err error) wait.State {
			if err != nil {
				return wait.Fail
			}
			return wait.Done
		}
		_, err := wait.Until(ctx, probe, failOnError)
		if err != stop {
			t.Errorf("error = %v, want the parent's cause alone", err)
		}
	})
}

func TestUntilReportsTheParentsDeadlineAsDeadlineExceededNotErrMaxWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		p := newPoller(answer{"", errA})
		_, err := wait.Until(ctx, p.probe, nil, wait.MaxWait(time.Minute), wait.Delay(backoff.Constant(3*time.Second)))
		if want := seconds(0, 3, 6, 9, 9.5); !slices.Equal(p.calls, want) {
			t.Errorf("probed at %v, want %v", p.calls, want)
		}
		if errs := unjoin(t, err); len(errs) != 2 || errs[0] != context.DeadlineExceeded || !errors.Is(errs[1], errA) {
			t.Errorf("error = %q, want context.DeadlineExceeded and the last error", err)
		}
	})
}

func TestUntilFailsAtOnceOnATerminalError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		denied := errors.New("AccessDenied")
		p := newPoller(answer{"", denied})
		_, err := wait.Until(t.Context(), p.probe, nil, wait.MaxWait(time.Hour),
			wait.Terminal(func(err error) bool { return errors.Is(err, denied) }))
		var ae *wait.AttemptError
		if !errors.As(err, &ae) || ae.Attempt != 0 || ae.Err != denied || len(p.calls) != 1 {
			t.Errorf("error = %v after %d probes, want attempt 0: AccessDenied after 1", err, len(p.calls))
		}
	})
}

func TestUntilTerminalDoesNotOverrideADoneState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		notFound := errors.New("NotFound")
		p := newPoller(answer{"", notFound})
		deleted := func(_ string, err error) wait.State {
			if errors.Is(err, notFound) {
				return wait.Done
			}
			return wait.Retry
		}
		_, err := wait.Until(t.Context(), p.probe, deleted, wait.Terminal(func(error) bool { return true }))
		if err != nil {
			t.Errorf("error = %v, want nil: state said Done", err)
		}
	})
}

func TestUntilWithNilStateRetriesUntilTheProbeSucceeds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPoller(answer{"", errA}, answer{"", errB}, answer{"up", nil})
		got, err := wait.Until(t.Context(), p.probe, nil, wait.Delay(backoff.Constant(time.Second)))
		if err != nil || got != "up" || len(p.calls) != 3 {
			t.Errorf("Until = %q, %v after %d probes; want up after 3", got, err, len(p.calls))
		}
	})
}

func TestUntilHandsTheValuesItDropsToDiscard(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPoller(answer{"pending", nil}, answer{"", errA}, answer{"starting", nil}, answer{"ok", nil})
		var discarded []string
		got, err := wait.Until(t.Context(), p.probe, statusOK, wait.Delay(backoff.Constant(time.Second)),
			wait.Discard(func(s string) { discarded = append(discarded, s) }))
		if err != nil || got != "ok" {
			t.Fatalf("Until = %q, %v", got, err)
		}
		if want := []string{"pending", "starting"}; !slices.Equal(discarded, want) {
			t.Errorf("Discard got %q, want %q", discarded, want)
		}
	})
}

func TestUntilCallsTheDelayPolicyWithTheNumberOfFailedProbes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ns []int
		policy := func(n int) time.Duration {
			ns = append(ns, n)
			return time.Duration(n) * time.Second
		}
		p := newPoller(answer{"", errA}, answer{"", errA}, answer{"", errA}, answer{"ok", nil})
		wait.Until(t.Context(), p.probe, statusOK, wait.Delay(policy))
		if !slices.Equal(ns, []int{1, 2, 3}) || !slices.Equal(p.calls, seconds(0, 1, 3, 6)) {
			t.Errorf("policy called with %v, probes at %v; want [1 2 3] and [0s 1s 3s 6s]", ns, p.calls)
		}
	})
}

func TestUntilDefaultDelayIsJitteredExponentialFrom100msTo5s(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPoller(answer{"pending", nil})
		wait.Until(t.Context(), p.probe, statusOK, wait.MaxWait(time.Minute))
		ceiling := 100 * time.Millisecond
		for i := 1; i < len(p.calls)-1; i++ { // the last sleep is shortened
			if gap := p.calls[i] - p.calls[i-1]; gap < ceiling/2 || gap > ceiling {
				t.Errorf("sleep %d lasted %v, want between %v and %v", i, gap, ceiling/2, ceiling)
			}
			ceiling = min(2*ceiling, 5*time.Second)
		}
	})
}

func TestUntilKeepsTheContextOfTheProbeThatEndedTheWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		got, err := wait.Until(t.Context(), func(ctx context.Context) (context.Context, error) { return ctx, nil },
			nil, wait.MaxWait(time.Minute), wait.AttemptTimeout(time.Second))
		if err != nil || got.Err() != nil {
			t.Fatalf("Until = %v, %v; want a live context", got, err)
		}
		<-got.Done() // its AttemptTimeout still applies
		if elapsed := time.Since(start); elapsed != time.Second || got.Err() != context.DeadlineExceeded {
			t.Errorf("context ended after %v with %v, want context.DeadlineExceeded after its 1s AttemptTimeout", elapsed, got.Err())
		}
	})
}

func TestUntilRepanicsAPanicInTheProbeWithoutRetrying(t *testing.T) {
	calls := 0
	defer func() {
		pe, ok := recover().(*crew.PanicError)
		if !ok || !strings.Contains(pe.Error(), "wait_test.explode") {
			t.Fatalf("recovered %v, want a *crew.PanicError from explode", pe)
		}
		if calls != 1 {
			t.Errorf("probed %d times, want 1", calls)
		}
	}()
	wait.Until(context.Background(), func(context.Context) (int, error) { calls++; explode(); return 0, nil }, nil)
}

func TestUntilWithPanicAsErrorFailsWithThePanic(t *testing.T) {
	_, err := wait.Until(context.Background(), func(context.Context) (int, error) { explode(); return 0, nil }, nil, wait.PanicAsError())
	var pe *crew.PanicError
	var ae *wait.AttemptError
	if !errors.As(err, &pe) || !errors.As(err, &ae) || ae.Attempt != 0 {
		t.Errorf("error = %v, want attempt 0: *crew.PanicError", err)
	}
}

func TestUntilFailsOnAnInvalidState(t *testing.T) {
	_, err := wait.Until(context.Background(), func(context.Context) (int, error) { return 0, nil },
		func(int, error) wait.State { return wait.State(7) })
	if err == nil || !strings.Contains(err.Error(), "State(7)") {
		t.Errorf("error = %v, want one that names State(7)", err)
	}
}

func TestUntilWithAnEndedContextDoesNotProbe(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := 0
	_, err := wait.Until(ctx, func(context.Context) (int, error) { calls++; return 0, nil }, nil)
	if err != context.Canceled || calls != 0 {
		t.Errorf("error = %v after %d probes, want context.Canceled after none", err, calls)
	}
}

func TestUntilWithNilProbeFailsAtOnce(t *testing.T) {
	if _, err := wait.Until[int](context.Background(), nil, nil); err != wait.ErrNilTask {
		t.Errorf("error = %v, want ErrNilTask", err)
	}
}

func TestErrMaxWaitIsADeadlineExceeded(t *testing.T) {
	for _, err := range []error{wait.ErrMaxWait, wait.ErrAttemptTimeout} {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("errors.Is(%v, context.DeadlineExceeded) = false", err)
		}
		if to, ok := err.(interface{ Timeout() bool }); !ok || !to.Timeout() {
			t.Errorf("%v does not report Timeout() true", err)
		}
	}
	if errors.Is(wait.ErrMaxWait, wait.ErrAttemptTimeout) {
		t.Error("ErrMaxWait matches ErrAttemptTimeout")
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[wait.State]string{wait.Retry: "Retry", wait.Done: "Done", wait.Fail: "Fail", 9: "State(9)"} {
		if got := s.String(); got != want {
			t.Errorf("State(%d).String() = %q, want %q", int(s), got, want)
		}
	}
}
