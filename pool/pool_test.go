package pool_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/crewgo/crew"
	"github.com/crewgo/crew/pool"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func nop(context.Context) error { return nil }

// gauge tracks how many tasks run at once and the most it has seen.
type gauge struct{ now, peak atomic.Int64 }

func (g *gauge) enter() int64 {
	n := g.now.Add(1)
	for {
		p := g.peak.Load()
		if n <= p || g.peak.CompareAndSwap(p, n) {
			return n
		}
	}
}

func (g *gauge) leave() { g.now.Add(-1) }

func TestLimitIsNeverExceededUnderARacingLoad(t *testing.T) {
	const limit, submitters, perSubmitter = 8, 16, 500
	p := pool.New(limit)
	var g gauge
	// The first limit tasks meet before any returns, so the limit is
	// reached; after that tasks run freely and race.
	var met sync.WaitGroup
	met.Add(limit)
	var ran atomic.Int64
	task := func(context.Context) error {
		n := g.enter()
		defer g.leave()
		if n > limit {
			return fmt.Errorf("%d tasks running, limit %d", n, limit)
		}
		if ran.Add(1) <= limit {
			met.Done()
			met.Wait()
		}
		return nil
	}
	var subs sync.WaitGroup
	for range submitters {
		subs.Go(func() {
			for range perSubmitter {
				if err := p.Go(context.Background(), task); err != nil {
					t.Error(err)
				}
			}
		})
	}
	subs.Wait()
	p.Close()
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	if peak := g.peak.Load(); peak != limit {
		t.Errorf("peak concurrency %d, want exactly the limit %d", peak, limit)
	}
	if st := p.Stats(); st.Done != submitters*perSubmitter || st.Failed != 0 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestGoAfterCloseReturnsErrClosedWithoutPanicking(t *testing.T) {
	for range 20 {
		p := pool.New(2, pool.Queue(0))
		var accepted, refused atomic.Int64
		var ran atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 50 {
			wg.Go(func() {
				<-start
				for range 20 {
					switch err := p.Go(context.Background(), func(context.Context) error { ran.Add(1); return nil }); {
					case err == nil:
						accepted.Add(1)
					case errors.Is(err, pool.ErrClosed):
						refused.Add(1)
					default:
						t.Errorf("Go = %v", err)
					}
				}
			})
		}
		close(start)
		p.Close()
		wg.Wait()
		if err := p.Wait(); err != nil {
			t.Fatal(err)
		}
		if accepted.Load()+refused.Load() != 1000 || ran.Load() != accepted.Load() {
			t.Fatalf("accepted %d, refused %d, ran %d", accepted.Load(), refused.Load(), ran.Load())
		}
		if err := p.Go(context.Background(), nop); !errors.Is(err, pool.ErrClosed) {
			t.Fatalf("Go after Close = %v", err)
		}
		if p.TryGo(nop) {
			t.Fatal("TryGo after Close accepted a task")
		}
	}
}

func TestGoBlocksWhileFullAndGivesUpWithItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := pool.New(1, pool.Queue(1))
		release := make(chan struct{})
		block := func(context.Context) error { <-release; return nil }
		for range 2 { // one running, one queued
			if err := p.Go(context.Background(), block); err != nil {
				t.Fatal(err)
			}
		}
		cause := errors.New("caller gave up")
		ctx, cancel := context.WithCancelCause(context.Background())
		done := make(chan error)
		go func() { done <- p.Go(ctx, nop) }()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("Go returned %v while the pool was full", err)
		default:
		}
		cancel(cause)
		if err := <-done; err != cause {
			t.Fatalf("Go = %v, want the context's cause", err)
		}
		close(release)
		p.Close()
		if err := p.Wait(); err != nil {
			t.Fatal(err)
		}
		if st := p.Stats(); st.Done != 2 {
			t.Errorf("Done = %d, want 2: the refused task must not run", st.Done)
		}
	})
}

func TestBlockedGoProceedsAsSoonAsRoomAppears(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := pool.New(1, pool.Queue(0))
		release := make(chan struct{})
		if err := p.Go(context.Background(), func(context.Context) error { <-release; return nil }); err != nil {
			t.Fatal(err)
		}
		second := make(chan struct{})
		accepted := make(chan error)
		go func() {
			accepted <- p.Go(context.Background(), func(context.Context) error { close(second); return nil })
		}()
		synctest.Wait() // the second Go is blocked
		start := time.Now()
		close(release)
		if err := <-accepted; err != nil {
			t.Fatal(err)
		}
		<-second
		if time.Since(start) != 0 {
			t.Errorf("the blocked task waited %v after the goroutine became free", time.Since(start))
		}
		p.Close()
		if err := p.Wait(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestCloseWakesBlockedSubmitters(t *testing.T) {
	p := pool.New(1, pool.Queue(0))
	release := make(chan struct{})
	_ = p.Go(context.Background(), func(context.Context) error { <-release; return nil })
	refused := make(chan error)
	go func() { refused <- p.Go(context.Background(), nop) }()
	p.Close()
	if err := <-refused; !errors.Is(err, pool.ErrClosed) {
		t.Fatalf("blocked Go after Close = %v, want ErrClosed", err)
	}
	close(release)
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestWaitJoinsEveryTaskError(t *testing.T) {
	p := pool.New(4)
	var want []error
	for i := range 10 {
		err := fmt.Errorf("task %d failed", i)
		if i%3 == 0 {
			want = append(want, err)
		} else {
			err = nil
		}
		_ = p.Go(context.Background(), func(context.Context) error { return err })
	}
	err := p.Wait()
	for _, w := range want {
		if !errors.Is(err, w) {
			t.Errorf("Wait's error does not include %v", w)
		}
	}
	if st := p.Stats(); st.Failed != int64(len(want)) || st.Done != 10 {
		t.Errorf("Stats = %+v", st)
	}
	// Errors are reported once: the next Wait starts afresh.
	_ = p.Go(context.Background(), nop)
	if err := p.Wait(); err != nil {
		t.Errorf("second Wait = %v, want nil", err)
	}
	p.Close()
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestPanicIsReportedWithItsStack(t *testing.T) {
	p := pool.New(2)
	_ = p.Go(context.Background(), func(context.Context) error { explode(); return nil })
	_ = p.Go(context.Background(), nop)
	p.Close()
	err := p.Wait()
	var pe *crew.PanicError
	if !errors.As(err, &pe) || pe.Value != "boom" {
		t.Fatalf("Wait = %v, want a *crew.PanicError", err)
	}
	if !strings.Contains(err.Error(), "pool_test.explode") {
		t.Errorf("the error message does not carry the stack:\n%v", err)
	}
}

func explode() { panic("boom") }

func TestCancelOnErrorSkipsQueuedTasks(t *testing.T) {
	boom := errors.New("boom")
	p := pool.New(1, pool.CancelOnError())
	fail := make(chan struct{})
	var ran atomic.Int64
	_ = p.Go(context.Background(), func(ctx context.Context) error {
		<-fail
		return boom
	})
	for range 5 {
		_ = p.Go(context.Background(), func(context.Context) error { ran.Add(1); return nil })
	}
	close(fail)
	err := p.Wait()
	if !errors.Is(err, boom) {
		t.Fatalf("Wait = %v", err)
	}
	if ran.Load() != 0 {
		t.Errorf("%d queued tasks ran after the failure", ran.Load())
	}
	if st := p.Stats(); st.Skipped != 5 {
		t.Errorf("Skipped = %d, want 5", st.Skipped)
	}
	if cause := context.Cause(p.Context()); cause != boom {
		t.Errorf("tasks' context cause = %v, want the failure", cause)
	}
	if err := p.Go(context.Background(), nop); err != boom {
		t.Errorf("Go after the failure = %v, want its cause", err)
	}
	p.Close()
	_ = p.Wait()
}

func TestPanicCancelsThePoolWithCancelOnError(t *testing.T) {
	p := pool.New(1, pool.CancelOnError())
	_ = p.Go(context.Background(), func(context.Context) error { panic("boom") })
	p.Close()
	_ = p.Wait()
	var pe *crew.PanicError
	if !errors.As(context.Cause(p.Context()), &pe) {
		t.Fatalf("cause = %v, want the panic", context.Cause(p.Context()))
	}
}

func TestUnstartedTasksAreSkippedWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	p := pool.New(2, pool.WithContext(ctx))
	started := make(chan struct{}, 2)
	var ran atomic.Int64
	block := func(ctx context.Context) error {
		started <- struct{}{}
		<-ctx.Done()
		return nil
	}
	for range 2 {
		_ = p.Go(context.Background(), block)
	}
	<-started
	<-started
	for range 10 {
		_ = p.Go(context.Background(), func(context.Context) error { ran.Add(1); return nil })
	}
	cancel()
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	if ran.Load() != 0 {
		t.Errorf("%d tasks started after the context ended", ran.Load())
	}
	if st := p.Stats(); st.Skipped != 10 || st.Done != 2 {
		t.Errorf("Stats = %+v, want 10 skipped and 2 done", st)
	}
	if err := p.Go(context.Background(), nop); !errors.Is(err, context.Canceled) {
		t.Errorf("Go after the context ended = %v", err)
	}
	p.Close()
	_ = p.Wait()
}

func TestShutdownCancelsRunningTasksAtItsDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := pool.New(2)
		var sawCancel atomic.Int64
		stubborn := func(ctx context.Context) error {
			select {
			case <-time.After(time.Hour):
			case <-ctx.Done():
				sawCancel.Add(1)
			}
			return ctx.Err()
		}
		for range 4 { // two run, two wait
			_ = p.Go(context.Background(), stubborn)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		err := p.Shutdown(ctx)
		if time.Since(start) != 5*time.Second {
			t.Errorf("Shutdown returned after %v, want at its 5s deadline", time.Since(start))
		}
		if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "2 tasks still running") {
			t.Fatalf("Shutdown = %v", err)
		}
		if err := p.Wait(); !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait after Shutdown = %v, want the cancelled tasks' errors", err)
		}
		if sawCancel.Load() != 2 {
			t.Errorf("%d running tasks saw the cancellation, want 2", sawCancel.Load())
		}
		if st := p.Stats(); st.Skipped != 2 {
			t.Errorf("Skipped = %d, want the 2 queued tasks", st.Skipped)
		}
	})
}

func TestShutdownReturnsOnceTasksFinish(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := pool.New(2)
		for range 4 {
			_ = p.Go(context.Background(), func(context.Context) error { time.Sleep(time.Second); return nil })
		}
		start := time.Now()
		if err := p.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if time.Since(start) != 2*time.Second {
			t.Errorf("Shutdown took %v, want the 2s the tasks need", time.Since(start))
		}
	})
}

func TestTaskMaySubmitToItsOwnPool(t *testing.T) {
	p := pool.New(2, pool.Queue(100))
	var leaves atomic.Int64
	var spawn func(depth int) func(context.Context) error
	spawn = func(depth int) func(context.Context) error {
		return func(ctx context.Context) error {
			if depth == 0 {
				leaves.Add(1)
				return nil
			}
			for range 2 {
				if err := p.Go(ctx, spawn(depth-1)); err != nil {
					return err
				}
			}
			return nil
		}
	}
	_ = p.Go(context.Background(), spawn(5))
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	if leaves.Load() != 32 {
		t.Errorf("%d leaves, want 32", leaves.Load())
	}
	p.Close()
	_ = p.Wait()
}

func TestTryGoNeverWaits(t *testing.T) {
	p := pool.New(1, pool.Queue(1))
	release := make(chan struct{})
	block := func(context.Context) error { <-release; return nil }
	for i := range 2 {
		if !p.TryGo(block) {
			t.Fatalf("TryGo refused task %d with room for it", i)
		}
	}
	if p.TryGo(block) {
		t.Fatal("TryGo accepted a task into a full pool")
	}
	close(release)
	p.Close()
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestTasksStartInSubmissionOrder(t *testing.T) {
	p := pool.New(1, pool.Queue(1000))
	var mu sync.Mutex
	var order []int
	for i := range 1000 {
		_ = p.Go(context.Background(), func(context.Context) error {
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			return nil
		})
	}
	p.Close()
	_ = p.Wait()
	for i, v := range order {
		if v != i {
			t.Fatalf("task %d ran in position %d", v, i)
		}
	}
}

func TestSetLimitRaisesAndLowersConcurrency(t *testing.T) {
	p := pool.New(1, pool.Queue(100))
	var g gauge
	gate := make(chan struct{})
	task := func(context.Context) error {
		g.enter()
		defer g.leave()
		<-gate
		return nil
	}
	for range 10 {
		_ = p.Go(context.Background(), task)
	}
	waitFor(t, func() bool { return p.Stats().Running == 1 })
	p.SetLimit(4)
	waitFor(t, func() bool { return p.Stats().Running == 4 })
	p.SetLimit(2)
	close(gate)
	p.Close()
	_ = p.Wait()
	if g.peak.Load() != 4 {
		t.Errorf("peak %d, want 4", g.peak.Load())
	}
	if st := p.Stats(); st.Limit != 2 || st.Done != 10 {
		t.Errorf("Stats = %+v", st)
	}
}

// waitFor polls cond until it holds: for state that only Stats shows.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition never held")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestAnIdlePoolHoldsNoGoroutine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		before := runtime.NumGoroutine()
		p := pool.New(4)
		for range 4 {
			_ = p.Go(context.Background(), func(context.Context) error { time.Sleep(time.Millisecond); return nil })
		}
		if err := p.Wait(); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		// Every goroutine of the pool has exited although the pool was
		// not closed. It still works afterwards.
		if n := runtime.NumGoroutine(); n != before {
			t.Errorf("%d goroutines with the pool idle, want %d", n, before)
		}
		done := make(chan struct{})
		_ = p.Go(context.Background(), func(context.Context) error { close(done); return nil })
		<-done
		p.Close()
		_ = p.Wait()
	})
}

func TestNewAndSetLimitRejectBadLimits(t *testing.T) {
	for _, f := range []func(){
		func() { pool.New(0) },
		func() { pool.New(-1) },
		func() { pool.New(1).SetLimit(0) },
	} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "limit must be at least 1") {
					t.Errorf("recovered %v", r)
				}
			}()
			f()
		}()
	}
}

func TestCloseAndWaitLeaveNoGoroutine(t *testing.T) {
	p := pool.New(16)
	for range 1000 {
		_ = p.Go(context.Background(), nop)
	}
	p.Close()
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	goleak.VerifyNone(t)
}

func TestATaskArrivingAsTheLastGoroutineLeavesStillRuns(t *testing.T) {
	// The second task arrives while the goroutine that ran the first one
	// polls the queue or leaves: it takes the task, or a new goroutine
	// does. A task lost between the two would hang this test.
	p := pool.New(1, pool.Queue(0))
	for i := range 2000 {
		_ = p.Go(context.Background(), nop)
		if i%2 == 0 {
			runtime.Gosched()
		}
		ran := make(chan struct{})
		if err := p.Go(context.Background(), func(context.Context) error { close(ran); return nil }); err != nil {
			t.Fatal(err)
		}
		<-ran
	}
	p.Close()
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Done != 4000 {
		t.Errorf("Done = %d, want 4000", st.Done)
	}
}

func TestSubmittingAndRunningATaskAllocatesNothing(t *testing.T) {
	const tasks = 100_000
	p := pool.New(4)
	defer func() {
		p.Close()
		_ = p.Wait()
	}()
	ctx := context.Background()
	submit := func() {
		for range tasks {
			if err := p.Go(ctx, nop); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	submit() // warm up: goroutines and runtime structures to reuse
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	submit()
	runtime.ReadMemStats(&after)
	// The runtime allocates now and then for the pool's goroutines, a few
	// times per ten thousand tasks; one allocation per task, or per
	// hundred, is a bug in the pool.
	if perTask := float64(after.Mallocs-before.Mallocs) / tasks; perTask >= 0.01 {
		t.Errorf("%.4f allocations per task submitted and run, want almost none", perTask)
	}
}

func TestFastTasksFromOneSubmitterDoNotStartGoroutinesUpToTheLimit(t *testing.T) {
	// One submitter of tiny tasks sometimes finds the queue still full
	// after yielding, because the pool's goroutines were descheduled, not
	// because the tasks are slow. That must not start goroutines up to
	// the limit, which would hold a thousand stacks until the queue
	// drains: each such stall may at most double them. Stalls can repeat,
	// so the bound checked here is a heuristic with a wide margin: the
	// pool peaks near a hundred goroutines, and at the limit without the
	// bound.
	const limit, tasks = 1000, 300_000
	before := runtime.NumGoroutine()
	for range 3 {
		p := pool.New(limit)
		peak := 0
		for i := range tasks {
			_ = p.Go(context.Background(), nop)
			if i%64 == 0 {
				peak = max(peak, runtime.NumGoroutine()-before)
			}
		}
		p.Close()
		if err := p.Wait(); err != nil {
			t.Fatal(err)
		}
		if peak > limit/2 {
			t.Fatalf("%d goroutines running %d tiny tasks from one submitter, want at most %d", peak, tasks, limit/2)
		}
	}
}
