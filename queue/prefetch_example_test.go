package queue_test

import (
	"context"
	"fmt"
	"time"

	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/memqueue"
)

// remoteQueue stands for a Source whose every Receive is a billed round
// trip: it lets a consumer of quick handlers prefetch more than the default.
type remoteQueue struct{ *memqueue.Queue }

func (remoteQueue) PrefetchLimit(concurrency int) int { return 9 * concurrency }

// A Source that implements PrefetchLimiter raises the bound of the adaptive
// prefetch of every Consumer whose Prefetch is zero. The prefetch still
// grows only while handlers finish during Receive calls.
func ExamplePrefetchLimiter() {
	q := remoteQueue{memqueue.New()}
	ctx := context.Background()
	for i := range 100 {
		_, _ = q.Publish(ctx, fmt.Appendf(nil, "job %d", i))
	}
	var src queue.Source = q
	limit, ok := src.(queue.PrefetchLimiter)
	fmt.Println(ok, limit.PrefetchLimit(8))

	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	done := make(chan struct{})
	handled := 0
	c := &queue.Consumer{
		Source:      src,
		Concurrency: 1, // one handler at a time, so the counter needs no lock
		Handler: func(ctx context.Context, m *queue.Message) error {
			if handled++; handled == 100 {
				close(done)
			}
			return nil
		},
	}
	go func() { <-done; cancel() }()
	_ = c.Run(ctx)
	fmt.Println("handled", handled)
	// Output:
	// true 72
	// handled 100
}
