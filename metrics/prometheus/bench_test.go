package prometheus_test

import (
	"context"
	"testing"

	prom "github.com/prometheus/client_golang/prometheus"

	crewprom "github.com/crewgo/crew/metrics/prometheus"
	"github.com/crewgo/crew/queue"
)

// BenchmarkHandler measures what the collector's Middleware adds to each
// message, against the bare handler: the collector's counters are read at
// scrape time, so this is its only cost on the hot path.
func BenchmarkHandler(b *testing.B) {
	h := func(context.Context, *queue.Message) error { return nil }
	m := crewprom.NewConsumerCollector("bench", &queue.Consumer{})
	ctx, msg := context.Background(), &queue.Message{ID: "1"}
	for _, bc := range []struct {
		name string
		h    queue.Handler
	}{{"bare", h}, {"collector", m.Middleware()(h)}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					_ = bc.h(ctx, msg)
				}
			})
		})
	}
}

// BenchmarkScrape measures one collection of a consumer's metrics, which a
// Prometheus server does every scrape interval.
func BenchmarkScrape(b *testing.B) {
	reg := prom.NewRegistry()
	reg.MustRegister(crewprom.NewConsumerCollector("bench", &queue.Consumer{}))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}
