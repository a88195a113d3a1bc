// Package prometheus exports what crew's workers, pools and queue consumers
// are doing as Prometheus metrics, so that a dashboard can show how deep
// each queue is, how fast it drains, and which workers are down.
//
// Each collector reads counters that crew keeps anyway (queue.Consumer.Stats,
// pool.Pool.Stats, crew.Group.Status) when Prometheus scrapes, so it adds
// nothing to the hot path; only the handler-duration histogram is fed as
// messages are handled, by a queue.Middleware. Register the collectors with
// any prometheus.Registerer:
//
//	c := &queue.Consumer{Source: q, Concurrency: 8}
//	m := crewprom.NewConsumerCollector("emails", c)
//	c.Handler = queue.Chain(sendEmail, m.Middleware())
//	prometheus.MustRegister(m, crewprom.NewDepthCollector("emails", q.Stats))
//
// The metric names and labels are fixed, so that dashboards and alerts
// written for one crew service work for every other (the grafana folder of
// this module holds a ready-made dashboard):
//
//	crew_queue_messages_total{queue,outcome}  counter: succeeded, retried, dead, released, lease_lost
//	crew_queue_handler_seconds{queue}         histogram of handler run time
//	crew_queue_in_flight{queue}               gauge: handlers running now
//	crew_queue_depth{queue,state}             gauge: ready, leased, delayed, dead
//	crew_pool_tasks_total{pool,outcome}       counter: succeeded, failed, skipped
//	crew_pool_running{pool}                   gauge
//	crew_pool_queued{pool}                    gauge
//	crew_group_worker_up{group,worker}        gauge: 1 while the worker's Run runs
//	crew_group_worker_restarts_total{group,worker} counter
//
// The name given to a collector becomes the value of its queue, pool or
// group label. Several collectors of one kind can be registered together
// as long as their names differ.
package prometheus
