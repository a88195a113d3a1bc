package queue_test

import (
	"context"
	"slices"
	"strconv"
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
// for. Message i takes 1 to 2.4ms to handle, by i: handlers that all took
// as long would finish at one instant, often before the next Receive
// begins, and tell nothing of their pace.
func consumeAll(t *testing.T, prefetch, n int) []int {
	q := memqueue.New()
	publishN(t, q, n)
	src := &slowSource{Source: q, roundTrip: 5 * time.Millisecond}
	c := &queue.Consumer{
		Source: src, Concurrency: 4, Prefetch: prefetch, Logger: quiet,
		Handler: func(_ context.Context, m *queue.Message) error {
			i, _ := strconv.Atoi(string(m.Body))
			time.Sleep(time.Millisecond + time.Duration(i%11)*137*time.Microsecond)
			return nil
		},
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
// make the consumer prefetch, up to eight times Concurrency (at most
// DefaultPrefetch), so that its slots do not wait a round trip each.
func TestDefaultPrefetchGrowsWhileHandlersOutpaceReceive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		asked := consumeAll(t, 0, 200)
		if asked[0] != 4 {
			t.Errorf("the first Receive asked for %d, want 4: nothing is known of the handlers yet", asked[0])
		}
		if m := slices.Max(asked); m <= 4 || m > 4+32 {
			t.Errorf("asked for up to %d messages with 4 slots, want more than 4 and at most 36", m)
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

// gatedSource is a Source whose every Receive reports how many messages it
// asks for and then waits for the test's go-ahead.
type gatedSource struct {
	queue.Source
	asked   chan int
	proceed chan struct{}
}

func (s *gatedSource) Receive(ctx context.Context, max int, lease time.Duration) ([]*queue.Message, error) {
	s.asked <- max
	<-s.proceed
	return s.Source.Receive(ctx, max, lease)
}

// With Prefetch zero, a Receive during which half of the messages held
// finish makes the consumer prefetch, even when they filled only half its
// slots: quick handlers free their slots a few at a time, and the consumer
// receives as soon as half of them are free.
func TestDefaultPrefetchGrowsWhenHalfOfWhatIsHeldFinishesDuringAReceive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := memqueue.New()
		publishN(t, q, 10)
		src := &gatedSource{Source: q, asked: make(chan int, 32), proceed: make(chan struct{})}
		release := make(chan struct{}, 10) // one token lets one handler return
		c := &queue.Consumer{
			Source: src, Concurrency: 4, Logger: quiet,
			Handler: func(context.Context, *queue.Message) error { <-release; return nil },
		}
		stop := start(c)
		expect := func(want int, why string) {
			t.Helper()
			if got := <-src.asked; got != want {
				t.Errorf("Receive asked for %d, want %d: %s", got, want, why)
			}
		}
		expect(4, "four free slots, nothing known of the handlers")
		src.proceed <- struct{}{}
		release <- struct{}{}
		release <- struct{}{}
		expect(2, "two slots freed up")
		release <- struct{}{} // one of the two held finishes during the Receive
		synctest.Wait()
		if held := c.Stats().Held; held != 1 {
			t.Errorf("held %d during the Receive, want 1", held)
		}
		src.proceed <- struct{}{}
		expect(2, "one free slot and a prefetch of one")
		close(src.proceed)
		close(release)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	})
}
