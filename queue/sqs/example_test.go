package sqs_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"sort"
	"sync"
	"time"

	"github.com/crewgo/crew"
	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/sqs"
	"github.com/crewgo/crew/queue/sqs/sqstest"
)

// A consumer on SQS handles every message once, then drains when its
// context ends. Here the queue is on a local emulator; in production the
// client comes from the AWS configuration.
func Example() {
	srv, err := sqstest.StartServer()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Stop()
	url, err := srv.Create(context.Background(), "emails", 0)
	if err != nil {
		log.Fatal(err)
	}
	q := sqs.New(srv.Client(), url, sqs.WaitTime(time.Second))
	defer q.Close()

	ctx, stop := context.WithCancel(context.Background())
	for _, to := range []string{"ada@example.com", "grace@example.com"} {
		if _, err := q.Publish(ctx, []byte(to)); err != nil {
			log.Fatal(err)
		}
	}
	var mu sync.Mutex
	var sent []string
	c := &queue.Consumer{
		Source:      q,
		Concurrency: 8,
		Lease:       time.Minute,
		Handler: func(ctx context.Context, m *queue.Message) error {
			mu.Lock()
			defer mu.Unlock()
			sent = append(sent, string(m.Body))
			if len(sent) == 2 {
				stop() // in a service: SIGTERM
			}
			return nil
		},
	}
	if err := c.Run(ctx); err != nil {
		log.Fatal(err)
	}
	sort.Strings(sent)
	fmt.Println(sent)
	// Output: [ada@example.com grace@example.com]
}

// Open reads the queue's URL, and the AWS configuration from the
// environment.
func ExampleOpen() {
	ctx := context.Background()
	q, err := sqs.Open(ctx, "sqs://sqs.eu-west-1.amazonaws.com/123456789012/emails")
	if err != nil {
		log.Fatal(err)
	}
	defer q.Close()
	c := &queue.Consumer{Source: q, Handler: func(ctx context.Context, m *queue.Message) error {
		return nil // send the e-mail
	}}
	g := &crew.Group{}
	g.Add("emails", c)
	crew.Main(g) // SIGTERM drains the consumer
}

// A handler that gives up with crew.ErrPermanent sends the message to the
// dead-letter queue, with the reason; Redrive sends it back once the
// problem is fixed.
func ExampleQueue_Dead() {
	srv, err := sqstest.StartServer()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Stop()
	ctx := context.Background()
	url, err := srv.Create(ctx, "invoices", 1000)
	if err != nil {
		log.Fatal(err)
	}
	q := sqs.New(srv.Client(), url, sqs.WaitTime(time.Second))
	defer q.Close()
	if _, err := q.Publish(ctx, []byte("not an invoice")); err != nil {
		log.Fatal(err)
	}
	msgs, err := q.Receive(ctx, 1, time.Minute)
	if err != nil {
		log.Fatal(err)
	}
	reason := fmt.Errorf("cannot parse: %w", crew.ErrPermanent)
	if err := q.DeadLetter(ctx, msgs[0], reason); err != nil {
		log.Fatal(err)
	}

	dead, err := q.Dead(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %s\n", dead[0].Message.Body, dead[0].Reason)
	n, err := q.Redrive(ctx)
	fmt.Println("redriven:", n, err)
	again, err := q.Receive(ctx, 1, time.Minute)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("received again:", string(again[0].Body))
	// Output:
	// not an invoice: cannot parse: crew: permanent error
	// redriven: 1 <nil>
	// received again: not an invoice
}

// On a FIFO queue, messages of one group are handled one at a time, in the
// order they were published.
func ExampleMessageGroup() {
	srv, err := sqstest.StartServer()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Stop()
	ctx := context.Background()
	url, err := srv.Create(ctx, "orders.fifo", 0)
	if err != nil {
		log.Fatal(err)
	}
	q := sqs.New(srv.Client(), url, sqs.WaitTime(time.Second))
	defer q.Close()
	for i, step := range []string{"created", "paid"} {
		_, err := q.Publish(ctx, []byte("order 42 "+step),
			sqs.MessageGroup("order-42"), sqs.DeduplicationID(fmt.Sprint("order-42-", i)))
		if err != nil {
			log.Fatal(err)
		}
	}
	msgs, err := q.Receive(ctx, 10, time.Minute)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(msgs), string(msgs[0].Body))
	// Output: 1 order 42 created
}

// PublishBatch sends many messages in few requests: ten a SendMessageBatch.
func ExampleQueue_PublishBatch() {
	srv, err := sqstest.StartServer()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Stop()
	ctx := context.Background()
	url, err := srv.Create(ctx, "thumbnails", 0)
	if err != nil {
		log.Fatal(err)
	}
	q := sqs.New(srv.Client(), url)
	defer q.Close()
	var bodies [][]byte
	for i := range 25 {
		bodies = append(bodies, fmt.Appendf(nil, "photo-%d.jpg", i))
	}
	ids, err := q.PublishBatch(ctx, bodies, queue.Attribute("size", "small"))
	fmt.Println(len(ids), err)
	// Output: 25 <nil>
}

// A queue without a RedrivePolicy can still dead-letter, to a queue named
// with DeadLetterQueue; Purge empties it.
func ExampleDeadLetterQueue() {
	srv, err := sqstest.StartServer()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Stop()
	ctx := context.Background()
	url, err := srv.Create(ctx, "reports", 0) // also creates reports-dlq
	if err != nil {
		log.Fatal(err)
	}
	q := sqs.New(srv.Client(), url, sqs.DeadLetterQueue(srv.Endpoint+"/"+sqstest.Account+"/reports-dlq"))
	defer q.Close()
	if _, err := q.Publish(ctx, []byte("report 7")); err != nil {
		log.Fatal(err)
	}
	msgs, err := q.Receive(ctx, 1, time.Minute)
	if err != nil {
		log.Fatal(err)
	}
	if err := q.DeadLetter(ctx, msgs[0], errors.New("template missing")); err != nil {
		log.Fatal(err)
	}
	n, err := q.Purge(ctx)
	fmt.Println("purged:", n, err)
	// Output: purged: 1 <nil>
}

// Stats reads SQS's approximate counts of the queue and of its dead-letter
// queue, as crew stats shows them. WaitTime shortens the long polls of a
// Queue that should notice its context's end, or an empty queue, sooner
// than SQS's 20 seconds.
func ExampleQueue_Stats() {
	srv, err := sqstest.StartServer()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Stop()
	ctx := context.Background()
	url, err := srv.Create(ctx, "uploads", 1000)
	if err != nil {
		log.Fatal(err)
	}
	q := sqs.New(srv.Client(), url, sqs.WaitTime(time.Second))
	defer q.Close()
	for _, name := range []string{"a.png", "b.png", "c.png"} {
		if _, err := q.Publish(ctx, []byte(name)); err != nil {
			log.Fatal(err)
		}
	}
	msgs, err := q.Receive(ctx, 1, time.Minute)
	if err != nil {
		log.Fatal(err)
	}
	if err := q.DeadLetter(ctx, msgs[0], errors.New("not an image")); err != nil {
		log.Fatal(err)
	}
	s, err := q.Stats(ctx)
	fmt.Printf("%+v %v\n", s, err)
	// Output: {Ready:2 Leased:0 Delayed:0 Dead:1} <nil>
}
