package queue_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/memqueue"
)

// A batch Ack with one stale receipt deletes the other messages and names
// the stale one in a *queue.LeaseLostError.
func ExampleLeaseLostError() {
	ctx := context.Background()
	q := memqueue.New()
	for _, body := range []string{"a", "b", "c"} {
		_, _ = q.Publish(ctx, []byte(body))
	}
	msgs, _ := q.Receive(ctx, 3, queue.DefaultLease)
	// Giving b back makes this copy's receipt stale.
	_ = q.Nack(ctx, msgs[1], 0)

	err := q.Ack(ctx, msgs...)
	var lost *queue.LeaseLostError
	if errors.As(err, &lost) {
		fmt.Println("lease lost:", string(msgs[1].Body), lost.ID == msgs[1].ID, errors.Is(err, queue.ErrLeaseLost))
	}
	fmt.Printf("%+v\n", q.Counts())
	// Output:
	// lease lost: b true true
	// {Ready:1 Leased:0 Delayed:0 Dead:0}
}
