package queue_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/memqueue"
)

// A consumer that calls an API allowing 20 requests a second starts at most
// 20 handlers a second, however many slots are free. Messages wait in the
// queue, unleased, until their handler may start.
func ExampleConsumer_rateLimit() {
	q := memqueue.New()
	for i := range 5 {
		_, _ = q.Publish(context.Background(), fmt.Appendf(nil, "call %d", i))
	}
	ctx, stop := context.WithCancel(context.Background())
	begin := time.Now()
	var handled int
	c := &queue.Consumer{
		Source:      q,
		Concurrency: 4,
		RateLimit:   rate.NewLimiter(20, 1), // 20 a second, one at a time: every 50ms
		Logger:      slog.New(slog.DiscardHandler),
		Handler: func(ctx context.Context, m *queue.Message) error {
			if handled++; handled == 5 {
				stop()
			}
			return nil
		},
	}
	_ = c.Run(ctx)
	fmt.Println("5 calls took at least 200ms:", time.Since(begin) >= 200*time.Millisecond)
	// Output:
	// 5 calls took at least 200ms: true
}

// A consumer shared by tenants runs at most one handler at once per tenant,
// so that one tenant's backlog cannot take every slot: the other slots go
// on serving the other tenants.
func ExampleConsumer_perKey() {
	q := memqueue.New()
	for _, tenant := range []string{"acme", "acme", "acme", "globex", "globex", "initech"} {
		_, _ = q.Publish(context.Background(), []byte(tenant), queue.Attribute("tenant", tenant))
	}
	ctx, stop := context.WithCancel(context.Background())
	var mu sync.Mutex
	running, most := map[string]int{}, map[string]int{}
	handled := 0
	c := &queue.Consumer{
		Source:      q,
		Concurrency: 4,
		Key:         "tenant",
		PerKey:      1,
		Logger:      slog.New(slog.DiscardHandler),
		Handler: func(ctx context.Context, m *queue.Message) error {
			tenant := m.Attributes["tenant"]
			mu.Lock()
			running[tenant]++
			most[tenant] = max(most[tenant], running[tenant])
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
			mu.Lock()
			defer mu.Unlock()
			running[tenant]--
			if handled++; handled == 6 {
				stop()
			}
			return nil
		},
	}
	_ = c.Run(ctx)
	fmt.Println("most at once:", most)
	// Output:
	// most at once: map[acme:1 globex:1 initech:1]
}
