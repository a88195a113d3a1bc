package prometheus

import (
	"context"
	"fmt"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"

	"github.com/crewgo/crew/queue"
)

// Depth counts one queue's messages by state. It is queue.Depth, which
// every crew backend's Stats returns (and memqueue's Counts), so a
// backend's Stats method is a depth function as it is.
type Depth = queue.Depth

// DepthTimeout bounds each count that a DepthCollector asks for.
const DepthTimeout = 5 * time.Second

// DepthCollector is a prometheus.Collector for crew_queue_depth: one
// queue's messages by state, counted by its backend at each scrape.
type DepthCollector struct {
	depth func(ctx context.Context) (Depth, error)
	desc  *prom.Desc
}

// NewDepthCollector returns a collector that calls depth at each scrape,
// with a context that ends after DepthTimeout, and reports its counts as
// crew_queue_depth{queue=name,state=...}. Every backend can count its
// messages, and its Stats method is a depth function:
//
//	crewprom.NewDepthCollector("emails", q.Stats)
//
// When depth fails, the collector reports the error as an invalid metric:
// the registry's Gather returns it, and promhttp answers 500 unless its
// HandlerOpts.ErrorHandling is ContinueOnError, which serves the other
// metrics. A panic in depth is not recovered.
func NewDepthCollector(name string, depth func(ctx context.Context) (Depth, error)) *DepthCollector {
	return &DepthCollector{
		depth: depth,
		desc: prom.NewDesc("crew_queue_depth",
			"Messages in the queue, by state, as its backend counts them.",
			[]string{"state"}, prom.Labels{"queue": name}),
	}
}

// Describe sends the descriptor of crew_queue_depth.
func (dc *DepthCollector) Describe(ch chan<- *prom.Desc) { ch <- dc.desc }

// Collect counts the queue's messages and sends one gauge per state.
func (dc *DepthCollector) Collect(ch chan<- prom.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), DepthTimeout)
	defer cancel()
	d, err := dc.depth(ctx)
	if err != nil {
		ch <- prom.NewInvalidMetric(dc.desc, fmt.Errorf("count queue messages: %w", err))
		return
	}
	for _, s := range []struct {
		state string
		n     int
	}{{"ready", d.Ready}, {"leased", d.Leased}, {"delayed", d.Delayed}, {"dead", d.Dead}} {
		ch <- prom.MustNewConstMetric(dc.desc, prom.GaugeValue, float64(s.n), s.state)
	}
}
