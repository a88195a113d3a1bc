package benchmarks

// Throughput of crew's queue/jetstream consumed through queue.Consumer,
// side by side with a floor written directly with nats.go: each of 8
// goroutines fetches 10 messages at a time and confirms each with
// DoubleAck, the least that a consumer with confirmed acknowledgements can
// do. crew runs with its defaults (Concurrency 8), then with Prefetch 8,
// then also with AckBatch 64. Both run against a NATS server embedded in the benchmark process,
// with file storage in a temporary directory. Each operation publishes
// queueJobs messages of about 100 bytes to a new queue (not timed), then
// consumes them all with a no-op handler (timed, until every message is
// acknowledged and the consumer has stopped). The metric is jobs/s.
//
//	go test -run '^$' -bench QueueJetStream -benchtime 1x -count 6 . | tee jetstream.txt
//	benchstat -col /impl jetstream.txt
//
// Set CREW_BENCH_QUEUE_JOBS to consume another number of messages per
// operation (default 100000).

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/crewgo/crew/queue"
	crewjs "github.com/crewgo/crew/queue/jetstream"
)

func BenchmarkQueueJetStream(b *testing.B) {
	n := queueJobs(b)
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: b.TempDir(), NoLog: true, NoSigs: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	srv.Start()
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	if !srv.ReadyForConnections(10 * time.Second) {
		b.Fatal("the NATS server did not start")
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := natsjs.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	impls := []struct {
		name    string
		consume func(ctx context.Context, js natsjs.JetStream, q *crewjs.Queue, n int) error
	}{
		{"crew", jetstreamCrew(0, 0)},
		{"floor", jetstreamFloor},
		{"crew-prefetch8", jetstreamCrew(queueConcurrency, 0)},
		{"crew-batch64", jetstreamCrew(queueConcurrency, 64)},
	}
	queues := 0
	for _, im := range impls {
		b.Run("impl="+im.name, func(b *testing.B) {
			var elapsed time.Duration
			b.StopTimer()
			for i := 0; i < b.N; i++ {
				queues++
				q := jetstreamFill(b, js, fmt.Sprintf("bench%d", queues), n)
				start := time.Now()
				b.StartTimer()
				err := im.consume(context.Background(), js, q, n)
				b.StopTimer()
				elapsed += time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
				if s, err := q.Stats(context.Background()); err != nil || s != (crewjs.Stats{}) {
					b.Fatalf("%s: %+v, %v left after consuming", im.name, s, err)
				}
				if err := js.DeleteStream(context.Background(), "CREW_"+q.Name()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n*b.N)/elapsed.Seconds(), "jobs/s")
		})
	}
}

// jetstreamFill creates the queue name and publishes n messages to it.
func jetstreamFill(b *testing.B, js natsjs.JetStream, name string, n int) *crewjs.Queue {
	q, err := crewjs.New(js, name)
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		if _, err := js.PublishAsync("crew."+name, body(i)); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 999 {
			<-js.PublishAsyncComplete()
		}
	}
	<-js.PublishAsyncComplete()
	return q
}

// jetstreamCrew consumes with queue.Consumer and its default options,
// apart from Concurrency, Prefetch and AckBatch (the default if zero).
func jetstreamCrew(prefetch, ackBatch int) func(context.Context, natsjs.JetStream, *crewjs.Queue, int) error {
	return func(ctx context.Context, _ natsjs.JetStream, q *crewjs.Queue, n int) error {
		return jetstreamConsume(ctx, q, n, prefetch, ackBatch)
	}
}

func jetstreamConsume(ctx context.Context, q *crewjs.Queue, n, prefetch, ackBatch int) error {
	c := &queue.Consumer{Source: q, Concurrency: queueConcurrency, Prefetch: prefetch, AckBatch: ackBatch}
	return consumeN(ctx, c, n)
}

// jetstreamFloor consumes with nats.go alone: queueConcurrency goroutines,
// each fetching 10 messages at a time and confirming each with DoubleAck.
func jetstreamFloor(ctx context.Context, js natsjs.JetStream, q *crewjs.Queue, n int) error {
	cons, err := js.Consumer(ctx, "CREW_"+q.Name(), "crew_"+q.Name())
	if err != nil {
		return err
	}
	var acked atomic.Int64
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	errs := make(chan error, queueConcurrency)
	var wg sync.WaitGroup
	for range queueConcurrency {
		wg.Go(func() {
			for fctx.Err() == nil {
				batch, err := cons.Fetch(10, natsjs.FetchContext(fctx))
				if err != nil {
					errs <- err
					return
				}
				for m := range batch.Messages() {
					if err := m.DoubleAck(ctx); err != nil {
						errs <- err
						return
					}
					if acked.Add(1) == int64(n) {
						stop() // the others' fetches wait for messages that will not come
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}
