package benchmarks

// Throughput and request count of crew's queue/sqs consumed through
// queue.Consumer, side by side with the pattern most hand-written SQS
// workers follow: one loop that receives 10 messages, starts a goroutine
// for each, deletes each with its own DeleteMessage, and waits for the 10
// before receiving again. Both run against an SQS emulator (the npm package
// local-aws-sqs, run by Node.js on 127.0.0.1) that the benchmark starts.
// Each operation publishes sqsJobs messages of about 100 bytes to a new
// queue (not timed, not counted), then consumes them all with a no-op
// handler and 8 handlers (timed, until every message is deleted and the
// consumer has stopped). crew runs twice: with queue.Consumer's defaults,
// and with a Prefetch of 72, which lets each Receive ask for up to 80
// messages, made as 8 concurrent requests of 10. Long polls wait at most 1s for both, as the
// emulator answers a long poll early only once it has all the messages
// asked for.
//
// The metrics are jobs/s and calls/msg: SQS requests per message, counted
// by a middleware on the SDK client (SQS bills per request).
//
//	go test -run '^$' -bench QueueSQS -benchtime 1x -count 6 . | tee sqs.txt
//	benchstat -col /impl sqs.txt
//
// Set CREW_BENCH_QUEUE_JOBS to consume another number of messages per
// operation (default 10000).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/middleware"

	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/sqs"
	"github.com/crewgo/crew/queue/sqs/sqstest"
)

func sqsJobs(b *testing.B) int {
	if os.Getenv("CREW_BENCH_QUEUE_JOBS") != "" {
		return queueJobs(b)
	}
	return 10_000
}

// sqsPoll is the longest long poll, for crew and the pattern alike.
const sqsPoll = time.Second

func BenchmarkQueueSQS(b *testing.B) {
	n := sqsJobs(b)
	srv, err := sqstest.StartServer()
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Stop()
	var calls atomic.Int64
	client := srv.Client(countCalls(&calls))
	impls := []struct {
		name    string
		consume func(ctx context.Context, client *awssqs.Client, url string, n int) error
	}{
		{"crew", sqsCrew(0)},
		{"pattern", sqsPattern},
		{"crew-prefetch72", sqsCrew(72)},
	}
	queues := 0
	for _, im := range impls {
		b.Run("impl="+im.name, func(b *testing.B) {
			var elapsed time.Duration
			var counted int64
			b.StopTimer()
			for i := 0; i < b.N; i++ {
				queues++
				url := sqsFill(b, srv, client, fmt.Sprintf("bench%d", queues), n)
				calls.Store(0)
				start := time.Now()
				b.StartTimer()
				err := im.consume(context.Background(), client, url, n)
				b.StopTimer()
				elapsed += time.Since(start)
				counted += calls.Load()
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n*b.N)/elapsed.Seconds(), "jobs/s")
			b.ReportMetric(float64(counted)/float64(n*b.N), "calls/msg")
		})
	}
}

// countCalls adds a middleware that counts every request the client sends,
// retries included.
func countCalls(calls *atomic.Int64) func(*awssqs.Options) {
	return func(o *awssqs.Options) {
		o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
			return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("CountCalls",
				func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
					calls.Add(1)
					return next.HandleFinalize(ctx, in)
				}), middleware.After)
		})
	}
}

// sqsFill creates the queue name and publishes n messages to it.
func sqsFill(b *testing.B, srv *sqstest.Server, client *awssqs.Client, name string, n int) string {
	url, err := srv.Create(context.Background(), name, 0)
	if err != nil {
		b.Fatal(err)
	}
	q := sqs.New(client, url)
	const chunk = 1000
	for start := 0; start < n; start += chunk {
		bodies := make([][]byte, 0, chunk)
		for i := start; i < min(start+chunk, n); i++ {
			bodies = append(bodies, body(i))
		}
		if _, err := q.PublishBatch(context.Background(), bodies); err != nil {
			b.Fatal(err)
		}
	}
	return url
}

// sqsCrew consumes with queue.Consumer and its default options, apart from
// Concurrency and Prefetch.
func sqsCrew(prefetch int) func(context.Context, *awssqs.Client, string, int) error {
	return func(ctx context.Context, client *awssqs.Client, url string, n int) error {
		q := sqs.New(client, url, sqs.WaitTime(sqsPoll))
		c := &queue.Consumer{Source: q, Concurrency: queueConcurrency, Prefetch: prefetch}
		return errors.Join(consumeN(ctx, c, n), q.Close())
	}
}

// sqsPattern consumes as a typical hand-written worker does: receive 10,
// a goroutine each, DeleteMessage one by one, then receive again.
func sqsPattern(ctx context.Context, client *awssqs.Client, url string, n int) error {
	var deleted atomic.Int64
	var mu sync.Mutex
	var firstErr error
	for deleted.Load() < int64(n) {
		out, err := client.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{
			QueueUrl:            &url,
			MaxNumberOfMessages: 10,
			WaitTimeSeconds:     int32(sqsPoll / time.Second),
			VisibilityTimeout:   30,
		})
		if err != nil {
			return err
		}
		var wg sync.WaitGroup
		for _, m := range out.Messages {
			wg.Go(func() {
				_ = m.Body // the no-op handler
				_, err := client.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: m.ReceiptHandle})
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				deleted.Add(1)
			})
		}
		wg.Wait()
		if firstErr != nil {
			return firstErr
		}
	}
	return nil
}
