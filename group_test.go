package crew_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/crewgo/crew"
	"github.com/crewgo/crew/backoff"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if runChild() {
		return
	}
	goleak.VerifyTestMain(m)
}

var quiet = slog.New(slog.DiscardHandler)

// untilDone is a well-behaved worker: it runs until its context is done.
func untilDone(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

// recorder collects events and names in order, safely from any goroutine.
type recorder struct {
	mu  sync.Mutex
	log []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, s)
}

func (r *recorder) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.log)
}

func (r *recorder) event(e crew.Event) {
	if e.Worker == "" {
		r.add(e.Kind.String())
		return
	}
	r.add(e.Kind.String() + " " + e.Worker)
}

func TestZeroGroupWithoutWorkersReturnsNil(t *testing.T) {
	var g crew.Group // the zero value, Logger included
	if err := g.Run(context.Background()); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	select {
	case <-g.Ready():
	default:
		t.Fatal("Ready not closed for a group with no workers")
	}
}

func TestRunWaitsForEveryWorkerAfterAFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := crew.Group{Logger: quiet}
		boom := errors.New("boom")
		var slowDone atomic.Bool
		g.Add("failing", crew.Func(func(ctx context.Context) error { return boom }))
		g.Add("slow", crew.Func(func(ctx context.Context) error {
			<-ctx.Done()
			time.Sleep(3 * time.Second) // a drain that takes a while
			slowDone.Store(true)
			return nil
		}))
		start := time.Now()
		err := g.Run(context.Background())
		if !slowDone.Load() {
			t.Fatal("Run returned before the slow worker finished its drain")
		}
		if got := time.Since(start); got != 3*time.Second {
			t.Errorf("Run took %v, want the slow worker's 3s drain", got)
		}
		if !errors.Is(err, boom) {
			t.Fatalf("Run = %v, want it to wrap boom", err)
		}
	})
}

func TestEveryFailingWorkerIsReportedByName(t *testing.T) {
	g := crew.Group{Logger: quiet}
	errs := map[string]error{
		"first":  errors.New("first failed"),
		"second": errors.New("second failed on stop"),
		"third":  errors.New("third failed on stop"),
	}
	g.Add("first", crew.Func(func(ctx context.Context) error { return errs["first"] }))
	for _, name := range []string{"second", "third"} {
		g.Add(name, crew.Func(func(ctx context.Context) error {
			<-ctx.Done()
			return errs[name]
		}))
	}
	g.Add("clean", crew.Func(untilDone))

	err := g.Run(context.Background())
	var ce *crew.Error
	if !errors.As(err, &ce) {
		t.Fatalf("Run = %v (%T), want *crew.Error", err, err)
	}
	if len(ce.Workers) != 3 {
		t.Fatalf("Error.Workers = %v, want 3 failures", ce.Workers)
	}
	for _, we := range ce.Workers {
		if want := errs[we.Name]; want == nil || !errors.Is(we.Err, want) {
			t.Errorf("worker %q reported %v", we.Name, we.Err)
		}
	}
	for name, want := range errs {
		if !errors.Is(err, want) {
			t.Errorf("errors.Is(Run's error, %s's error) = false", name)
		}
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error message %q does not name %q", err, name)
		}
	}
	var first *crew.WorkerError
	if !errors.As(ce.Cause, &first) || first.Name != "first" {
		t.Errorf("Error.Cause = %v, want the first worker's failure", ce.Cause)
	}
}

func TestWorkersSeeTheCauseOfTheStop(t *testing.T) {
	boom := errors.New("boom")
	g := crew.Group{Logger: quiet}
	seen := make(chan error, 1)
	g.Add("failing", crew.Func(func(ctx context.Context) error { return boom }))
	g.Add("watcher", crew.Func(func(ctx context.Context) error {
		<-ctx.Done()
		seen <- context.Cause(ctx)
		return ctx.Err()
	}))
	_ = g.Run(context.Background())
	cause := <-seen
	var we *crew.WorkerError
	if !errors.As(cause, &we) || we.Name != "failing" || !errors.Is(cause, boom) {
		t.Fatalf("watcher saw cause %v, want the failing worker's *WorkerError", cause)
	}
}

func TestContextEndIsACleanStop(t *testing.T) {
	g := crew.Group{Logger: quiet}
	for _, name := range []string{"a", "b", "c"} {
		g.Add(name, crew.Func(untilDone))
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-g.Ready()
		cancel()
	}()
	if err := g.Run(ctx); err != nil {
		t.Fatalf("Run = %v, want nil after the context ended", err)
	}
}

func TestWorkerReturningItsCauseIsNotAFailure(t *testing.T) {
	stop := errors.New("maintenance")
	g := crew.Group{Logger: quiet}
	g.Add("a", crew.Func(func(ctx context.Context) error {
		<-ctx.Done()
		return fmt.Errorf("interrupted: %w", context.Cause(ctx))
	}))
	ctx, cancel := context.WithCancelCause(context.Background())
	go func() {
		<-g.Ready()
		cancel(stop)
	}()
	if err := g.Run(ctx); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
}

func TestStopWithNilCauseReturnsNil(t *testing.T) {
	g := crew.Group{Logger: quiet}
	seen := make(chan error, 1)
	g.Add("a", crew.Func(func(ctx context.Context) error {
		<-ctx.Done()
		seen <- context.Cause(ctx)
		return nil
	}))
	go func() {
		<-g.Ready()
		g.Stop(nil)
	}()
	if err := g.Run(context.Background()); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if cause := <-seen; !errors.Is(cause, crew.ErrStopped) {
		t.Errorf("worker saw cause %v, want ErrStopped", cause)
	}
}

func TestStopWithCauseIsReported(t *testing.T) {
	reason := errors.New("config changed")
	g := crew.Group{Logger: quiet}
	seen := make(chan error, 1)
	g.Add("a", crew.Func(func(ctx context.Context) error {
		<-ctx.Done()
		seen <- context.Cause(ctx)
		return ctx.Err()
	}))
	go func() {
		<-g.Ready()
		g.Stop(reason)
		g.Stop(errors.New("ignored: only the first Stop counts"))
	}()
	err := g.Run(context.Background())
	var ce *crew.Error
	if !errors.As(err, &ce) || ce.Cause != reason || len(ce.Workers) != 0 {
		t.Fatalf("Run = %#v, want *Error with Cause %v and no worker failures", err, reason)
	}
	if cause := <-seen; cause != reason {
		t.Errorf("worker saw cause %v, want %v", cause, reason)
	}
}

func TestStopBeforeRunStartsNothing(t *testing.T) {
	g := crew.Group{Logger: quiet}
	var started atomic.Bool
	g.Add("a", crew.Func(func(ctx context.Context) error {
		started.Store(true)
		return untilDone(ctx)
	}))
	g.Stop(nil)
	if err := g.Run(context.Background()); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if started.Load() {
		t.Fatal("worker started although Stop came before Run")
	}
}

func TestWorkerReturningNilStopsTheGroupCleanly(t *testing.T) {
	g := crew.Group{Logger: quiet}
	seen := make(chan error, 1)
	g.Add("quitter", crew.Func(func(ctx context.Context) error { return nil }))
	g.Add("server", crew.Func(func(ctx context.Context) error {
		<-ctx.Done()
		seen <- context.Cause(ctx)
		return ctx.Err()
	}))
	if err := g.Run(context.Background()); err != nil {
		t.Fatalf("Run = %v, want nil: returning nil is not a failure", err)
	}
	if cause := <-seen; !errors.Is(cause, crew.ErrStopped) || !strings.Contains(cause.Error(), "quitter") {
		t.Errorf("server saw cause %v, want ErrStopped naming the quitter", cause)
	}
}

func TestOneShotNilDoesNotStopTheGroup(t *testing.T) {
	g := crew.Group{Logger: quiet}
	migrated := make(chan struct{})
	g.Add("migrate", crew.Func(func(ctx context.Context) error {
		close(migrated)
		return nil
	}), crew.OneShot())
	g.Add("server", crew.Func(untilDone))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	<-migrated
	<-g.Ready()
	select {
	case err := <-done:
		t.Fatalf("Run returned %v after a OneShot worker finished", err)
	default:
	}
	if st := g.Status(); st[0].State != crew.StateDone || st[1].State != crew.StateRunning {
		t.Errorf("Status = %+v, want migrate done and server running", st)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
}

func TestWorkersAfterAOneShotWaitForItToFinish(t *testing.T) {
	g := crew.Group{Logger: quiet}
	finishMigration := make(chan struct{})
	var migrated atomic.Bool
	serverStarted := make(chan bool, 1)
	g.Add("migrate", crew.Func(func(ctx context.Context) error {
		<-finishMigration
		migrated.Store(true)
		return nil
	}), crew.OneShot())
	g.Add("server", crew.Func(func(ctx context.Context) error {
		serverStarted <- migrated.Load()
		return untilDone(ctx)
	}), crew.After("migrate"))
	crewtestStart(t, &g, func() {
		if st := g.Status(); st[1].State != crew.StatePending {
			t.Errorf("server is %v while the migration runs, want pending", st[1].State)
		}
		close(finishMigration)
		if !<-serverStarted {
			t.Error("server started before the migration finished")
		}
	})
}

func TestOneShotErrorStopsTheGroup(t *testing.T) {
	boom := errors.New("migration failed")
	g := crew.Group{Logger: quiet}
	g.Add("migrate", crew.Func(func(ctx context.Context) error { return boom }), crew.OneShot())
	g.Add("server", crew.Func(untilDone))
	if err := g.Run(context.Background()); !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want the migration error", err)
	}
}

func TestAllOneShotWorkersFinishingEndsRun(t *testing.T) {
	g := crew.Group{Logger: quiet}
	var n atomic.Int32
	for _, name := range []string{"a", "b", "c"} {
		g.Add(name, crew.Func(func(ctx context.Context) error { n.Add(1); return nil }), crew.OneShot())
	}
	if err := g.Run(context.Background()); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if n.Load() != 3 {
		t.Fatalf("%d workers ran, want 3", n.Load())
	}
}

func TestAfterOrdersStartAndReversesStop(t *testing.T) {
	var rec recorder
	g := crew.Group{Logger: quiet}
	worker := func(name string) crew.Func {
		return func(ctx context.Context) error {
			rec.add("start " + name)
			crew.MarkReady(ctx)
			<-ctx.Done()
			rec.add("stop " + name)
			return nil
		}
	}
	// Added in an order that is not the dependency order.
	g.Add("http", worker("http"), crew.After("cache", "db"), crew.WaitReady())
	g.Add("cache", worker("cache"), crew.After("db"), crew.WaitReady())
	g.Add("db", worker("db"), crew.WaitReady())
	go func() {
		<-g.Ready()
		g.Stop(nil)
	}()
	if err := g.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{"start db", "start cache", "start http", "stop http", "stop cache", "stop db"}
	if got := rec.lines(); !slices.Equal(got, want) {
		t.Fatalf("order = %q\nwant    %q", got, want)
	}
}

func TestWaitReadyHoldsBackDependents(t *testing.T) {
	g := crew.Group{Logger: quiet}
	markReady := make(chan struct{})
	dependentStarted := make(chan struct{})
	g.Add("db", crew.Func(func(ctx context.Context) error {
		<-markReady
		crew.MarkReady(ctx)
		return untilDone(ctx)
	}), crew.WaitReady())
	g.Add("api", crew.Func(func(ctx context.Context) error {
		close(dependentStarted)
		return untilDone(ctx)
	}), crew.After("db"))
	crewtestStart(t, &g, func() {
		select {
		case <-dependentStarted:
			t.Fatal("api started before db was ready")
		default:
		}
		if st := g.Status(); st[0].Ready || st[1].State != crew.StatePending {
			t.Errorf("Status = %+v, want db not ready and api pending", st)
		}
		close(markReady)
		<-dependentStarted
	})
}

// crewtestStart runs g until body returns, then stops it and checks that Run
// returned nil. (The crewtest package's Start waits for readiness, which this
// file's tests need to observe before it happens.)
func crewtestStart(t *testing.T, g *crew.Group, body func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- g.Run(context.Background()) }()
	body()
	g.Stop(nil)
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
}

func TestIndependentWorkersStopTogether(t *testing.T) {
	g := crew.Group{Logger: quiet}
	var cancelled sync.WaitGroup
	cancelled.Add(2)
	both := make(chan struct{})
	for _, name := range []string{"a", "b"} {
		g.Add(name, crew.Func(func(ctx context.Context) error {
			<-ctx.Done()
			cancelled.Done()
			<-both // each returns only once the other was cancelled too
			return nil
		}))
	}
	go func() {
		cancelled.Wait()
		close(both)
	}()
	go func() {
		<-g.Ready()
		g.Stop(nil)
	}()
	if err := g.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestAfterUnknownWorkerIsAnError(t *testing.T) {
	g := crew.Group{Logger: quiet}
	g.Add("api", crew.Func(untilDone), crew.After("db"))
	err := g.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), `"db"`) {
		t.Fatalf("Run = %v, want an error naming the unknown worker", err)
	}
}

func TestDependencyCycleIsAnError(t *testing.T) {
	g := crew.Group{Logger: quiet}
	var started atomic.Bool
	w := crew.Func(func(ctx context.Context) error { started.Store(true); return untilDone(ctx) })
	g.Add("a", w, crew.After("c"))
	g.Add("b", w, crew.After("a"))
	g.Add("c", w, crew.After("b"))
	g.Add("free", w)
	err := g.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Fatalf("Run = %v, want a cycle error", err)
	}
	if !strings.Contains(err.Error(), "a -> c -> b -> a") {
		t.Errorf("cycle error %q does not show the cycle", err)
	}
	if started.Load() {
		t.Error("a worker started although the group was invalid")
	}
}

func TestStragglerIsNamedAndRunReturnsAtStopTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := crew.Group{StopTimeout: 2 * time.Second, Logger: quiet}
		release := make(chan struct{})
		g.Add("stubborn", crew.Func(func(ctx context.Context) error {
			<-release // ignores its context
			return nil
		}))
		g.Add("polite", crew.Func(untilDone))
		var stopAt time.Time
		go func() {
			<-g.Ready()
			stopAt = time.Now()
			g.Stop(nil)
		}()
		err := g.Run(context.Background())
		if got := time.Since(stopAt); got != 2*time.Second {
			t.Errorf("Run returned %v after Stop, want exactly StopTimeout (2s)", got)
		}
		var ce *crew.Error
		if !errors.As(err, &ce) || !slices.Equal(ce.Stragglers, []string{"stubborn"}) {
			t.Fatalf("Run = %v, want the stubborn worker named as a straggler", err)
		}
		if len(ce.Workers) != 0 {
			t.Errorf("Workers = %v, want none: stragglers are not failures", ce.Workers)
		}
		if st := g.Status(); st[0].State != crew.StateStraggling || st[1].State != crew.StateDone {
			t.Errorf("Status = %+v", st)
		}
		close(release)
	})
}

func TestStragglerWithRealClockReturnsPromptly(t *testing.T) {
	// The same property on the real clock, with a wide margin: the point is
	// that Run does not wait for a worker that ignores its context.
	g := crew.Group{StopTimeout: 200 * time.Millisecond, Logger: quiet}
	release := make(chan struct{})
	defer close(release)
	g.Add("stubborn", crew.Func(func(ctx context.Context) error { <-release; return nil }))
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-g.Ready()
		cancel()
	}()
	start := time.Now()
	err := g.Run(ctx)
	if elapsed := time.Since(start); elapsed > 200*time.Millisecond+100*time.Millisecond {
		t.Errorf("Run took %v, want at most StopTimeout + 100ms", elapsed)
	}
	var ce *crew.Error
	if !errors.As(err, &ce) || len(ce.Stragglers) != 1 {
		t.Fatalf("Run = %v, want one straggler", err)
	}
}

func TestStopTimeoutIsOneBudgetForOrderedStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := crew.Group{StopTimeout: 10 * time.Second, Logger: quiet}
		slowStop := func(d time.Duration) crew.Func {
			return func(ctx context.Context) error {
				<-ctx.Done()
				time.Sleep(d)
				return nil
			}
		}
		g.Add("db", slowStop(6*time.Second))
		g.Add("api", slowStop(6*time.Second), crew.After("db"))
		var stopAt time.Time
		go func() {
			<-g.Ready()
			stopAt = time.Now()
			g.Stop(nil)
		}()
		err := g.Run(context.Background())
		// api takes 6s, then db would take 6s more: 12s > 10s budget.
		if got := time.Since(stopAt); got != 10*time.Second {
			t.Errorf("stop took %v, want the 10s budget", got)
		}
		var ce *crew.Error
		if !errors.As(err, &ce) || !slices.Equal(ce.Stragglers, []string{"db"}) {
			t.Fatalf("Run = %v, want db as the straggler", err)
		}
		time.Sleep(10 * time.Second) // let db's goroutine finish inside the bubble
	})
}

func TestDrainContextEndsBeforeTheStopDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type key struct{}
		g := crew.Group{StopTimeout: 5 * time.Second, Logger: quiet}
		type drained struct {
			deadline   time.Time
			hasDL      bool
			endedAfter time.Duration
			value      any
			err        error
		}
		got := make(chan drained, 1)
		g.Add("drainer", crew.Func(func(ctx context.Context) error {
			<-ctx.Done()
			start := time.Now()
			dctx := crew.DrainContext(ctx)
			if dctx.Err() != nil {
				t.Error("DrainContext already done when the drain begins")
			}
			dl, ok := dctx.Deadline()
			<-dctx.Done()
			got <- drained{dl, ok, time.Since(start), dctx.Value(key{}), dctx.Err()}
			return nil
		}))
		ctx := context.WithValue(context.Background(), key{}, "v")
		var stopAt time.Time
		go func() {
			<-g.Ready()
			stopAt = time.Now()
			g.Stop(nil)
		}()
		if err := g.Run(ctx); err != nil {
			t.Fatalf("Run = %v, want nil: the drainer returned before the deadline", err)
		}
		d := <-got
		if !d.hasDL || d.deadline.After(stopAt.Add(5*time.Second)) || d.deadline.Before(stopAt.Add(4*time.Second)) {
			t.Errorf("drain deadline %v (ok=%v), want within the last second before %v", d.deadline, d.hasDL, stopAt.Add(5*time.Second))
		}
		if d.endedAfter > 5*time.Second || d.endedAfter < 4*time.Second {
			t.Errorf("drain context ended after %v", d.endedAfter)
		}
		if d.value != "v" {
			t.Errorf("drain context lost the worker context's values: %v", d.value)
		}
		if !errors.Is(d.err, context.DeadlineExceeded) {
			t.Errorf("drain context Err = %v, want DeadlineExceeded", d.err)
		}
	})
}

func TestDrainContextOutsideAGroupNeverEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d := crew.DrainContext(ctx)
	if d.Err() != nil || d.Done() != nil {
		t.Fatalf("DrainContext outside a group: Err=%v Done=%v, want a context that never ends", d.Err(), d.Done())
	}
}

func TestDerivedDrainContextNeedsNoGoroutine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := crew.Group{StopTimeout: time.Second, Logger: quiet}
		g.Add("a", crew.Func(func(ctx context.Context) error {
			<-ctx.Done()
			child, cancel := context.WithTimeout(crew.DrainContext(ctx), time.Hour)
			defer cancel()
			<-child.Done() // ends with the drain, a little before the 1s deadline
			if !errors.Is(child.Err(), context.DeadlineExceeded) {
				t.Errorf("child Err = %v", child.Err())
			}
			return nil
		}))
		go func() {
			<-g.Ready()
			g.Stop(nil)
		}()
		if err := g.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

func TestDrainDelayKeepsWorkersRunningWhileNotReady(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := crew.Group{DrainDelay: 5 * time.Second, Logger: quiet}
		cancelledAt := make(chan time.Time, 1)
		g.Add("server", crew.Func(func(ctx context.Context) error {
			<-ctx.Done()
			cancelledAt <- time.Now()
			return nil
		}))
		ready := g.ReadyHandler()
		probe := func() int {
			rr := httptest.NewRecorder()
			ready.ServeHTTP(rr, httptest.NewRequest("GET", "/readyz", nil))
			return rr.Code
		}
		done := make(chan error, 1)
		go func() { done <- g.Run(context.Background()) }()
		<-g.Ready()
		if code := probe(); code != http.StatusOK {
			t.Fatalf("readiness before stop = %d, want 200", code)
		}
		stopAt := time.Now()
		g.Stop(nil)
		synctest.Wait()
		if code := probe(); code != http.StatusServiceUnavailable {
			t.Errorf("readiness during DrainDelay = %d, want 503", code)
		}
		select {
		case <-cancelledAt:
			t.Fatal("worker cancelled before DrainDelay passed")
		default:
		}
		if got := (<-cancelledAt).Sub(stopAt); got != 5*time.Second {
			t.Errorf("worker cancelled %v after Stop, want DrainDelay (5s)", got)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

func TestSecondStopCutsTheDrainShort(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := crew.Group{DrainDelay: 10 * time.Second, StopTimeout: time.Hour, Logger: quiet}
		drainEnded := make(chan time.Time, 1)
		g.Add("server", crew.Func(func(ctx context.Context) error {
			<-ctx.Done()
			<-crew.DrainContext(ctx).Done() // a drain that would take all the time it is given
			drainEnded <- time.Now()
			return nil
		}))
		done := make(chan error, 1)
		go func() { done <- g.Run(context.Background()) }()
		<-g.Ready()
		g.Stop(nil)
		time.Sleep(time.Second) // inside DrainDelay
		hurriedAt := time.Now()
		g.Stop(errors.New("second Ctrl-C")) // cuts the drain; its cause is ignored
		if got := (<-drainEnded).Sub(hurriedAt); got != 0 {
			t.Errorf("the drain ended %v after the second Stop, want at once", got)
		}
		if err := <-done; err != nil {
			t.Fatalf("Run = %v, want nil: the first Stop's cause counts", err)
		}
	})
}

func TestStopDuringAContextStopCutsTheDrainShort(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := crew.Group{StopTimeout: time.Hour, Logger: quiet}
		g.Add("server", crew.Func(func(ctx context.Context) error {
			<-ctx.Done()
			<-crew.DrainContext(ctx).Done()
			return nil
		}))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- g.Run(ctx) }()
		<-g.Ready()
		cancel()
		time.Sleep(time.Minute)
		begin := time.Now()
		g.Stop(nil)
		if err := <-done; err != nil || time.Since(begin) != 0 {
			t.Fatalf("Run = %v after %v, want nil at once", err, time.Since(begin))
		}
	})
}

func TestReadyHandlerReflectsReadiness(t *testing.T) {
	g := crew.Group{Logger: quiet}
	markReady := make(chan struct{})
	g.Add("cache", crew.Func(func(ctx context.Context) error {
		<-markReady
		crew.MarkReady(ctx)
		return untilDone(ctx)
	}), crew.WaitReady())
	g.Add("api", crew.Func(untilDone))
	probe := func() (int, string) {
		rr := httptest.NewRecorder()
		g.ReadyHandler().ServeHTTP(rr, httptest.NewRequest("GET", "/readyz", nil))
		body, _ := io.ReadAll(rr.Body)
		return rr.Code, string(body)
	}
	if code, _ := probe(); code != http.StatusServiceUnavailable {
		t.Fatalf("readiness before Run = %d, want 503", code)
	}
	crewtestStart(t, &g, func() {
		// api starts and is ready; cache is not ready until it says so.
		for g.Status()[1].State != crew.StateRunning {
			time.Sleep(time.Millisecond) // polling a condition, not a timing assumption
		}
		if code, body := probe(); code != http.StatusServiceUnavailable || !strings.Contains(body, "cache") {
			t.Errorf("readiness while cache warms = %d %q, want 503 naming cache", code, body)
		}
		close(markReady)
		<-g.Ready()
		if code, _ := probe(); code != http.StatusOK {
			t.Errorf("readiness when all ready = %d, want 200", code)
		}
	})
	if code, body := probe(); code != http.StatusServiceUnavailable || !strings.Contains(body, "stopping") {
		t.Errorf("readiness after stop = %d %q, want 503 stopping", code, body)
	}
}

func TestRestartGivesUpAfterMaxRestartsWithinWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		g := crew.Group{Logger: quiet, OnEvent: rec.event}
		var runs atomic.Int32
		broken := errors.New("cannot connect")
		g.Add("flaky", crew.Func(func(ctx context.Context) error {
			runs.Add(1)
			return broken
		}), crew.Restart(backoff.Constant(time.Second), 3, time.Minute))
		g.Add("server", crew.Func(untilDone))
		start := time.Now()
		err := g.Run(context.Background())
		if runs.Load() != 4 {
			t.Errorf("flaky ran %d times, want 1 + 3 restarts", runs.Load())
		}
		if got := time.Since(start); got != 3*time.Second {
			t.Errorf("gave up after %v, want 3 restart delays of 1s", got)
		}
		var ce *crew.Error
		if !errors.As(err, &ce) || len(ce.Workers) != 1 {
			t.Fatalf("Run = %v, want one failed worker", err)
		}
		if we := ce.Workers[0]; we.Name != "flaky" || we.Restarts != 3 || !errors.Is(we.Err, broken) {
			t.Errorf("WorkerError = %+v, want flaky with 3 restarts and its last error", we)
		}
		restarting := 0
		for _, l := range rec.lines() {
			if l == "Restarting flaky" {
				restarting++
			}
		}
		if restarting != 3 {
			t.Errorf("%d Restarting events, want 3: %q", restarting, rec.lines())
		}
	})
}

func TestRestartsOutsideTheWindowDoNotCount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := crew.Group{Logger: quiet}
		var runs atomic.Int32
		g.Add("periodic-failure", crew.Func(func(ctx context.Context) error {
			if runs.Add(1) == 6 {
				return untilDone(ctx)
			}
			time.Sleep(time.Minute) // healthy for a minute, then fails
			return errors.New("transient")
		}), crew.Restart(backoff.Constant(time.Second), 1, 30*time.Second))
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			for runs.Load() < 6 {
				time.Sleep(time.Second)
			}
			cancel()
		}()
		if err := g.Run(ctx); err != nil {
			t.Fatalf("Run = %v, want nil: one failure per minute is within 1 per 30s", err)
		}
		if st := g.Status()[0]; st.Restarts != 5 {
			t.Errorf("Restarts = %d, want 5", st.Restarts)
		}
	})
}

func TestRestartUsesThePolicyDelays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var starts []time.Duration
		begin := time.Now()
		g := crew.Group{Logger: quiet}
		g.Add("w", crew.Func(func(ctx context.Context) error {
			mu.Lock()
			starts = append(starts, time.Since(begin))
			n := len(starts)
			mu.Unlock()
			if n == 4 {
				return untilDone(ctx)
			}
			return errors.New("fail")
		}), crew.Restart(backoff.Exponential(time.Second, time.Minute), -1, 0))
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			time.Sleep(time.Hour)
			cancel()
		}()
		if err := g.Run(ctx); err != nil {
			t.Fatal(err)
		}
		want := []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second}
		if !slices.Equal(starts, want) {
			t.Errorf("starts at %v, want %v", starts, want)
		}
	})
}

func TestPermanentErrorIsNeverRestarted(t *testing.T) {
	g := crew.Group{Logger: quiet}
	var runs atomic.Int32
	g.Add("w", crew.Func(func(ctx context.Context) error {
		runs.Add(1)
		return fmt.Errorf("bad credentials: %w", crew.ErrPermanent)
	}), crew.Restart(backoff.Constant(0), -1, 0))
	err := g.Run(context.Background())
	if runs.Load() != 1 || !errors.Is(err, crew.ErrPermanent) {
		t.Fatalf("runs=%d err=%v, want one run and the permanent error", runs.Load(), err)
	}
}

func TestStopDuringRestartDelayEndsRunAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := crew.Group{Logger: quiet}
		failed := make(chan struct{}, 1)
		g.Add("w", crew.Func(func(ctx context.Context) error {
			failed <- struct{}{}
			return errors.New("fail")
		}), crew.Restart(backoff.Constant(time.Hour), -1, 0))
		go func() {
			<-failed
			synctest.Wait() // the restart is now pending
			g.Stop(nil)
		}()
		start := time.Now()
		if err := g.Run(context.Background()); err != nil {
			t.Fatalf("Run = %v", err)
		}
		if time.Since(start) != 0 {
			t.Errorf("Run waited %v for a restart that the stop cancelled", time.Since(start))
		}
	})
}

func TestOneShotRestartsOnlyOnError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := crew.Group{Logger: quiet}
		var runs atomic.Int32
		g.Add("migrate", crew.Func(func(ctx context.Context) error {
			if runs.Add(1) < 3 {
				return errors.New("database not up yet")
			}
			return nil
		}), crew.OneShot(), crew.Restart(backoff.Constant(time.Second), 5, time.Minute))
		if err := g.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if runs.Load() != 3 {
			t.Errorf("migrate ran %d times, want 3", runs.Load())
		}
	})
}

func TestPanicBecomesPanicErrorWithStack(t *testing.T) {
	g := crew.Group{Logger: quiet}
	g.Add("explodes", crew.Func(func(ctx context.Context) error { explode(); return nil }))
	g.Add("other", crew.Func(untilDone))
	err := g.Run(context.Background())
	var pe *crew.PanicError
	if !errors.As(err, &pe) {
		t.Fatalf("Run = %v, want a *PanicError", err)
	}
	if pe.Value != "kaboom" {
		t.Errorf("Value = %v", pe.Value)
	}
	if !strings.Contains(string(pe.Stack), "crew_test.explode") {
		t.Errorf("stack does not show where the panic happened:\n%s", pe.Stack)
	}
	var we *crew.WorkerError
	if !errors.As(err, &we) || we.Name != "explodes" {
		t.Errorf("panic not attributed to its worker: %v", err)
	}
}

func explode() { panic("kaboom") }

func TestPanicWithErrorValueUnwraps(t *testing.T) {
	sentinel := errors.New("sentinel")
	g := crew.Group{Logger: quiet}
	g.Add("w", crew.Func(func(ctx context.Context) error { panic(sentinel) }))
	if err := g.Run(context.Background()); !errors.Is(err, sentinel) {
		t.Fatalf("Run = %v, want errors.Is(sentinel)", err)
	}
}

func TestNestedGroupStopsAsOneWorker(t *testing.T) {
	inner := &crew.Group{Logger: quiet}
	causes := make(chan error, 2)
	for _, name := range []string{"x", "y"} {
		inner.Add(name, crew.Func(func(ctx context.Context) error {
			<-ctx.Done()
			causes <- context.Cause(ctx)
			return ctx.Err()
		}))
	}
	outer := crew.Group{Logger: quiet}
	outer.Add("inner", inner, crew.WaitReady())
	apiStarted := make(chan struct{})
	outer.Add("api", crew.Func(func(ctx context.Context) error {
		close(apiStarted)
		return untilDone(ctx)
	}), crew.After("inner"))
	reason := errors.New("shutdown")
	ctx, cancel := context.WithCancelCause(context.Background())
	go func() {
		<-apiStarted // so the inner group marked itself ready in the outer one
		<-outer.Ready()
		cancel(reason)
	}()
	if err := outer.Run(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if c := <-causes; c != reason {
			t.Errorf("inner worker saw cause %v, want %v", c, reason)
		}
	}
}

func TestNestedGroupFailureReachesTheOuterCaller(t *testing.T) {
	boom := errors.New("boom")
	inner := &crew.Group{Logger: quiet}
	inner.Add("deep", crew.Func(func(ctx context.Context) error { return boom }))
	outer := crew.Group{Logger: quiet}
	outer.Add("inner", inner)
	outer.Add("other", crew.Func(untilDone))
	err := outer.Run(context.Background())
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), `"deep"`) || !strings.Contains(err.Error(), `"inner"`) {
		t.Fatalf("Run = %v, want the deep failure with both names", err)
	}
}

func TestAddPanicsOnProgrammingErrors(t *testing.T) {
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", name)
			}
		}()
		f()
	}
	g := crew.Group{Logger: quiet}
	g.Add("a", crew.Func(untilDone))
	mustPanic("duplicate name", func() { g.Add("a", crew.Func(untilDone)) })
	mustPanic("empty name", func() { g.Add("", crew.Func(untilDone)) })
	mustPanic("nil worker", func() { g.Add("b", nil) })
	g.Stop(nil)
	if err := g.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	mustPanic("Add after Run", func() { g.Add("c", crew.Func(untilDone)) })
}

func TestRunTwiceIsAnError(t *testing.T) {
	g := crew.Group{Logger: quiet}
	if err := g.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := g.Run(context.Background()); err == nil {
		t.Fatal("second Run returned nil")
	}
}

func TestEventsTellTheStory(t *testing.T) {
	var rec recorder
	g := crew.Group{Logger: quiet, OnEvent: rec.event}
	g.Add("a", crew.Func(untilDone))
	g.Add("b", crew.Func(untilDone), crew.After("a"))
	go func() {
		<-g.Ready()
		g.Stop(nil)
	}()
	if err := g.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{"Started a", "Ready a", "Started b", "Ready b", "Stopping", "Exited b", "Exited a"}
	if got := rec.lines(); !slices.Equal(got, want) {
		t.Errorf("events = %q\nwant     %q", got, want)
	}
}

func TestGroupLogsOneLinePerWorkerExit(t *testing.T) {
	var buf syncBuffer
	g := crew.Group{Logger: slog.New(slog.NewTextHandler(&buf, nil))}
	g.Add("alpha", crew.Func(untilDone))
	g.Add("beta", crew.Func(func(ctx context.Context) error { return errors.New("beta broke") }))
	_ = g.Run(context.Background())
	out := buf.String()
	for _, want := range []string{`msg="worker stopped" worker=alpha`, `msg="worker failed" worker=beta err="beta broke"`} {
		if strings.Count(out, want) != 1 {
			t.Errorf("log should contain %q once:\n%s", want, out)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSecondStopKeepsTheFirstStopsCause makes both Stops land while the
// supervisor is busy (inside OnEvent, which it calls itself), so that it
// finds the stop request and the request to hurry ready together. Whichever
// it takes first, workers and Run must see the first call's cause. Go's
// select picks among ready cases at random, so the group is run many times:
// a supervisor that takes the hurry for a stop of its own fails nearly
// every run of this test.
func TestSecondStopKeepsTheFirstStopsCause(t *testing.T) {
	cause := errors.New("deploy")
	for i := range 64 {
		var g crew.Group
		g.Logger = quiet
		g.OnEvent = func(e crew.Event) {
			if e.Kind == crew.Started {
				g.Stop(cause)
				g.Stop(nil)
			}
		}
		seen := make(chan error, 1)
		g.Add("worker", crew.Func(func(ctx context.Context) error {
			<-ctx.Done()
			seen <- context.Cause(ctx)
			return nil
		}))
		err := g.Run(context.Background())
		if got := <-seen; got != cause {
			t.Fatalf("run %d: the worker saw cause %v, want %v", i, got, cause)
		}
		var ge *crew.Error
		if !errors.As(err, &ge) || ge.Cause != cause {
			t.Fatalf("run %d: Run = %v, want an *Error with cause %v", i, err, cause)
		}
	}
}
