package prometheus

import (
	"context"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"

	"github.com/crewgo/crew/queue"
)

// HandlerBuckets are the upper bounds, in seconds, of the
// crew_queue_handler_seconds histogram: from 5ms for quick handlers to ten
// minutes for batch jobs.
var HandlerBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// ConsumerCollector is a prometheus.Collector for one queue.Consumer:
// crew_queue_messages_total, crew_queue_in_flight and
// crew_queue_handler_seconds, each labelled with the queue's name.
type ConsumerCollector struct {
	c        *queue.Consumer
	messages *prom.Desc
	inFlight *prom.Desc
	handler  prom.Histogram
}

// NewConsumerCollector returns a collector for c, whose metrics carry the
// label queue=name. The counts of messages by outcome and the number in
// flight are read from c.Stats at each scrape; the handler histogram is fed
// only if c's handler is wrapped in the collector's Middleware.
func NewConsumerCollector(name string, c *queue.Consumer) *ConsumerCollector {
	labels := prom.Labels{"queue": name}
	return &ConsumerCollector{
		c: c,
		messages: prom.NewDesc("crew_queue_messages_total",
			"Messages the consumer finished with, by outcome.", []string{"outcome"}, labels),
		inFlight: prom.NewDesc("crew_queue_in_flight",
			"Handlers running now.", nil, labels),
		handler: prom.NewHistogram(prom.HistogramOpts{
			Name:        "crew_queue_handler_seconds",
			Help:        "How long the handler ran, per message, whatever its result.",
			ConstLabels: labels,
			Buckets:     HandlerBuckets,
		}),
	}
}

// Middleware returns a queue.Middleware that records how long each call of
// the handler it wraps takes in crew_queue_handler_seconds. A handler that
// panics is recorded too, and its panic goes on up unchanged.
func (cc *ConsumerCollector) Middleware() queue.Middleware {
	return func(next queue.Handler) queue.Handler {
		return func(ctx context.Context, m *queue.Message) error {
			start := time.Now()
			defer func() { cc.handler.Observe(time.Since(start).Seconds()) }()
			return next(ctx, m)
		}
	}
}

// Describe sends the descriptors of the consumer's metrics.
func (cc *ConsumerCollector) Describe(ch chan<- *prom.Desc) {
	ch <- cc.messages
	ch <- cc.inFlight
	cc.handler.Describe(ch)
}

// Collect reads the consumer's counters and sends its metrics. It may be
// called at any time, before, during or after the consumer's Run.
func (cc *ConsumerCollector) Collect(ch chan<- prom.Metric) {
	s := cc.c.Stats()
	for _, o := range []struct {
		outcome string
		n       int64
	}{
		{"succeeded", s.Succeeded},
		{"retried", s.Retried},
		{"dead", s.DeadLettered},
		{"released", s.Released},
		{"lease_lost", s.LeaseLost},
	} {
		ch <- prom.MustNewConstMetric(cc.messages, prom.CounterValue, float64(o.n), o.outcome)
	}
	ch <- prom.MustNewConstMetric(cc.inFlight, prom.GaugeValue, float64(s.Running))
	cc.handler.Collect(ch)
}
