package prometheus

import (
	prom "github.com/prometheus/client_golang/prometheus"

	"github.com/crewgo/crew/pool"
)

// PoolCollector is a prometheus.Collector for one pool.Pool:
// crew_pool_tasks_total, crew_pool_running and crew_pool_queued, each
// labelled with the pool's name.
type PoolCollector struct {
	p       *pool.Pool
	tasks   *prom.Desc
	running *prom.Desc
	queued  *prom.Desc
}

// NewPoolCollector returns a collector that reads p.Stats at each scrape
// and labels its metrics pool=name. Finished tasks are counted by outcome:
// succeeded, failed (an error or a panic) and skipped (accepted, then
// dropped because the pool's context ended).
func NewPoolCollector(name string, p *pool.Pool) *PoolCollector {
	labels := prom.Labels{"pool": name}
	return &PoolCollector{
		p:       p,
		tasks:   prom.NewDesc("crew_pool_tasks_total", "Tasks the pool finished with, by outcome.", []string{"outcome"}, labels),
		running: prom.NewDesc("crew_pool_running", "Tasks running now.", nil, labels),
		queued:  prom.NewDesc("crew_pool_queued", "Tasks accepted and waiting for a goroutine.", nil, labels),
	}
}

// Describe sends the descriptors of the pool's metrics.
func (pc *PoolCollector) Describe(ch chan<- *prom.Desc) {
	ch <- pc.tasks
	ch <- pc.running
	ch <- pc.queued
}

// Collect reads the pool's counters and sends its metrics. It may be called
// at any time, after Close and Wait too.
func (pc *PoolCollector) Collect(ch chan<- prom.Metric) {
	s := pc.p.Stats()
	ch <- prom.MustNewConstMetric(pc.tasks, prom.CounterValue, float64(s.Done-s.Failed), "succeeded")
	ch <- prom.MustNewConstMetric(pc.tasks, prom.CounterValue, float64(s.Failed), "failed")
	ch <- prom.MustNewConstMetric(pc.tasks, prom.CounterValue, float64(s.Skipped), "skipped")
	ch <- prom.MustNewConstMetric(pc.running, prom.GaugeValue, float64(s.Running))
	ch <- prom.MustNewConstMetric(pc.queued, prom.GaugeValue, float64(s.Queued))
}
