package queue_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/crewgo/crew"
	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/memqueue"
)

func Example() {
	q := memqueue.New()
	for _, name := range []string{"ada", "grace", "linus"} {
		_, _ = q.Publish(context.Background(), []byte(name))
	}

	ctx, stop := context.WithCancel(context.Background())
	c := &queue.Consumer{
		Source:      q,
		Concurrency: 1,
		Logger:      slog.New(slog.DiscardHandler),
		Handler: func(ctx context.Context, m *queue.Message) error {
			fmt.Println("hello,", string(m.Body))
			if m.ID == "3" {
				stop() // in a service, SIGTERM does this
			}
			return nil
		},
	}
	if err := c.Run(ctx); err != nil {
		fmt.Println(err)
	}
	fmt.Printf("%+v\n", q.Counts())
	// Output:
	// hello, ada
	// hello, grace
	// hello, linus
	// {Ready:0 Leased:0 Delayed:0 Dead:0}
}

// A consumer is a crew.Worker: run it in a Group with the rest of a
// service, and crew.Main drains it on SIGTERM.
func ExampleConsumer_group() {
	q := memqueue.New()
	_, _ = q.Publish(context.Background(), []byte("job"))
	done := make(chan struct{})
	g := &crew.Group{Logger: slog.New(slog.DiscardHandler)}
	g.Add("jobs", &queue.Consumer{
		Source: q,
		Logger: slog.New(slog.DiscardHandler),
		Handler: func(ctx context.Context, m *queue.Message) error {
			defer close(done)
			fmt.Println("handled", string(m.Body))
			return nil
		},
	})
	go func() {
		<-done
		g.Stop(nil)
	}()
	fmt.Println("Run:", g.Run(context.Background()))
	// Output:
	// handled job
	// Run: <nil>
}

func ExampleChain() {
	logged := func(next queue.Handler) queue.Handler {
		return func(ctx context.Context, m *queue.Message) error {
			fmt.Println("start", m.ID)
			err := next(ctx, m)
			fmt.Println("end", m.ID, err)
			return err
		}
	}
	h := queue.Chain(func(ctx context.Context, m *queue.Message) error {
		fmt.Println("handling", strings.ToUpper(string(m.Body)))
		return nil
	}, logged)
	_ = h(context.Background(), &queue.Message{ID: "42", Body: []byte("hi")})
	// Output:
	// start 42
	// handling HI
	// end 42 <nil>
}

func ExamplePriority() {
	q := memqueue.New()
	_, _ = q.Publish(context.Background(), []byte("routine"))
	_, _ = q.Publish(context.Background(), []byte("urgent"), queue.Priority(10))
	msgs, _ := q.Receive(context.Background(), 2, time.Minute)
	for _, m := range msgs {
		fmt.Println(string(m.Body))
	}
	// Output:
	// urgent
	// routine
}

// Delay publishes a message that becomes ready later, such as a reminder.
func ExampleDelay() {
	q := memqueue.New()
	_, _ = q.Publish(context.Background(), []byte("remind me"), queue.Delay(time.Hour))
	fmt.Printf("%+v\n", q.Counts())
	// Output: {Ready:0 Leased:0 Delayed:1 Dead:0}
}

// Stats counts what a consumer has done, for a status line or metrics.
func ExampleConsumer_Stats() {
	q := memqueue.New()
	for range 3 {
		_, _ = q.Publish(context.Background(), []byte("job"))
	}
	ctx, stop := context.WithCancel(context.Background())
	c := &queue.Consumer{Source: q, Concurrency: 1, Logger: slog.New(slog.DiscardHandler)}
	c.Handler = func(ctx context.Context, m *queue.Message) error {
		if c.Stats().Received == 3 && m.ID == "3" {
			defer stop()
		}
		return nil
	}
	_ = c.Run(ctx)
	st := c.Stats()
	fmt.Println("received", st.Received, "succeeded", st.Succeeded, "held", st.Held)
	// Output: received 3 succeeded 3 held 0
}
