package queue_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/crewgo/crew"
	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/memqueue"
)

// A handler tells how long a message has been waiting for its work to be
// done, retries and their backoff included, from FirstReceived: the time
// of its first delivery, the same on every retry. Here the handler gives
// up on a message that has waited too long, rather than do stale work.
func ExampleMessage_firstReceived() {
	q := memqueue.New()
	_, _ = q.Publish(context.Background(), []byte("send the welcome e-mail"))

	ctx, stop := context.WithCancel(context.Background())
	var first time.Time
	c := &queue.Consumer{
		Source:      q,
		Concurrency: 1,
		Retry:       func(attempt int) time.Duration { return 50 * time.Millisecond },
		Logger:      slog.New(slog.DiscardHandler),
		Handler: func(ctx context.Context, m *queue.Message) error {
			waited := time.Since(m.FirstReceived)
			if waited > time.Hour {
				// Too late to be welcome: a dead letter at once, no retry.
				return fmt.Errorf("waited %v: %w", waited, crew.ErrPermanent)
			}
			if m.Attempt == 1 {
				first = m.FirstReceived
				fmt.Println("attempt 1: the mail server is down")
				return errors.New("mail server down")
			}
			defer stop()
			fmt.Printf("attempt %d: first received at attempt 1: %v; waited out the backoff: %v\n",
				m.Attempt, m.FirstReceived.Equal(first), waited >= 50*time.Millisecond)
			return nil
		},
	}
	if err := c.Run(ctx); err != nil {
		fmt.Println(err)
	}
	// Output:
	// attempt 1: the mail server is down
	// attempt 2: first received at attempt 1: true; waited out the backoff: true
}
