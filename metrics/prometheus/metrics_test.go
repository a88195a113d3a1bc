package prometheus_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/crewgo/crew"
	"github.com/crewgo/crew/backoff"
	crewprom "github.com/crewgo/crew/metrics/prometheus"
	"github.com/crewgo/crew/pool"
	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/memqueue"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// gather registers cs in a fresh registry and returns every sample, keyed
// by name and labels in Prometheus' text form, such as
// crew_pool_running{pool="p"}. Histograms give their _count.
func gather(t *testing.T, cs ...prom.Collector) map[string]float64 {
	t.Helper()
	reg := prom.NewPedanticRegistry()
	for _, c := range cs {
		reg.MustRegister(c)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := f.GetName() + labelString(m.GetLabel())
			switch {
			case m.Counter != nil:
				out[key] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[key] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				out[f.GetName()+"_count"+labelString(m.GetLabel())] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

func labelString(ls []*dto.LabelPair) string {
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = fmt.Sprintf("%s=%q", l.GetName(), l.GetValue())
	}
	slices.Sort(parts)
	return "{" + strings.Join(parts, ",") + "}"
}

func expect(t *testing.T, got map[string]float64, want map[string]float64) {
	t.Helper()
	for k, v := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("%s missing", k)
		case g != v:
			t.Errorf("%s = %v, want %v", k, g, v)
		}
	}
}

func TestConsumerCollectorCountsEveryOutcomeAndInFlightReturnsToZero(t *testing.T) {
	q := memqueue.New()
	ctx := context.Background()
	// The two blocking messages come first and fill both handler slots.
	_, _ = q.Publish(ctx, []byte("block a"))
	_, _ = q.Publish(ctx, []byte("block b"))
	for i := range 5 {
		_, _ = q.Publish(ctx, fmt.Appendf(nil, "ok %d", i))
	}
	_, _ = q.Publish(ctx, []byte("fail a"))
	_, _ = q.Publish(ctx, []byte("fail b"))

	release := make(chan struct{})
	var blocked sync.WaitGroup
	blocked.Add(2)
	var settled sync.WaitGroup
	settled.Add(5 + 2 + 2) // final outcomes: 5+2 succeeded, 2 dead
	runCtx, stop := context.WithCancel(ctx)
	c := &queue.Consumer{
		Source:      q,
		Concurrency: 2,
		MaxAttempts: 2,
		Retry:       backoff.Constant(0),
		Logger:      slog.New(slog.DiscardHandler),
		OnResult: func(r queue.Result) {
			if r.Outcome == queue.Succeeded || r.Outcome == queue.DeadLettered {
				settled.Done()
			}
		},
	}
	m := crewprom.NewConsumerCollector("jobs", c)
	c.Handler = queue.Chain(func(ctx context.Context, msg *queue.Message) error {
		switch body := string(msg.Body); {
		case strings.HasPrefix(body, "fail"):
			return errors.New("boom")
		case strings.HasPrefix(body, "block"):
			blocked.Done()
			<-release
		}
		return nil
	}, m.Middleware())

	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()

	blocked.Wait()
	expect(t, gather(t, m), map[string]float64{`crew_queue_in_flight{queue="jobs"}`: 2})
	close(release)
	settled.Wait()
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}

	expect(t, gather(t, m), map[string]float64{
		`crew_queue_messages_total{outcome="succeeded",queue="jobs"}`:  7,
		`crew_queue_messages_total{outcome="retried",queue="jobs"}`:    2,
		`crew_queue_messages_total{outcome="dead",queue="jobs"}`:       2,
		`crew_queue_messages_total{outcome="released",queue="jobs"}`:   0,
		`crew_queue_messages_total{outcome="lease_lost",queue="jobs"}`: 0,
		`crew_queue_in_flight{queue="jobs"}`:                           0,
		`crew_queue_handler_seconds_count{queue="jobs"}`:               11, // 7 + 2 failures twice
	})
}

func TestConsumerCollectorMiddlewareTimesAPanickingHandlerAndRepanics(t *testing.T) {
	m := crewprom.NewConsumerCollector("q", &queue.Consumer{})
	h := m.Middleware()(func(context.Context, *queue.Message) error { panic("bad") })
	func() {
		defer func() {
			if v := recover(); v != "bad" {
				t.Errorf("recovered %v, want the handler's panic", v)
			}
		}()
		_ = h(context.Background(), &queue.Message{})
	}()
	expect(t, gather(t, m), map[string]float64{`crew_queue_handler_seconds_count{queue="q"}`: 1})
}

func TestCollectorsOfOneKindRegisterTogetherUnderTheirNames(t *testing.T) {
	a, b := memqueue.New(), memqueue.New()
	got := gather(t,
		crewprom.NewConsumerCollector("a", &queue.Consumer{Source: a}),
		crewprom.NewConsumerCollector("b", &queue.Consumer{Source: b}),
		crewprom.NewPoolCollector("a", pool.New(1)),
		crewprom.NewPoolCollector("b", pool.New(1)),
	)
	expect(t, got, map[string]float64{
		`crew_queue_in_flight{queue="a"}`: 0,
		`crew_queue_in_flight{queue="b"}`: 0,
		`crew_pool_running{pool="a"}`:     0,
		`crew_pool_running{pool="b"}`:     0,
	})
}

func TestDepthCollectorReportsTheBackendsCounts(t *testing.T) {
	q := memqueue.New()
	ctx := context.Background()
	_, _ = q.Publish(ctx, []byte("a"))
	_, _ = q.Publish(ctx, []byte("b"))
	_, _ = q.Publish(ctx, []byte("later"), queue.Delay(time.Hour))
	msgs, err := q.Receive(ctx, 1, time.Minute)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Receive: %v %v", msgs, err)
	}
	_, _ = q.Publish(ctx, []byte("dead"))
	dead, _ := q.Receive(ctx, 1, time.Minute)
	if err := q.DeadLetter(ctx, dead[0], errors.New("bad")); err != nil {
		t.Fatal(err)
	}
	d := crewprom.NewDepthCollector("jobs", func(context.Context) (crewprom.Depth, error) {
		return q.Counts(), nil
	})
	expect(t, gather(t, d), map[string]float64{
		`crew_queue_depth{queue="jobs",state="ready"}`:   1,
		`crew_queue_depth{queue="jobs",state="leased"}`:  1,
		`crew_queue_depth{queue="jobs",state="delayed"}`: 1,
		`crew_queue_depth{queue="jobs",state="dead"}`:    1,
	})
}

func TestDepthCollectorFailsTheGatherWhenCountingFails(t *testing.T) {
	errDown := errors.New("store unreachable")
	reg := prom.NewRegistry()
	reg.MustRegister(crewprom.NewDepthCollector("jobs", func(context.Context) (crewprom.Depth, error) {
		return crewprom.Depth{}, errDown
	}))
	if _, err := reg.Gather(); err == nil || !strings.Contains(err.Error(), errDown.Error()) {
		t.Errorf("Gather error %v, want one naming %q", err, errDown)
	}
}

func TestPoolCollectorCountsTasksByOutcome(t *testing.T) {
	p := pool.New(1, pool.Queue(4))
	m := crewprom.NewPoolCollector("resize", p)
	ctx := context.Background()
	started, release := make(chan struct{}), make(chan struct{})
	_ = p.Go(ctx, func(context.Context) error { close(started); <-release; return nil })
	<-started
	_ = p.Go(ctx, func(context.Context) error { return errors.New("bad") })
	_ = p.Go(ctx, func(context.Context) error { return nil })
	expect(t, gather(t, m), map[string]float64{
		`crew_pool_running{pool="resize"}`: 1,
		`crew_pool_queued{pool="resize"}`:  2,
	})
	close(release)
	p.Close()
	_ = p.Wait()
	expect(t, gather(t, m), map[string]float64{
		`crew_pool_tasks_total{outcome="succeeded",pool="resize"}`: 2,
		`crew_pool_tasks_total{outcome="failed",pool="resize"}`:    1,
		`crew_pool_tasks_total{outcome="skipped",pool="resize"}`:   0,
		`crew_pool_running{pool="resize"}`:                         0,
		`crew_pool_queued{pool="resize"}`:                          0,
	})
}

func TestGroupCollectorReportsWorkersUpAndRestarts(t *testing.T) {
	g := &crew.Group{Logger: slog.New(slog.DiscardHandler)}
	m := crewprom.NewGroupCollector("svc", g)
	failedOnce := make(chan struct{})
	var runs int
	g.Add("flaky", crew.Func(func(ctx context.Context) error {
		runs++
		if runs == 1 {
			return errors.New("first run fails")
		}
		close(failedOnce)
		<-ctx.Done()
		return nil
	}), crew.Restart(backoff.Constant(0), 3, time.Minute))
	g.Add("migrate", crew.Func(func(context.Context) error { return nil }), crew.OneShot())

	expect(t, gather(t, m), map[string]float64{
		`crew_group_worker_up{group="svc",worker="flaky"}`: 0, // not started yet
	})
	done := make(chan error, 1)
	go func() { done <- g.Run(context.Background()) }()
	<-failedOnce
	<-g.Ready()
	expect(t, gather(t, m), map[string]float64{
		`crew_group_worker_up{group="svc",worker="flaky"}`:             1,
		`crew_group_worker_restarts_total{group="svc",worker="flaky"}`: 1,
		`crew_group_worker_up{group="svc",worker="migrate"}`:           0, // done
	})
	g.Stop(nil)
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	expect(t, gather(t, m), map[string]float64{
		`crew_group_worker_up{group="svc",worker="flaky"}`:             0,
		`crew_group_worker_restarts_total{group="svc",worker="flaky"}`: 1,
	})
}

func TestConsumerCollectorCountsMessagesReleasedAtAStop(t *testing.T) {
	q := memqueue.New()
	ctx := context.Background()
	_, _ = q.Publish(ctx, []byte("running"))
	_, _ = q.Publish(ctx, []byte("prefetched"))
	started := make(chan struct{})
	runCtx, stop := context.WithCancel(ctx)
	c := &queue.Consumer{
		Source: q, Concurrency: 1, Prefetch: 1, DrainTimeout: 50 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler),
		Handler: func(ctx context.Context, m *queue.Message) error {
			close(started)
			<-ctx.Done() // runs past the drain deadline
			return ctx.Err()
		},
	}
	m := crewprom.NewConsumerCollector("jobs", c)
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	<-started
	for deadline := time.Now().Add(10 * time.Second); c.Stats().Held < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the consumer never prefetched the second message")
		}
	}
	stop()
	var de *queue.DrainError
	if err := <-done; !errors.As(err, &de) {
		t.Fatalf("Run: %v, want a *queue.DrainError", err)
	}
	expect(t, gather(t, m), map[string]float64{
		`crew_queue_messages_total{outcome="released",queue="jobs"}`:  2,
		`crew_queue_messages_total{outcome="succeeded",queue="jobs"}`: 0,
		`crew_queue_in_flight{queue="jobs"}`:                          0,
	})
}

// losingSource loses every lease it is asked to extend.
type losingSource struct{ *memqueue.Queue }

func (losingSource) Extend(context.Context, *queue.Message, time.Duration) error {
	return queue.ErrLeaseLost
}

func TestConsumerCollectorCountsLostLeases(t *testing.T) {
	q := memqueue.New()
	_, _ = q.Publish(context.Background(), []byte("long"))
	ctx, stop := context.WithCancel(context.Background())
	c := &queue.Consumer{
		Source: losingSource{q}, Concurrency: 1, Lease: queue.MinLease,
		Logger:   slog.New(slog.DiscardHandler),
		OnResult: func(queue.Result) { stop() },
		Handler: func(ctx context.Context, m *queue.Message) error {
			<-ctx.Done() // cancelled when the lease is lost
			return ctx.Err()
		},
	}
	m := crewprom.NewConsumerCollector("jobs", c)
	if err := c.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	expect(t, gather(t, m), map[string]float64{
		`crew_queue_messages_total{outcome="lease_lost",queue="jobs"}`: 1,
		`crew_queue_messages_total{outcome="retried",queue="jobs"}`:    0,
		`crew_queue_in_flight{queue="jobs"}`:                           0,
	})
}
