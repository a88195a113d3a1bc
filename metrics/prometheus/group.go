package prometheus

import (
	prom "github.com/prometheus/client_golang/prometheus"

	"github.com/crewgo/crew"
)

// GroupCollector is a prometheus.Collector for one crew.Group:
// crew_group_worker_up and crew_group_worker_restarts_total, one series per
// worker, labelled with the group's name and the worker's.
type GroupCollector struct {
	g        *crew.Group
	up       *prom.Desc
	restarts *prom.Desc
}

// NewGroupCollector returns a collector that reads g.Status at each scrape
// and labels its metrics group=name. A worker is up (1) while its Run
// method runs, stopping and straggling included, and down (0) while it is
// pending, waits out a restart delay, or has returned.
func NewGroupCollector(name string, g *crew.Group) *GroupCollector {
	labels := prom.Labels{"group": name}
	worker := []string{"worker"}
	return &GroupCollector{
		g:        g,
		up:       prom.NewDesc("crew_group_worker_up", "1 while the worker runs, else 0.", worker, labels),
		restarts: prom.NewDesc("crew_group_worker_restarts_total", "How often the worker was restarted.", worker, labels),
	}
}

// Describe sends the descriptors of the group's metrics.
func (gc *GroupCollector) Describe(ch chan<- *prom.Desc) {
	ch <- gc.up
	ch <- gc.restarts
}

// Collect reads the group's status and sends two metrics per worker. It
// may be called at any time, before, during or after Run.
func (gc *GroupCollector) Collect(ch chan<- prom.Metric) {
	for _, w := range gc.g.Status() {
		up := 0.0
		switch w.State {
		case crew.StateRunning, crew.StateStopping, crew.StateStraggling:
			up = 1
		}
		ch <- prom.MustNewConstMetric(gc.up, prom.GaugeValue, up, w.Name)
		ch <- prom.MustNewConstMetric(gc.restarts, prom.CounterValue, float64(w.Restarts), w.Name)
	}
}
