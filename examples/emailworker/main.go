// Command emailworker is an e-mail worker that must survive deploys: a
// queue consumer whose jobs take a long time, deployed on Kubernetes. On
// SIGTERM it stops receiving, gives back the messages it holds but has not
// started, lets the jobs in flight finish (their leases keep being
// extended), and exits 0 without losing or repeating a message. A health
// server reports not ready from the first signal on.
//
// The queue is an SQLite file on this machine, or an Amazon SQS queue when
// -queue is an SQS URL (credentials and region from the AWS environment):
//
//	go run ./emailworker -enqueue 20 -job 3s     # then press Ctrl-C
//	go run ./emailworker                          # handles what is left
//	go run ./emailworker -queue sqs://sqs.eu-west-1.amazonaws.com/123456789012/emails
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/crewgo/crew"
	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/sqlite"
	"github.com/crewgo/crew/queue/sqs"
)

func main() {
	where := flag.String("queue", "emails.db", "SQLite file holding the queue, or an SQS queue URL (sqs://HOST/ACCOUNT/QUEUE)")
	enqueue := flag.Int("enqueue", 0, "publish this many demo e-mails first")
	job := flag.Duration("job", 2*time.Second, "how long sending one e-mail takes")
	health := flag.String("health", "127.0.0.1:8081", "address for /readyz (empty: none)")
	flag.Parse()

	q, closeQueue, err := openQueue(context.Background(), *where)
	if err != nil {
		log.Fatal(err)
	}
	for i := range *enqueue {
		if _, err := q.Publish(context.Background(), fmt.Appendf(nil, "user%d@example.com", i)); err != nil {
			log.Fatal(err)
		}
	}
	send := func(ctx context.Context, to string) error {
		select { // stands for a slow SMTP conversation
		case <-time.After(*job):
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	crew.Main(newGroup(q, send, *health, slog.Default()), crew.ExitFunc(func(code int) {
		// On SQS, Close releases what a long poll cut short by the stop
		// still receives, instead of leaving it leased.
		if err := closeQueue(); err != nil {
			log.Print(err)
		}
		os.Exit(code)
	}))
}

// emailQueue is what the worker needs of a queue: to receive, and to
// publish the demo e-mails.
type emailQueue interface {
	queue.Source
	queue.Publisher
}

// openQueue opens an SQS queue for an sqs:// or sqs+http:// URL, else the
// queue "emails" of an SQLite file.
func openQueue(ctx context.Context, where string) (emailQueue, func() error, error) {
	if strings.HasPrefix(where, "sqs://") || strings.HasPrefix(where, "sqs+http://") {
		q, err := sqs.Open(ctx, where)
		if err != nil {
			return nil, nil, err
		}
		return q, q.Close, nil
	}
	db, err := sqlite.Open(where)
	if err != nil {
		return nil, nil, err
	}
	return db.Queue("emails"), db.Close, nil
}

// newGroup is the whole service: the consumer and a health server.
func newGroup(q queue.Source, send func(ctx context.Context, to string) error, health string, log *slog.Logger) *crew.Group {
	g := &crew.Group{StopTimeout: time.Hour, Logger: log}
	c := &queue.Consumer{
		Source:       q,
		Concurrency:  4,
		Lease:        30 * time.Second, // extended while a job runs, however long
		DrainTimeout: 55 * time.Minute, // jobs may take close to an hour
		Logger:       log,
		Handler: func(ctx context.Context, m *queue.Message) error {
			// ctx is not cancelled by SIGTERM: only at the drain deadline.
			if err := send(ctx, string(m.Body)); err != nil {
				return err // retried with backoff, dead-lettered after 5 deliveries
			}
			log.Info("e-mail sent", "to", string(m.Body), "attempt", m.Attempt)
			return nil
		},
	}
	if health != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /readyz", g.ReadyHandler())
		g.Add("health", crew.HTTPServer(&http.Server{Addr: health, Handler: mux}), crew.WaitReady())
		g.Add("emails", c, crew.After("health")) // stops before the health server
	} else {
		g.Add("emails", c)
	}
	return g
}
