package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/crewgo/crew"
	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/jetstream"
)

// exampleServer starts a NATS server with JetStream for an example, as
// `nats-server -js` would, and returns its URL and how to stop it.
func exampleServer() (url string, stop func()) {
	dir, err := os.MkdirTemp("", "crew-example")
	if err != nil {
		panic(err)
	}
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		panic(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		panic("the NATS server did not start")
	}
	return s.ClientURL(), func() {
		s.Shutdown()
		s.WaitForShutdown()
		os.RemoveAll(dir)
	}
}

// handleAll runs a consumer on q until it has handled n messages.
func handleAll(q queue.Source, n int, h queue.Handler) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{}, n)
	c := &queue.Consumer{
		Source:      q,
		Concurrency: 1,
		Handler: func(ctx context.Context, m *queue.Message) error {
			defer func() { done <- struct{}{} }()
			return h(ctx, m)
		},
		Logger: quietLogger(),
	}
	stopped := make(chan error)
	go func() { stopped <- c.Run(ctx) }()
	for range n {
		<-done
	}
	cancel()
	<-stopped
}

func ExampleNew() {
	url, stop := exampleServer()
	defer stop()
	nc, err := nats.Connect(url)
	if err != nil {
		panic(err)
	}
	defer nc.Close()
	js, err := natsjs.New(nc)
	if err != nil {
		panic(err)
	}

	q, err := jetstream.New(js, "emails") // stream CREW_emails, consumer crew_emails
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	for _, to := range []string{"ana@example.com", "bo@example.com"} {
		if _, err := q.Publish(ctx, []byte(to)); err != nil {
			panic(err)
		}
	}
	handleAll(q, 2, func(ctx context.Context, m *queue.Message) error {
		fmt.Printf("sending to %s (attempt %d)\n", m.Body, m.Attempt)
		return nil
	})
	// Output:
	// sending to ana@example.com (attempt 1)
	// sending to bo@example.com (attempt 1)
}

func ExampleOpen() {
	url, stop := exampleServer()
	defer stop()
	ctx := context.Background()

	q, err := jetstream.Open(ctx, url+"?queue=reports&ack_wait=1m")
	if err != nil {
		panic(err)
	}
	defer q.Close() // Open made the connection: Close closes it
	if _, err := q.Publish(ctx, []byte("monthly"), queue.Attribute("format", "pdf")); err != nil {
		panic(err)
	}
	handleAll(q, 1, func(ctx context.Context, m *queue.Message) error {
		fmt.Printf("%s report as %s\n", m.Body, m.Attributes["format"])
		return nil
	})
	// Output: monthly report as pdf
}

// A consumer dead-letters a message that fails with crew.ErrPermanent, or
// too often; an operator lists the dead letters and sends them back.
func ExampleQueue_Dead() {
	url, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	q, err := jetstream.Open(ctx, url+"?queue=imports")
	if err != nil {
		panic(err)
	}
	defer q.Close()
	if _, err := q.Publish(ctx, []byte("{bad json")); err != nil {
		panic(err)
	}
	handleAll(q, 1, func(ctx context.Context, m *queue.Message) error {
		return fmt.Errorf("parse: unexpected end of input: %w", crew.ErrPermanent)
	})

	dead, err := q.Dead(ctx)
	if err != nil {
		panic(err)
	}
	for _, d := range dead {
		fmt.Printf("%s after %d attempt: %s\n", d.Message.Body, d.Message.Attempt, d.Reason)
	}
	n, err := q.Redrive(ctx) // all of them, once the bug is fixed
	if err != nil {
		panic(err)
	}
	s, err := q.Stats(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Printf("redriven %d; dead %d\n", n, s.Dead)
	handleAll(q, 1, func(ctx context.Context, m *queue.Message) error {
		fmt.Printf("%s again, attempt %d\n", m.Body, m.Attempt)
		return nil
	})
	// Output:
	// {bad json after 1 attempt: parse: unexpected end of input: crew: permanent error
	// redriven 1; dead 0
	// {bad json again, attempt 1
}

// Purge deletes the dead letters that nobody will redrive.
func ExampleQueue_Purge() {
	url, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	q, err := jetstream.Open(ctx, url+"?queue=thumbnails")
	if err != nil {
		panic(err)
	}
	defer q.Close()
	if _, err := q.Publish(ctx, []byte("missing.png")); err != nil {
		panic(err)
	}
	handleAll(q, 1, func(ctx context.Context, m *queue.Message) error {
		return fmt.Errorf("%s: no such file: %w", m.Body, crew.ErrPermanent)
	})
	n, err := q.Purge(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("purged", n)
	// Output: purged 1
}

// A delay waits in a JetStream message schedule; a priority is refused.
func ExampleQueue_Publish() {
	url, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	q, err := jetstream.Open(ctx, url+"?queue=reminders")
	if err != nil {
		panic(err)
	}
	defer q.Close()
	if _, err := q.Publish(ctx, []byte("renew"), queue.Delay(24*time.Hour)); err != nil {
		panic(err)
	}
	_, err = q.Publish(ctx, []byte("urgent"), queue.Priority(9))
	fmt.Println(errors.Is(err, jetstream.ErrNoPriority))
	s, err := q.Stats(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Printf("ready %d, delayed %d\n", s.Ready, s.Delayed)
	// Output:
	// true
	// ready 0, delayed 1
}

// A stream that the team already runs can hold the queue: it must take the
// queue's subject and its dead-letter subject.
func ExampleStream() {
	url, stop := exampleServer()
	defer stop()
	nc, err := nats.Connect(url)
	if err != nil {
		panic(err)
	}
	defer nc.Close()
	js, err := natsjs.New(nc)
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, natsjs.StreamConfig{
		Name:      "ORDERS",
		Subjects:  []string{"orders.>"},
		Retention: natsjs.WorkQueuePolicy,
		Replicas:  1, // 3 in a cluster
	}); err != nil {
		panic(err)
	}
	q, err := jetstream.New(js, "invoices",
		jetstream.Stream("ORDERS"),
		jetstream.Subject("orders.invoice"), // dead letters: orders.invoice.dead
		jetstream.Consumer("invoicer"),
		jetstream.AckWait(2*time.Minute),
	)
	if err != nil {
		panic(err)
	}
	if _, err := js.Publish(ctx, "orders.invoice", []byte("order 42")); err != nil { // any NATS producer
		panic(err)
	}
	handleAll(q, 1, func(ctx context.Context, m *queue.Message) error {
		fmt.Printf("invoicing %s\n", m.Body)
		return nil
	})
	// Output: invoicing order 42
}

// Tools that only look at a queue open it with NoCreate, so that a
// mistyped name creates nothing.
func ExampleNoCreate() {
	url, stop := exampleServer()
	defer stop()
	_, err := jetstream.Open(context.Background(), url+"?queue=emials", jetstream.NoCreate())
	fmt.Println(errors.Is(err, crew.ErrPermanent))
	// Output: true
}

// Jobs that take minutes: a consumer whose AckWait equals the Consumer's
// Lease extends each lease with one InProgress, and receives without an
// extra request per message.
func ExampleAckWait() {
	url, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	q, err := jetstream.Open(ctx, url+"?queue=videos", jetstream.AckWait(5*time.Minute))
	if err != nil {
		panic(err)
	}
	defer q.Close()
	info, err := q.JetStream().Consumer(ctx, "CREW_videos", "crew_videos")
	if err != nil {
		panic(err)
	}
	fmt.Println(info.CachedInfo().Config.AckWait)
	c := &queue.Consumer{Source: q, Lease: 5 * time.Minute, Handler: func(ctx context.Context, m *queue.Message) error { return nil }}
	_ = c // c.Run(ctx) transcodes for as long as it takes, extending every 100s
	// Output: 5m0s
}
