package main

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/crewgo/crew"
	"github.com/crewgo/crew/cmd/crew/internal/backend"
	crewprom "github.com/crewgo/crew/metrics/prometheus"
	"github.com/crewgo/crew/queue"
)

// addMetrics prepares crew work's Prometheus metrics, under the names of
// the module github.com/crewgo/crew/metrics/prometheus, and returns their
// /metrics handler: nil without --metrics. When --metrics names another
// address than --health, it adds a server of its own for them to g, and
// returns the options that make the consumer start after it and stop
// before it, so that the drain can be watched to its end; when they are
// the same, the caller serves the handler on the health server. It wraps
// the consumer's handler to time it, so it must come before Run.
func addMetrics(g *crew.Group, c workConfig, q backend.Backend, consumer *queue.Consumer, logger *slog.Logger) (http.Handler, []crew.Option) {
	if c.metrics == "" {
		return nil, nil
	}
	reg := prom.NewRegistry()
	cc := crewprom.NewConsumerCollector(q.Name(), consumer)
	consumer.Handler = queue.Chain(consumer.Handler, cc.Middleware())
	reg.MustRegister(
		cc,
		crewprom.NewDepthCollector(q.Name(), func(ctx context.Context) (queue.Depth, error) {
			return q.Stats(ctx, q.Name())
		}),
		crewprom.NewGroupCollector("crew-work", g),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		// A queue that cannot be counted must not hide the other metrics.
		ErrorHandling: promhttp.ContinueOnError,
		ErrorLog:      slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	})
	if c.metrics != c.health {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", h)
		srv := &http.Server{Addr: c.metrics, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		g.Add("metrics", crew.HTTPServer(srv), crew.WaitReady())
		return h, []crew.Option{crew.After("metrics")}
	}
	return h, nil
}
