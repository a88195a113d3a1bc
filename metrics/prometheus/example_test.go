package prometheus_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/crewgo/crew"
	crewprom "github.com/crewgo/crew/metrics/prometheus"
	"github.com/crewgo/crew/pool"
	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/memqueue"
)

// printMetrics prints the lines of reg's /metrics page that start with one
// of prefixes.
func printMetrics(reg *prom.Registry, prefixes ...string) {
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for line := range strings.Lines(rec.Body.String()) {
		for _, p := range prefixes {
			if strings.HasPrefix(line, p) {
				fmt.Print(line)
			}
		}
	}
}

// A consumer's collector counts its messages by outcome; its Middleware
// times the handler.
func ExampleNewConsumerCollector() {
	q := memqueue.New()
	for _, body := range []string{"a", "b", "c"} {
		_, _ = q.Publish(context.Background(), []byte(body))
	}
	ctx, stop := context.WithCancel(context.Background())
	c := &queue.Consumer{Source: q, Concurrency: 1, Logger: slog.New(slog.DiscardHandler)}
	m := crewprom.NewConsumerCollector("letters", c)
	c.Handler = queue.Chain(func(ctx context.Context, msg *queue.Message) error {
		if msg.ID == "3" {
			stop()
		}
		return nil
	}, m.Middleware())
	_ = c.Run(ctx)

	reg := prom.NewRegistry()
	reg.MustRegister(m)
	printMetrics(reg, `crew_queue_messages_total{outcome="succeeded"`, "crew_queue_in_flight{", "crew_queue_handler_seconds_count")
	// Output:
	// crew_queue_handler_seconds_count{queue="letters"} 3
	// crew_queue_in_flight{queue="letters"} 0
	// crew_queue_messages_total{outcome="succeeded",queue="letters"} 3
}

// A durable backend's Stats method is a depth function as it is
// (crewprom.NewDepthCollector("emails", q.Stats)); here an in-memory
// queue's counts.
func ExampleNewDepthCollector() {
	q := memqueue.New()
	_, _ = q.Publish(context.Background(), []byte("hello"))
	reg := prom.NewRegistry()
	reg.MustRegister(crewprom.NewDepthCollector("greetings", func(context.Context) (crewprom.Depth, error) {
		return q.Counts(), nil
	}))
	printMetrics(reg, "crew_queue_depth{")
	// Output:
	// crew_queue_depth{queue="greetings",state="dead"} 0
	// crew_queue_depth{queue="greetings",state="delayed"} 0
	// crew_queue_depth{queue="greetings",state="leased"} 0
	// crew_queue_depth{queue="greetings",state="ready"} 1
}

func ExampleNewPoolCollector() {
	p := pool.New(4)
	for i := range 10 {
		_ = p.Go(context.Background(), func(context.Context) error {
			if i%5 == 0 {
				return fmt.Errorf("item %d failed", i)
			}
			return nil
		})
	}
	p.Close()
	_ = p.Wait()

	reg := prom.NewRegistry()
	reg.MustRegister(crewprom.NewPoolCollector("thumbnails", p))
	printMetrics(reg, "crew_pool_")
	// Output:
	// crew_pool_queued{pool="thumbnails"} 0
	// crew_pool_running{pool="thumbnails"} 0
	// crew_pool_tasks_total{outcome="failed",pool="thumbnails"} 2
	// crew_pool_tasks_total{outcome="skipped",pool="thumbnails"} 0
	// crew_pool_tasks_total{outcome="succeeded",pool="thumbnails"} 8
}

// A group's collector has one series per worker. Serve the registry with
// promhttp on the service's own HTTP server, or as a worker of the group.
func ExampleNewGroupCollector() {
	g := &crew.Group{Logger: slog.New(slog.DiscardHandler)}
	g.Add("api", crew.Func(func(ctx context.Context) error { <-ctx.Done(); return nil }))
	reg := prom.NewRegistry()
	reg.MustRegister(crewprom.NewGroupCollector("shop", g))

	go func() { <-g.Ready(); printMetrics(reg, "crew_group_"); g.Stop(nil) }()
	_ = g.Run(context.Background())
	// Output:
	// crew_group_worker_restarts_total{group="shop",worker="api"} 0
	// crew_group_worker_up{group="shop",worker="api"} 1
}
