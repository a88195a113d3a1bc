package memqueue_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/memqueue"
)

func Example() {
	ctx := context.Background()
	q := memqueue.New()
	_, _ = q.Publish(ctx, []byte("resize image 7"), queue.Attribute("tenant", "acme"))

	msgs, _ := q.Receive(ctx, 10, 30*time.Second)
	m := msgs[0]
	fmt.Println(string(m.Body), m.Attributes["tenant"], "attempt", m.Attempt)
	_ = q.Ack(ctx, m)
	fmt.Printf("%+v\n", q.Counts())
	// Output:
	// resize image 7 acme attempt 1
	// {Ready:0 Leased:0 Delayed:0 Dead:0}
}

func ExampleQueue_Redrive() {
	ctx := context.Background()
	q := memqueue.New()
	_, _ = q.Publish(ctx, []byte("poison"))
	msgs, _ := q.Receive(ctx, 1, time.Minute)
	_ = q.DeadLetter(ctx, msgs[0], errors.New("cannot parse"))
	fmt.Println(q.Dead()[0].Reason)

	fmt.Println("redriven:", q.Redrive())
	fmt.Printf("%+v\n", q.Counts())
	// Output:
	// cannot parse
	// redriven: 1
	// {Ready:1 Leased:0 Delayed:0 Dead:0}
}
