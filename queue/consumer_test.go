package queue_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/crewgo/crew"
	"github.com/crewgo/crew/backoff"
	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/memqueue"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.DiscardHandler)

// source wraps a Source to observe calls and inject failures.
type source struct {
	queue.Source
	mu        sync.Mutex
	maxAsked  []int
	ackSizes  []int
	extends   int
	extendErr func(m *queue.Message) error
	ackErr    func(call int) error
	ackCalls  int
	onReceive func(max int)
}

func (s *source) Receive(ctx context.Context, max int, lease time.Duration) ([]*queue.Message, error) {
	s.mu.Lock()
	s.maxAsked = append(s.maxAsked, max)
	f := s.onReceive
	s.mu.Unlock()
	if f != nil {
		f(max)
	}
	return s.Source.Receive(ctx, max, lease)
}

func (s *source) Extend(ctx context.Context, m *queue.Message, lease time.Duration) error {
	s.mu.Lock()
	s.extends++
	f := s.extendErr
	s.mu.Unlock()
	if f != nil {
		if err := f(m); err != nil {
			return err
		}
	}
	return s.Source.Extend(ctx, m, lease)
}

func (s *source) Ack(ctx context.Context, msgs ...*queue.Message) error {
	s.mu.Lock()
	s.ackCalls++
	call := s.ackCalls
	f := s.ackErr
	s.mu.Unlock()
	if f != nil {
		if err := f(call); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.ackSizes = append(s.ackSizes, len(msgs))
	s.mu.Unlock()
	return s.Source.Ack(ctx, msgs...)
}

func publishN(t *testing.T, q *memqueue.Queue, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		id, err := q.Publish(context.Background(), []byte(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// start runs c in the background and returns a function that stops it and
// returns Run's error.
func start(c *queue.Consumer) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	return func() error {
		cancel()
		return <-done
	}
}

func TestStopReleasesHeldMessagesAndLetsRunningHandlersFinish(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := memqueue.New()
		publishN(t, q, 4)
		release := make(chan struct{})
		var cancelledEarly atomic.Bool
		running := make(chan struct{}, 2)
		c := &queue.Consumer{
			Source: q, Concurrency: 2, Prefetch: 2, Logger: quiet,
			Handler: func(ctx context.Context, m *queue.Message) error {
				running <- struct{}{}
				select {
				case <-release:
				case <-ctx.Done():
					cancelledEarly.Store(true)
				}
				return nil
			},
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		<-running
		<-running
		synctest.Wait() // the two prefetched messages are held, waiting for a slot
		if n := q.Counts().Leased; n != 4 {
			t.Fatalf("%d messages leased, want 2 running + 2 prefetched", n)
		}
		cancel()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("Run returned %v while handlers were still running", err)
		default:
		}
		if got := q.Counts(); got.Ready != 2 || got.Leased != 2 {
			t.Fatalf("after the stop: %+v, want the 2 prefetched messages released at once", got)
		}
		time.Sleep(10 * time.Second) // the handlers take their time; nothing cancels them
		close(release)
		if err := <-done; err != nil {
			t.Fatalf("Run = %v, want nil after a complete drain", err)
		}
		if cancelledEarly.Load() {
			t.Error("a running handler's context was cancelled by the stop")
		}
		if got := q.Counts(); got.Ready != 2 || got.Leased != 0 {
			t.Errorf("after the drain: %+v, want the 2 finished messages acked", got)
		}
		if st := c.Stats(); st.Succeeded != 2 || st.Released != 2 {
			t.Errorf("Stats = %+v", st)
		}
	})
}

func TestPrefetchRefillsWhilePrefetchedMessagesWaitForASlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := memqueue.New()
		ids := publishN(t, q, 10)
		gates := make(map[string]chan struct{})
		for _, id := range ids {
			gates[id] = make(chan struct{})
		}
		var started sync.Map
		c := &queue.Consumer{
			Source: q, Concurrency: 2, Prefetch: 2, Logger: quiet,
			Handler: func(ctx context.Context, m *queue.Message) error {
				started.Store(m.ID, true)
				<-gates[m.ID]
				return nil
			},
		}
		stop := start(c)
		synctest.Wait()
		if got := q.Counts().Leased; got != 4 {
			t.Fatalf("%d messages leased, want 2 running + 2 prefetched", got)
		}
		// The first handler finishes: the first prefetched message takes
		// its slot, and the consumer receives one more to keep two
		// prefetched, although the second still waits for a slot.
		close(gates[ids[0]])
		time.Sleep(time.Second) // past the receive linger
		synctest.Wait()
		if _, ok := started.Load(ids[2]); !ok {
			t.Fatal("the first prefetched message did not start in the freed slot")
		}
		if got := q.Counts(); got.Leased != 4 {
			t.Fatalf("after one handler finished: %+v, want 4 leased (2 running, 2 prefetched)", got)
		}
		for _, id := range ids[1:] {
			close(gates[id])
		}
		for c.Stats().Succeeded < 10 {
			time.Sleep(time.Second)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	})
}

// failingOnce returns what its Source received together with an error,
// the first time.
type failingOnce struct {
	queue.Source
	failed atomic.Bool
	err    error
}

func (s *failingOnce) Receive(ctx context.Context, max int, lease time.Duration) ([]*queue.Message, error) {
	msgs, err := s.Source.Receive(ctx, max, lease)
	if err == nil && !s.failed.Swap(true) {
		return msgs, s.err
	}
	return msgs, err
}

func TestMessagesAFailingReceiveReturnsAreReleased(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := memqueue.New()
		publishN(t, q, 3)
		flaky := errors.New("connection reset")
		var mu sync.Mutex
		var released []error
		c := &queue.Consumer{
			Source: &failingOnce{Source: q, err: flaky}, Concurrency: 3, Logger: quiet,
			Handler: func(ctx context.Context, m *queue.Message) error { return nil },
			OnResult: func(res queue.Result) {
				if res.Outcome == queue.Released {
					mu.Lock()
					released = append(released, res.Err)
					mu.Unlock()
				}
			},
		}
		stop := start(c)
		for c.Stats().Succeeded < 3 {
			time.Sleep(time.Second) // the retry's backoff, on the bubble's clock
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if len(released) != 3 || !errors.Is(released[0], flaky) {
			t.Errorf("released %v, want the 3 messages of the failed Receive, with its error", released)
		}
		if got := q.Counts(); got != (memqueue.Counts{}) {
			t.Errorf("after the run: %+v, want an empty queue", got)
		}
		if st := c.Stats(); st.Released != 3 || st.Held != 0 {
			t.Errorf("Stats = %+v", st)
		}
	})
}

func TestStopAbandonsTheLongPollAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &queue.Consumer{Source: memqueue.New(), Logger: quiet,
			Handler: func(context.Context, *queue.Message) error { return nil }}
		stop := start(c)
		time.Sleep(time.Minute)
		synctest.Wait()
		begin := time.Now()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if time.Since(begin) != 0 {
			t.Errorf("Run took %v to return from an idle long poll", time.Since(begin))
		}
	})
}

func TestDrainDeadlineCancelsHandlersAndReleasesTheirMessages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := memqueue.New()
		ids := publishN(t, q, 1)
		causes := make(chan error, 1)
		started := make(chan struct{})
		c := &queue.Consumer{
			Source: q, DrainTimeout: 5 * time.Second, Logger: quiet,
			Handler: func(ctx context.Context, m *queue.Message) error {
				close(started)
				<-ctx.Done()
				causes <- context.Cause(ctx)
				return ctx.Err()
			},
		}
		stop := start(c)
		<-started
		begin := time.Now()
		err := stop()
		if time.Since(begin) != 5*time.Second {
			t.Errorf("Run returned %v after the stop, want the 5s drain timeout", time.Since(begin))
		}
		var de *queue.DrainError
		if !errors.As(err, &de) || !slices.Equal(de.Released, ids) || !errors.Is(err, queue.ErrDrainTimeout) {
			t.Fatalf("Run = %v, want a DrainError naming %v", err, ids)
		}
		if cause := <-causes; cause != queue.ErrDrainTimeout {
			t.Errorf("handler's cause = %v, want ErrDrainTimeout", cause)
		}
		if got := q.Counts(); got.Ready != 1 {
			t.Errorf("%+v: the unfinished message should be ready again at once", got)
		}
	})
}

func TestLeasesAreExtendedWhileHandlersRunAndDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := memqueue.New()
		publishN(t, q, 1)
		src := &source{Source: q}
		started := make(chan struct{})
		c := &queue.Consumer{
			Source: src, Lease: 3 * time.Second, DrainTimeout: time.Hour, Logger: quiet,
			Handler: func(ctx context.Context, m *queue.Message) error {
				close(started)
				time.Sleep(time.Minute) // twenty leases long
				return nil
			},
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		<-started
		time.Sleep(30 * time.Second)
		cancel() // stop halfway through: the drain keeps extending
		for range 5 {
			time.Sleep(5 * time.Second)
			probe, pcancel := context.WithTimeout(context.Background(), time.Millisecond)
			if msgs, _ := q.Receive(probe, 1, time.Minute); len(msgs) > 0 {
				t.Fatal("another consumer received the message while its handler ran")
			}
			pcancel()
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got := q.Counts(); got != (memqueue.Counts{}) {
			t.Errorf("queue %+v after the handler finished, want empty", got)
		}
		src.mu.Lock()
		defer src.mu.Unlock()
		if src.extends < 19 {
			t.Errorf("%d extensions in a minute with a 3s lease, want one per second", src.extends)
		}
	})
}

func TestLostLeaseCancelsTheHandler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := memqueue.New()
		publishN(t, q, 1)
		src := &source{Source: q, extendErr: func(*queue.Message) error { return queue.ErrLeaseLost }}
		causes := make(chan error, 1)
		results := make(chan queue.Result, 1)
		c := &queue.Consumer{
			Source: src, Lease: 3 * time.Second, Logger: quiet,
			Handler: func(ctx context.Context, m *queue.Message) error {
				<-ctx.Done()
				causes <- context.Cause(ctx)
				return ctx.Err()
			},
			OnResult: func(r queue.Result) { results <- r },
		}
		stop := start(c)
		cause := <-causes
		if !errors.Is(cause, queue.ErrLeaseLost) {
			t.Errorf("handler's cause = %v, want ErrLeaseLost", cause)
		}
		if r := <-results; r.Outcome != queue.LeaseLost {
			t.Errorf("outcome %v, want LeaseLost", r.Outcome)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		src.mu.Lock()
		defer src.mu.Unlock()
		if len(src.ackSizes) != 0 {
			t.Error("a message whose lease was lost was acked")
		}
	})
}

func TestFailuresRetryWithTheBackoffPolicy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := memqueue.New()
		publishN(t, q, 1)
		var at []time.Duration
		begin := time.Now()
		done := make(chan struct{})
		c := &queue.Consumer{
			Source: q, MaxAttempts: 4, Logger: quiet,
			Retry: backoff.Exponential(time.Second, time.Minute),
			Handler: func(ctx context.Context, m *queue.Message) error {
				at = append(at, time.Since(begin))
				if m.Attempt == 4 {
					close(done)
					return nil
				}
				return errors.New("try again")
			},
		}
		stop := start(c)
		<-done
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		want := []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second}
		if !slices.Equal(at, want) {
			t.Errorf("attempts at %v, want %v: never a hot retry", at, want)
		}
		if st := c.Stats(); st.Retried != 3 || st.Succeeded != 1 {
			t.Errorf("Stats = %+v", st)
		}
	})
}

func TestDeadLetteredAfterMaxAttemptsWithTheLastError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := memqueue.New()
		publishN(t, q, 1)
		dead := make(chan struct{})
		c := &queue.Consumer{
			Source: q, MaxAttempts: 2, Logger: quiet, Retry: backoff.Constant(time.Second),
			Handler: func(ctx context.Context, m *queue.Message) error {
				return fmt.Errorf("attempt %d failed", m.Attempt)
			},
			OnResult: func(r queue.Result) {
				if r.Outcome == queue.DeadLettered {
					close(dead)
				}
			},
		}
		stop := start(c)
		<-dead
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		d := q.Dead()
		if len(d) != 1 || d[0].Reason != "attempt 2 failed" {
			t.Fatalf("dead letters %+v, want one with the last error", d)
		}
	})
}

func TestPermanentErrorDeadLettersAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := memqueue.New()
		publishN(t, q, 1)
		var calls atomic.Int64
		dead := make(chan struct{})
		c := &queue.Consumer{
			Source: q, Logger: quiet,
			Handler: func(ctx context.Context, m *queue.Message) error {
				calls.Add(1)
				return fmt.Errorf("malformed body: %w", crew.ErrPermanent)
			},
			OnResult: func(r queue.Result) { close(dead) },
		}
		stop := start(c)
		<-dead
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if calls.Load() != 1 || len(q.DeadLetters()) != 1 {
			t.Errorf("calls %d, dead %d; want one call and a dead letter", calls.Load(), len(q.DeadLetters()))
		}
	})
}

func TestPanicIsRetriedLikeAnError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := memqueue.New()
		publishN(t, q, 1)
		results := make(chan queue.Result, 2)
		c := &queue.Consumer{
			Source: q, Logger: quiet,
			Handler: func(ctx context.Context, m *queue.Message) error {
				if m.Attempt == 1 {
					panic("nil map")
				}
				return nil
			},
			OnResult: func(r queue.Result) { results <- r },
		}
		stop := start(c)
		first, second := <-results, <-results
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		var pe *crew.PanicError
		if first.Outcome != queue.Retried || !errors.As(first.Err, &pe) {
			t.Errorf("first result %v %v, want Retried with a *crew.PanicError", first.Outcome, first.Err)
		}
		if second.Outcome != queue.Succeeded {
			t.Errorf("second result %v", second.Outcome)
		}
	})
}

func TestHandlerTimeoutBoundsOneAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := memqueue.New()
		publishN(t, q, 1)
		type seen struct {
			after time.Duration
			cause error
		}
		got := make(chan seen, 1)
		c := &queue.Consumer{
			Source: q, HandlerTimeout: 2 * time.Second, Logger: quiet, MaxAttempts: 1,
			Handler: func(ctx context.Context, m *queue.Message) error {
				begin := time.Now()
				<-ctx.Done()
				got <- seen{time.Since(begin), context.Cause(ctx)}
				return ctx.Err()
			},
		}
		stop := start(c)
		s := <-got
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if s.after != 2*time.Second || s.cause != queue.ErrHandlerTimeout {
			t.Errorf("handler cancelled after %v with %v, want 2s and ErrHandlerTimeout", s.after, s.cause)
		}
	})
}

func TestNeverReceivesMoreThanItCanStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := memqueue.New()
		publishN(t, q, 50)
		var c *queue.Consumer
		var overAsked atomic.Int64
		src := &source{Source: q}
		src.onReceive = func(max int) {
			// What it asks for plus what it runs never exceeds its slots.
			if running := c.Stats().Running; int64(max)+running > 3 {
				overAsked.Add(1)
			}
		}
		var handling, peak atomic.Int64
		c = &queue.Consumer{
			Source: src, Concurrency: 3, Logger: quiet,
			Handler: func(ctx context.Context, m *queue.Message) error {
				n := handling.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				time.Sleep(time.Second)
				handling.Add(-1)
				return nil
			},
		}
		stop := start(c)
		for c.Stats().Succeeded < 50 {
			time.Sleep(time.Second)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		src.mu.Lock()
		defer src.mu.Unlock()
		if m := slices.Max(src.maxAsked); m > 3 {
			t.Errorf("asked for up to %d messages with 3 slots", m)
		}
		if overAsked.Load() > 0 {
			t.Errorf("%d receives asked for more than the free slots", overAsked.Load())
		}
		if peak.Load() != 3 {
			t.Errorf("peak concurrency %d, want 3", peak.Load())
		}
	})
}

func TestOverDeliveredMessageIsDeadLetteredWithoutRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := memqueue.New()
		publishN(t, q, 1)
		// Three workers crashed while handling it: three leases expired.
		for range 3 {
			if _, err := q.Receive(context.Background(), 1, time.Second); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Second)
		}
		var calls atomic.Int64
		dead := make(chan struct{})
		c := &queue.Consumer{
			Source: q, MaxAttempts: 3, Logger: quiet,
			Handler:  func(context.Context, *queue.Message) error { calls.Add(1); return nil },
			OnResult: func(queue.Result) { close(dead) },
		}
		stop := start(c)
		<-dead
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		d := q.Dead()
		if calls.Load() != 0 || len(d) != 1 || !strings.Contains(d[0].Reason, "delivered 4 times") {
			t.Errorf("calls %d, dead %+v", calls.Load(), d)
		}
	})
}

func TestAcksAreBatchedAndRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := memqueue.New()
		publishN(t, q, 20)
		src := &source{Source: q, ackErr: func(call int) error {
			if call == 1 {
				return errors.New("connection reset")
			}
			return nil
		}}
		var handled atomic.Int64
		all := make(chan struct{})
		c := &queue.Consumer{
			Source: src, Concurrency: 20, AckBatch: 10, AckDelay: time.Second, Logger: quiet,
			Handler: func(context.Context, *queue.Message) error {
				if handled.Add(1) == 20 {
					close(all)
				}
				return nil
			},
		}
		stop := start(c)
		<-all
		time.Sleep(5 * time.Second)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if got := q.Counts(); got != (memqueue.Counts{}) {
			t.Errorf("queue %+v, want every message acked despite a failed ack call", got)
		}
		src.mu.Lock()
		defer src.mu.Unlock()
		if len(src.ackSizes) > 3 || slices.Max(src.ackSizes) != 10 {
			t.Errorf("ack batches %v, want batches of up to 10", src.ackSizes)
		}
	})
}

func TestConsumerInAGroupDrainsWithinTheGroupsBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := memqueue.New()
		ids := publishN(t, q, 1)
		started := make(chan struct{})
		c := &queue.Consumer{
			Source: q, DrainTimeout: time.Hour, Logger: quiet,
			Handler: func(ctx context.Context, m *queue.Message) error {
				close(started)
				<-ctx.Done()
				return ctx.Err()
			},
		}
		g := crew.Group{StopTimeout: 10 * time.Second, Logger: quiet}
		g.Add("consumer", c)
		done := make(chan error, 1)
		go func() { done <- g.Run(context.Background()) }()
		<-started
		begin := time.Now()
		g.Stop(nil)
		err := <-done
		if d := time.Since(begin); d >= 10*time.Second || d < 9*time.Second {
			t.Errorf("the group stopped after %v, want the consumer to give up just inside the 10s budget", d)
		}
		var de *queue.DrainError
		if !errors.As(err, &de) || !slices.Equal(de.Released, ids) {
			t.Fatalf("Run = %v, want the consumer's DrainError, not a straggler", err)
		}
	})
}

func TestCuttingTheGroupsStopShortReleasesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := memqueue.New()
		ids := publishN(t, q, 1)
		started := make(chan struct{})
		c := &queue.Consumer{
			Source: q, DrainTimeout: time.Hour, MaxAttempts: 1, Logger: quiet,
			Handler: func(ctx context.Context, m *queue.Message) error {
				close(started)
				<-ctx.Done()
				return ctx.Err()
			},
		}
		g := crew.Group{StopTimeout: time.Hour, Logger: quiet}
		g.Add("consumer", c)
		done := make(chan error, 1)
		go func() { done <- g.Run(context.Background()) }()
		<-started
		g.Stop(nil)
		time.Sleep(time.Minute) // draining
		begin := time.Now()
		g.Stop(nil) // a second Ctrl-C
		err := <-done
		if time.Since(begin) != 0 {
			t.Errorf("the group took %v to stop after its drain was cut short", time.Since(begin))
		}
		var de *queue.DrainError
		if !errors.As(err, &de) || !slices.Equal(de.Released, ids) {
			t.Fatalf("Run = %v, want the released message named", err)
		}
		// On its last attempt, the message is released, not dead-lettered:
		// the failure was the stop's doing.
		if got := q.Counts(); got.Ready != 1 || got.Dead != 0 {
			t.Errorf("queue %+v, want the message ready again", got)
		}
	})
}

func TestChainAppliesMiddlewareOutsideIn(t *testing.T) {
	var order []string
	mw := func(name string) queue.Middleware {
		return func(next queue.Handler) queue.Handler {
			return func(ctx context.Context, m *queue.Message) error {
				order = append(order, name)
				return next(ctx, m)
			}
		}
	}
	h := queue.Chain(func(context.Context, *queue.Message) error {
		order = append(order, "handler")
		return nil
	}, mw("outer"), mw("inner"))
	_ = h(context.Background(), &queue.Message{})
	if want := []string{"outer", "inner", "handler"}; !slices.Equal(order, want) {
		t.Errorf("order %v, want %v", order, want)
	}
}

func TestRunNeedsASourceAndAHandler(t *testing.T) {
	if err := (&queue.Consumer{}).Run(context.Background()); err == nil {
		t.Error("Run without Source and Handler returned nil")
	}
}

func TestRunRejectsALeaseBelowMinLease(t *testing.T) {
	h := func(context.Context, *queue.Message) error { return nil }
	for _, lease := range []time.Duration{time.Millisecond, queue.MinLease - 1, -time.Second} {
		q := memqueue.New()
		publishN(t, q, 1)
		c := &queue.Consumer{Source: q, Handler: h, Lease: lease, Logger: quiet}
		// Run returns at once; without the check it would run until ctx
		// ends and return nil.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := c.Run(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "below MinLease") {
			t.Errorf("Lease %v: Run = %v, want an error naming MinLease", lease, err)
		}
		if got := q.Counts(); got.Ready != 1 {
			t.Errorf("Lease %v: queue %+v, want the message untouched", lease, got)
		}
	}
}
