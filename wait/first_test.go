package wait_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/crewgo/crew"
	"github.com/crewgo/crew/wait"
	"go.uber.org/goleak"
)

func TestFirstReturnsAtTheFirstSuccessWithoutWaitingForSlowLosers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		slow := func(ctx context.Context) (string, error) {
			select {
			case <-time.After(10 * time.Second):
				return "slow", nil
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
		fast := func(ctx context.Context) (string, error) {
			time.Sleep(5 * time.Millisecond)
			return "fast", nil
		}
		start := time.Now()
		win, err := wait.First(t.Context(), []wait.Task[string]{slow, fast, slow})
		if err != nil {
			t.Fatalf("First: %v", err)
		}
		if want := (wait.Win[string]{Value: "fast", Index: 1}); win != want {
			t.Errorf("First = %+v, want %+v", win, want)
		}
		if elapsed := time.Since(start); elapsed != 5*time.Millisecond {
			t.Errorf("First returned after %v, want 5ms (the winner's time)", elapsed)
		}
	})
}

func TestFirstCancelsEveryLoserAndWaitsForItToReturn(t *testing.T) {
	defer goleak.VerifyNone(t)
	const losers = 4
	started := make(chan struct{}, losers)
	var returned atomic.Int32
	causes := make([]error, losers+1)
	loser := func(i int) wait.Task[int] {
		return func(ctx context.Context) (int, error) {
			defer returned.Add(1)
			started <- struct{}{}
			<-ctx.Done()
			causes[i] = context.Cause(ctx)
			return 0, ctx.Err()
		}
	}
	winner := func(ctx context.Context) (int, error) {
		for range losers {
			<-started // every loser is running
		}
		return 42, nil
	}
	tasks := []wait.Task[int]{loser(0), loser(1), winner, loser(3), loser(4)}
	win, err := wait.First(context.Background(), tasks)
	if err != nil || win.Value != 42 || win.Index != 2 {
		t.Fatalf("First = %+v, %v; want {42 2}, nil", win, err)
	}
	if n := returned.Load(); n != losers {
		t.Errorf("%d of %d losers had returned when First returned", n, losers)
	}
	for i, cause := range causes {
		if i != 2 && cause != wait.ErrLost {
			t.Errorf("loser %d saw cause %v, want ErrLost", i, cause)
		}
	}
}

func TestFirstSucceedsWhenOnlyTheLastTaskSucceeds(t *testing.T) {
	failed := make(chan struct{}, 2)
	fail := func(err error) wait.Task[string] {
		return func(context.Context) (string, error) {
			defer func() { failed <- struct{}{} }()
			return "", err
		}
	}
	succeed := func(context.Context) (string, error) {
		<-failed
		<-failed
		return "ok", nil
	}
	win, err := wait.First(context.Background(), []wait.Task[string]{fail(errA), fail(errB), succeed})
	if err != nil || win.Value != "ok" || win.Index != 2 {
		t.Fatalf("First = %+v, %v; want {ok 2}, nil", win, err)
	}
}

func TestFirstJoinsEveryErrorInTaskOrderWhatever_TheOrderTheyFail(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		errs := []error{errA, errB, errC}
		tasks := make([]wait.Task[int], len(errs))
		for i, e := range errs {
			tasks[i] = func(context.Context) (int, error) {
				time.Sleep(time.Duration(len(errs)-i) * time.Millisecond) // the last fails first
				return 0, e
			}
		}
		win, err := wait.First(t.Context(), tasks)
		if win.Index != -1 {
			t.Errorf("Index = %d on error, want -1", win.Index)
		}
		if want := "task 0: error A\ntask 1: error B\ntask 2: error C"; err == nil || err.Error() != want {
			t.Fatalf("error = %q, want %q", err, want)
		}
		for i, e := range unjoin(t, err) {
			var te *wait.TaskError
			if !errors.As(e, &te) || te.Index != i || te.Err != errs[i] {
				t.Errorf("error %d = %#v, want *TaskError{Index: %d, Err: %v}", i, e, i, errs[i])
			}
		}
	})
}

func TestFirstPutsTheParentCauseBeforeEarlierFailuresAndDropsCancelledErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		shutdown := errors.New("shutting down")
		ctx, cancel := context.WithCancelCause(t.Context())
		time.AfterFunc(time.Second, func() { cancel(shutdown) })
		var seenErr, seenCause error
		tasks := []wait.Task[int]{
			func(context.Context) (int, error) { return 0, errA },
			func(ctx context.Context) (int, error) {
				<-ctx.Done()
				seenErr, seenCause = ctx.Err(), context.Cause(ctx)
				return 0, fmt.Errorf("aborted: %w", ctx.Err())
			},
		}
		_, err := wait.First(ctx, tasks)
		errs := unjoin(t, err)
		if len(errs) != 2 || errs[0] != shutdown || !errors.Is(errs[1], errA) {
			t.Fatalf("error = %q, want the parent's cause then task 0's error, and nothing from task 1", err)
		}
		if seenErr != context.Canceled || seenCause != shutdown {
			t.Errorf("task 1 saw Err %v and cause %v, want the parent's: %v, %v", seenErr, seenCause, context.Canceled, shutdown)
		}
	})
}

func TestFirstTasksSeeTheParentsDeadlineAndItsError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		want, _ := ctx.Deadline()
		deadlines := make([]time.Time, 2)
		seenErrs := make([]error, 2)
		task := func(i int) wait.Task[int] {
			return func(ctx context.Context) (int, error) {
				deadlines[i], _ = ctx.Deadline()
				<-ctx.Done()
				seenErrs[i] = ctx.Err()
				return 0, ctx.Err()
			}
		}
		_, err := wait.First(ctx, []wait.Task[int]{task(0), task(1)})
		if err != context.DeadlineExceeded {
			t.Errorf("error = %v, want context.DeadlineExceeded alone", err)
		}
		for i := range 2 {
			if !deadlines[i].Equal(want) {
				t.Errorf("task %d saw deadline %v, want the parent's %v", i, deadlines[i], want)
			}
			if seenErrs[i] != context.DeadlineExceeded {
				t.Errorf("task %d's ctx.Err() = %v, want context.DeadlineExceeded", i, seenErrs[i])
			}
		}
	})
}

func TestFirstTasksSeeTheParentsValues(t *testing.T) {
	type key struct{}
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "request-42"))
	defer cancel()
	for _, opts := range [][]wait.Option{nil, {wait.MaxWait(time.Hour), wait.AttemptTimeout(time.Hour)}} {
		win, err := wait.First(ctx, []wait.Task[any]{func(ctx context.Context) (any, error) { return ctx.Value(key{}), nil }}, opts...)
		if err != nil || win.Value != "request-42" {
			t.Errorf("with %d options, the task saw value %v (%v), want request-42", len(opts), win.Value, err)
		}
	}
}

func TestFirstStopsEverythingAtATerminalError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		denied := errors.New("AccessDenied")
		var cause error
		tasks := []wait.Task[int]{
			func(context.Context) (int, error) { return 0, errA }, // not terminal
			func(context.Context) (int, error) {
				time.Sleep(time.Millisecond)
				return 0, denied
			},
			func(ctx context.Context) (int, error) {
				<-ctx.Done()
				cause = context.Cause(ctx)
				return 0, ctx.Err()
			},
		}
		start := time.Now()
		_, err := wait.First(t.Context(), tasks, wait.Terminal(func(err error) bool { return errors.Is(err, denied) }))
		if elapsed := time.Since(start); elapsed != time.Millisecond {
			t.Errorf("First returned after %v, want 1ms", elapsed)
		}
		errs := unjoin(t, err)
		var te *wait.TaskError
		if len(errs) != 2 || !errors.As(errs[0], &te) || te.Index != 1 || te.Err != denied || !errors.Is(errs[1], errA) {
			t.Fatalf("error = %q, want task 1's terminal error, then task 0's", err)
		}
		if !errors.Is(cause, denied) {
			t.Errorf("task 2 was cancelled with cause %v, want the terminal error", cause)
		}
	})
}

func TestFirstHandsLateSuccessesToDiscard(t *testing.T) {
	var discarded []string
	tasks := []wait.Task[string]{
		func(context.Context) (string, error) { return "winner", nil },
		func(ctx context.Context) (string, error) {
			<-ctx.Done()
			return "late", nil // a response that arrived as it was cancelled
		},
		func(ctx context.Context) (string, error) {
			<-ctx.Done()
			return "", ctx.Err()
		},
	}
	win, err := wait.First(context.Background(), tasks, wait.Discard(func(s string) { discarded = append(discarded, s) }))
	if err != nil || win.Value != "winner" {
		t.Fatalf("First = %+v, %v; want winner", win, err)
	}
	if len(discarded) != 1 || discarded[0] != "late" {
		t.Errorf("Discard got %q, want [late]", discarded)
	}
}

func TestFirstDiscardsEverySuccessWhenItFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var discarded []string
		tasks := []wait.Task[string]{
			func(ctx context.Context) (string, error) {
				<-ctx.Done()
				return "after MaxWait", nil
			},
		}
		_, err := wait.First(t.Context(), tasks, wait.MaxWait(time.Second), wait.Discard(func(s string) { discarded = append(discarded, s) }))
		if err != wait.ErrMaxWait {
			t.Errorf("error = %v, want ErrMaxWait", err)
		}
		if len(discarded) != 1 || discarded[0] != "after MaxWait" {
			t.Errorf("Discard got %q, want the success that came too late", discarded)
		}
	})
}

func TestFirstLeavesTheWinnersContextAliveUntilTheParentEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancelCause(t.Context())
		var loserCtx context.Context
		tasks := []wait.Task[context.Context]{
			func(ctx context.Context) (context.Context, error) { return ctx, nil },
			func(ctx context.Context) (context.Context, error) {
				<-ctx.Done()
				loserCtx = ctx
				return nil, ctx.Err()
			},
		}
		win, err := wait.First(ctx, tasks)
		if err != nil {
			t.Fatalf("First: %v", err)
		}
		if loserCtx.Err() == nil {
			t.Error("the loser's context is not cancelled")
		}
		if err := win.Value.Err(); err != nil {
			t.Fatalf("the winner's context ended with First: %v", err)
		}
		stop := errors.New("stop")
		cancel(stop)
		<-win.Value.Done() // synctest reports a deadlock if it never ends
		if win.Value.Err() != context.Canceled || context.Cause(win.Value) != stop {
			t.Errorf("winner's context: Err %v, cause %v; want %v, %v", win.Value.Err(), context.Cause(win.Value), context.Canceled, stop)
		}
	})
}

func TestFirstWinnersContextUnderBackgroundIsNotCancelled(t *testing.T) {
	win, err := wait.First(context.Background(), []wait.Task[context.Context]{
		func(ctx context.Context) (context.Context, error) { return ctx, nil },
	})
	if err != nil || win.Value.Err() != nil {
		t.Errorf("First = %v; winner's context Err %v; want a live context", err, win.Value.Err())
	}
}

// A winning response's body must stay readable after First returns, however
// large (failsafe-go#65, hedgedhttp#7, resty#1197).
func TestFirstWinningResponseBodyIsReadableAfterFirstReturns(t *testing.T) {
	body := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB: more than the transport buffers
	loserServed, loserCancelled := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(loserServed)
			<-r.Context().Done()
			close(loserCancelled)
			return
		}
		<-loserServed // the loser's request is in flight when the winner answers
		io.WriteString(w, body)
	}))
	defer srv.Close()
	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}
	get := func(path string) wait.Task[*http.Response] {
		return func(ctx context.Context) (*http.Response, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
			if err != nil {
				return nil, err
			}
			return client.Do(req)
		}
	}
	win, err := wait.First(context.Background(), []wait.Task[*http.Response]{get("/slow"), get("/fast")})
	if err != nil {
		t.Fatalf("First: %v", err)
	}
	defer win.Value.Body.Close()
	<-loserCancelled
	got, err := io.ReadAll(win.Value.Body)
	if err != nil || len(got) != len(body) {
		t.Errorf("read %d of %d bytes of the winner's body after First returned: %v", len(got), len(body), err)
	}
}

// countingCtx is a cancellable context that counts the callbacks registered
// on it (by context.AfterFunc and by contexts derived from it) and not yet
// released.
type countingCtx struct {
	context.Context
	values context.Context // the same values, without the cancel that would bypass AfterFunc
	live   atomic.Int64
}

func newCountingCtx(parent context.Context) (*countingCtx, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	return &countingCtx{Context: ctx, values: context.WithoutCancel(ctx)}, cancel
}

func (c *countingCtx) Value(key any) any { return c.values.Value(key) }

func (c *countingCtx) AfterFunc(f func()) func() bool {
	c.live.Add(1)
	stop := context.AfterFunc(c.Context, f)
	var once sync.Once
	return func() bool {
		stopped := stop()
		if stopped {
			once.Do(func() { c.live.Add(-1) })
		}
		return stopped
	}
}

// waitForLive collects garbage until at most want callbacks are registered.
func (c *countingCtx) waitForLive(t *testing.T, want int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for c.live.Load() > want {
		if time.Now().After(deadline) {
			t.Fatalf("%d callbacks still registered with the parent, want %d", c.live.Load(), want)
		}
		runtime.GC()
		time.Sleep(time.Millisecond) // cleanups run on their own goroutine
	}
}

func TestFirstDoesNotLeaveWinnersRegisteredWithALongLivedParent(t *testing.T) {
	parent, cancel := newCountingCtx(context.Background())
	defer cancel()
	winner := func(ctx context.Context) (context.Context, error) { return ctx, nil }
	loser := func(ctx context.Context) (context.Context, error) { return blockUntilDone[context.Context](ctx) }

	var kept context.Context
	for i := range 100 {
		win, err := wait.First(parent, []wait.Task[context.Context]{loser, winner})
		if err != nil {
			t.Fatalf("First: %v", err)
		}
		if i == 0 {
			kept = win.Value
		}
	}
	if n := parent.live.Load(); n == 0 {
		t.Fatal("no winner's context is registered with the parent: the parent could not cancel them")
	}
	parent.waitForLive(t, 1) // every winner's context but the one still in use
	if kept.Err() != nil {
		t.Fatalf("the winner's context still in use ended: %v", kept.Err())
	}
	cancel()
	<-kept.Done()
	if kept.Err() != context.Canceled {
		t.Errorf("kept context's Err = %v, want context.Canceled from the parent", kept.Err())
	}
}

func TestFirstReleasesTheWinnersContextOnceNothingUsesIt(t *testing.T) {
	parent, cancel := newCountingCtx(context.Background())
	defer cancel()
	for range 10 {
		_, err := wait.First(parent, []wait.Task[int]{func(context.Context) (int, error) { return 1, nil }})
		if err != nil {
			t.Fatalf("First: %v", err)
		}
	}
	parent.waitForLive(t, 0)
}

// explode panics; tests look for its name in the recovered stack.
func explode() { panic("boom") }

func TestFirstRepanicsInTheCallerOnceEverySiblingHasReturned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var siblingReturned atomic.Bool
		var siblingCause error
		tasks := []wait.Task[int]{
			func(ctx context.Context) (int, error) {
				defer siblingReturned.Store(true)
				<-ctx.Done() // only the panic's cancellation ends it
				siblingCause = context.Cause(ctx)
				return 0, ctx.Err()
			},
			func(context.Context) (int, error) {
				explode()
				return 1, nil
			},
		}
		defer func() {
			pe, ok := recover().(*crew.PanicError)
			if !ok {
				t.Fatalf("recovered %T, want *crew.PanicError", pe)
			}
			if pe.Value != "boom" || !strings.Contains(pe.Error(), "wait_test.explode") {
				t.Errorf("panic value %v, message without the panic site:\n%s", pe.Value, pe.Error())
			}
			if !siblingReturned.Load() {
				t.Error("First panicked before the sibling had returned")
			}
			if !errors.As(siblingCause, &pe) {
				t.Errorf("sibling was cancelled with cause %v, want the panic", siblingCause)
			}
		}()
		wait.First(t.Context(), tasks)
		t.Error("First returned instead of panicking")
	})
}

func TestFirstWithPanicAsErrorReturnsThePanicAsTheTasksError(t *testing.T) {
	tasks := []wait.Task[int]{
		blockUntilDone[int],
		func(context.Context) (int, error) {
			explode()
			return 1, nil
		},
	}
	_, err := wait.First(context.Background(), tasks, wait.PanicAsError())
	var te *wait.TaskError
	var pe *crew.PanicError
	if !errors.As(err, &te) || te.Index != 1 || !errors.As(err, &pe) || pe.Value != "boom" {
		t.Fatalf("error = %v, want task 1's *crew.PanicError", err)
	}
	if len(unjoin(t, err)) != 1 {
		t.Errorf("error = %q, want only the panic: task 0 was cancelled", err)
	}
}

func TestFirstWithAWinnerStillRepanicsALosersPanic(t *testing.T) {
	var discarded []int
	tasks := []wait.Task[int]{
		func(context.Context) (int, error) { return 1, nil },
		func(ctx context.Context) (int, error) {
			<-ctx.Done()
			explode()
			return 0, nil
		},
	}
	defer func() {
		if _, ok := recover().(*crew.PanicError); !ok {
			t.Fatal("the loser's panic was swallowed")
		}
		if len(discarded) != 1 || discarded[0] != 1 {
			t.Errorf("Discard got %v, want the winner's value, which First did not return", discarded)
		}
	}()
	wait.First(context.Background(), tasks, wait.Discard(func(v int) { discarded = append(discarded, v) }))
}

func TestFirstWithoutTasksFailsAtOnce(t *testing.T) {
	win, err := wait.First[int](context.Background(), nil)
	if err != wait.ErrNoTasks || win.Index != -1 {
		t.Errorf("First(nil) = %+v, %v; want Index -1, ErrNoTasks", win, err)
	}
}

func TestFirstTreatsANilTaskAsAFailure(t *testing.T) {
	win, err := wait.First(context.Background(), []wait.Task[int]{nil, func(context.Context) (int, error) { return 2, nil }})
	if err != nil || win.Index != 1 {
		t.Errorf("First = %+v, %v; want task 1 to win", win, err)
	}
	_, err = wait.First(context.Background(), []wait.Task[int]{nil})
	var te *wait.TaskError
	if !errors.Is(err, wait.ErrNilTask) || !errors.As(err, &te) || te.Index != 0 {
		t.Errorf("First([nil]) error = %v, want task 0: ErrNilTask", err)
	}
}

func TestFirstWithAnEndedContextRunsNoTask(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	gone := errors.New("gone")
	cancel(gone)
	ran := false
	_, err := wait.First(ctx, []wait.Task[int]{func(context.Context) (int, error) { ran = true; return 1, nil }})
	if err != gone || ran {
		t.Errorf("error = %v, task ran: %v; want the cause and no run", err, ran)
	}
}

func TestFirstMaxWaitCancelsEveryTaskAndJoinsErrMaxWaitWithTheFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var seen error
		tasks := []wait.Task[int]{
			func(context.Context) (int, error) {
				time.Sleep(time.Second)
				return 0, errA
			},
			func(ctx context.Context) (int, error) {
				<-ctx.Done()
				seen = ctx.Err()
				return 0, ctx.Err()
			},
		}
		start := time.Now()
		_, err := wait.First(t.Context(), tasks, wait.MaxWait(3*time.Second))
		if elapsed := time.Since(start); elapsed != 3*time.Second {
			t.Errorf("First returned after %v, want 3s", elapsed)
		}
		errs := unjoin(t, err)
		if len(errs) != 2 || errs[0] != wait.ErrMaxWait || !errors.Is(errs[1], errA) {
			t.Errorf("error = %q, want ErrMaxWait then task 0's error", err)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Error("errors.Is(err, context.DeadlineExceeded) = false")
		}
		if seen != context.DeadlineExceeded {
			t.Errorf("task 1's ctx.Err() = %v, want context.DeadlineExceeded", seen)
		}
	})
}

func TestFirstAttemptTimeoutFailsAHungTaskButNotTheWinner(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tasks := []wait.Task[int]{
			blockUntilDone[int],
			func(context.Context) (int, error) {
				time.Sleep(2 * time.Second)
				return 0, errB
			},
		}
		_, err := wait.First(t.Context(), tasks, wait.AttemptTimeout(time.Second))
		errs := unjoin(t, err)
		var te *wait.TaskError
		if len(errs) != 2 || !errors.As(errs[0], &te) || te.Index != 0 || te.Err != wait.ErrAttemptTimeout || !errors.Is(errs[1], errB) {
			t.Fatalf("error = %q, want task 0: ErrAttemptTimeout, then task 1's error", err)
		}

		start := time.Now()
		win, err := wait.First(t.Context(), []wait.Task[context.Context]{
			func(ctx context.Context) (context.Context, error) { return ctx, nil },
		}, wait.AttemptTimeout(time.Second))
		if err != nil || win.Value.Err() != nil {
			t.Fatalf("First = %v, %v; want a live winner's context", win.Value, err)
		}
		if deadline, _ := win.Value.Deadline(); !deadline.Equal(start.Add(time.Second)) {
			t.Errorf("winner's deadline %v, want %v", deadline, start.Add(time.Second))
		}
	})
}

func TestFirstTaskThatCallsGoexitFails(t *testing.T) {
	_, err := wait.First(context.Background(), []wait.Task[int]{func(context.Context) (int, error) {
		runtime.Goexit()
		return 1, nil
	}})
	if err == nil || !strings.Contains(err.Error(), "Goexit") {
		t.Errorf("error = %v, want one that names runtime.Goexit", err)
	}
}

func TestFirstPanicsOnDiscardOfAnotherTypeBeforeStarting(t *testing.T) {
	ran := false
	defer func() {
		if v := recover(); v == nil || ran {
			t.Errorf("recovered %v, task ran: %v; want a panic before any task runs", v, ran)
		}
	}()
	wait.First(context.Background(), []wait.Task[int]{func(context.Context) (int, error) { ran = true; return 1, nil }},
		wait.Discard(func(string) {}))
}
