package queue_test

import (
	"context"
	"fmt"
	"testing"

	"golang.org/x/time/rate"

	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/memqueue"
)

// BenchmarkConsumerLimits measures what the limits cost a consumer of
// quick handlers on an in-memory queue: messages handled per second, and
// for Key how often a message was postponed before it ran.
func BenchmarkConsumerLimits(b *testing.B) {
	for _, bc := range []struct {
		name  string
		keys  int // distinct tenants, published round-robin; 0: no attribute
		limit func(c *queue.Consumer)
	}{
		{"none", 0, func(c *queue.Consumer) {}},
		{"none/concurrency=4", 0, func(c *queue.Consumer) { c.Concurrency = 4 }},
		{"rate=inf", 0, func(c *queue.Consumer) { c.RateLimit = rate.NewLimiter(rate.Inf, 1) }},
		{"key/100-tenants/per=2", 100, func(c *queue.Consumer) { c.Key, c.PerKey = "tenant", 2 }},
		{"key/1-tenant/per=4", 1, func(c *queue.Consumer) { c.Key, c.PerKey = "tenant", 4 }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			q := memqueue.New()
			for i := range b.N {
				var opts []queue.PublishOption
				if bc.keys > 0 {
					opts = append(opts, queue.Attribute("tenant", fmt.Sprint(i%bc.keys)))
				}
				if _, err := q.Publish(context.Background(), nil, opts...); err != nil {
					b.Fatal(err)
				}
			}
			done := make(chan struct{})
			var handled int
			c := &queue.Consumer{
				Source: q, Concurrency: 16, Logger: quiet,
				Handler: func(ctx context.Context, m *queue.Message) error {
					return nil
				},
				OnResult: func(r queue.Result) {
					// Called from one goroutine at a time for successes.
					if handled++; handled == b.N {
						close(done)
					}
				},
			}
			bc.limit(c)
			b.ResetTimer()
			stop := start(c)
			<-done
			b.StopTimer()
			if err := stop(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(c.Stats().Postponed)/float64(b.N), "postponed/msg")
		})
	}
}
