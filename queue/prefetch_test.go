package queue_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/memqueue"
)

// slowSource is a Source whose Receive takes a round trip, and which
// records how many messages each Receive asked for.
type slowSource struct {
	queue.Source
	roundTrip time.Duration
	mu        sync.Mutex
	asked     []int
}

func (s *slowSource) Receive(ctx context.Context, max int, lease time.Duration) ([]*queue.Message, error) {
	s.mu.Lock()
	s.asked = append(s.asked, max)
	s.mu.Unlock()
	time.Sleep(s.roundTrip)
	return s.Source.Receive(ctx, max, lease)
}

// consumeAll runs a consumer of quick handlers with the given Prefetch on
// n messages, behind a Receive of 5ms, and returns what each Receive asked
// for.
func consumeAll(t *testing.T, prefetch, n int) []int {
	q := memqueue.New()
	publishN(t, q, n)
	src := &slowSource{Source: q, roundTrip: 5 * time.Millisecond}
	c := &queue.Consumer{
		Source: src, Concurrency: 4, Prefetch: prefetch, Logger: quiet,
		Handler: func(context.Context, *queue.Message) error { return nil },
	}
	stop := start(c)
	for c.Stats().Succeeded < int64(n) {
		time.Sleep(time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	return slices.Clone(src.asked)
}

// With Prefetch zero, handlers that finish while a Receive is under way
// make the consumer prefetch, up to twice Concurrency (at most
// DefaultPrefetch), so that its slots do not wait a round trip each.
func TestDefaultPrefetchGrowsWhileHandlersOutpaceReceive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		asked := consumeAll(t, 0, 200)
		if asked[0] != 4 {
			t.Errorf("the first Receive asked for %d, want 4: nothing is known of the handlers yet", asked[0])
		}
		if m := slices.Max(asked); m <= 4 || m > 4+8 {
			t.Errorf("asked for up to %d messages with 4 slots, want more than 4 and at most 12", m)
		}
	})
}

// A negative Prefetch means none, whatever the handlers' pace.
func TestNegativePrefetchNeverPrefetches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		if m := slices.Max(consumeAll(t, -1, 100)); m > 4 {
			t.Errorf("asked for up to %d messages with 4 slots and Prefetch -1", m)
		}
	})
}
