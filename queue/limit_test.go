package queue_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/time/rate"

	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/memqueue"
)

func TestRateLimitHoldsOverSeconds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := memqueue.New()
		publishN(t, q, 2000)
		const perSecond, burst = 100, 10
		var mu sync.Mutex
		var starts []time.Duration
		begin := time.Now()
		c := &queue.Consumer{
			// The Source interface alone: nothing of memqueue's own.
			Source: &source{Source: q}, Concurrency: 8, Logger: quiet,
			RateLimit: rate.NewLimiter(perSecond, burst),
			Handler: func(ctx context.Context, m *queue.Message) error {
				mu.Lock()
				starts = append(starts, time.Since(begin))
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
				return nil
			},
		}
		stop := start(c)
		time.Sleep(5 * time.Second)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		// Over 5 seconds, the burst plus 100 a second, within 10%.
		want := float64(burst + 5*perSecond)
		if n := float64(len(starts)); n > want || n < 0.9*want {
			t.Errorf("%d handlers started in 5s, want %v (-10%%)", len(starts), want)
		}
		// And in every second past the first, never more than the rate.
		for s := time.Second; s < 5*time.Second; s += time.Second {
			n := 0
			for _, at := range starts {
				if at >= s && at < s+time.Second {
					n++
				}
			}
			if n > perSecond || n < 0.9*perSecond {
				t.Errorf("%d starts in second %v, want %d (-10%%)", n, s, perSecond)
			}
		}
	})
}

func TestMessagesWaitingForTheRateLimitAreNotReceived(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := memqueue.New()
		publishN(t, q, 20)
		c := &queue.Consumer{
			Source: q, Concurrency: 10, Logger: quiet,
			RateLimit: rate.NewLimiter(1, 1),
			Handler:   func(ctx context.Context, m *queue.Message) error { return nil },
		}
		stop := start(c)
		time.Sleep(500 * time.Millisecond) // between tokens, after the last ack
		for range 5 {
			time.Sleep(time.Second)
			synctest.Wait()
			// Ten free slots, but one token a second: one lease a second.
			if got := q.Counts(); got.Leased > 0 {
				t.Errorf("%d messages leased while waiting for the limiter", got.Leased)
			}
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if st := c.Stats(); st.Received != 6 || st.Succeeded != 6 {
			t.Errorf("after 5.5s at 1/s with a burst of 1: %+v, want 6 received and handled", st)
		}
		if got := q.Counts(); got.Ready != 14 {
			t.Errorf("%+v, want the other 14 still ready", got)
		}
	})
}

func TestRateLimitSharedByTwoConsumersBoundsThemTogether(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := memqueue.New(), memqueue.New()
		publishN(t, a, 500)
		publishN(t, b, 500)
		lim := rate.NewLimiter(50, 1)
		var started atomic.Int64
		h := func(ctx context.Context, m *queue.Message) error { started.Add(1); return nil }
		stopA := start(&queue.Consumer{Source: a, Handler: h, Concurrency: 4, Logger: quiet, RateLimit: lim})
		stopB := start(&queue.Consumer{Source: b, Handler: h, Concurrency: 4, Logger: quiet, RateLimit: lim})
		time.Sleep(4 * time.Second)
		if err := stopA(); err != nil {
			t.Fatal(err)
		}
		if err := stopB(); err != nil {
			t.Fatal(err)
		}
		if n := started.Load(); n > 201 || n < 180 {
			t.Errorf("%d starts in 4s at 50/s shared, want about 200", n)
		}
	})
}

// waitFor polls cond every 100ms, under synctest's clock, for up to an hour.
func waitFor(cond func() bool) bool {
	for range 36000 {
		if cond() {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// keyProbe counts the handlers running per key and records the most it
// ever saw at once.
type keyProbe struct {
	mu      sync.Mutex
	running map[string]int
	peak    map[string]int
	done    map[string]int
}

func newKeyProbe() *keyProbe {
	return &keyProbe{running: map[string]int{}, peak: map[string]int{}, done: map[string]int{}}
}

func (p *keyProbe) enter(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.running[key]++
	p.peak[key] = max(p.peak[key], p.running[key])
}

func (p *keyProbe) leave(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.running[key]--
	p.done[key]++
}

// barrier lets handlers through in groups of size; one that waits 5ms
// goes through alone, as the last ones must when the queue runs dry.
type barrier struct {
	mu   sync.Mutex
	size int
	n    int
	open chan struct{}
}

func (b *barrier) wait() {
	b.mu.Lock()
	open := b.open
	if b.n++; b.n == b.size {
		close(open)
		b.n, b.open = 0, make(chan struct{})
	}
	b.mu.Unlock()
	select {
	case <-open:
	case <-time.After(5 * time.Millisecond):
	}
}

func publishKeyed(t *testing.T, q *memqueue.Queue, key string, n int) {
	t.Helper()
	for i := range n {
		if _, err := q.Publish(context.Background(), fmt.Appendf(nil, "%s-%d", key, i), queue.Attribute("tenant", key)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPerKeyLimitIsNeverExceededUnderARacingLoad(t *testing.T) {
	q := memqueue.New()
	const keys, perKey, each = 24, 2, 25
	for i := range keys {
		publishKeyed(t, q, fmt.Sprint("k", i), each)
	}
	// A barrier keeps handlers inside until several have arrived, so that
	// many run at once and a key's handlers race to overlap.
	probe := newKeyProbe()
	b := &barrier{size: 8, open: make(chan struct{})}
	c := &queue.Consumer{
		Source: &source{Source: q}, Concurrency: 16, Logger: quiet,
		Key: "tenant", PerKey: perKey,
		Handler: func(ctx context.Context, m *queue.Message) error {
			key := m.Attributes["tenant"]
			probe.enter(key)
			defer probe.leave(key)
			b.wait()
			return nil
		},
	}
	stop := start(c)
	deadline := time.Now().Add(time.Minute)
	for c.Stats().Succeeded < keys*each && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	probe.mu.Lock()
	defer probe.mu.Unlock()
	overlapped := 0
	for key, n := range probe.peak {
		if n > perKey {
			t.Errorf("key %s: %d handlers at once, want at most %d", key, n, perKey)
		}
		if n == perKey {
			overlapped++
		}
	}
	if overlapped == 0 {
		t.Error("no key ever had two handlers at once: the test did not race")
	}
	if st := c.Stats(); st.Succeeded != keys*each || st.DeadLettered != 0 {
		t.Errorf("Stats = %+v, want all %d handled", st, keys*each)
	}
	t.Logf("%d messages, %d keys: %d postponed", keys*each, keys, c.Stats().Postponed)
}

func TestABusyKeyNeitherBlocksOtherKeysNorHoldsLeases(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := memqueue.New()
		publishKeyed(t, q, "hot", 50) // first in the queue
		for i := range 10 {
			publishKeyed(t, q, fmt.Sprint("cold", i), 3)
		}
		probe := newKeyProbe()
		release := make(chan struct{})
		c := &queue.Consumer{
			Source: &source{Source: q}, Concurrency: 4, Logger: quiet,
			Key: "tenant", PerKey: 1,
			// Postponements must not count: every hot message is postponed
			// more often than this while the hot key is stuck.
			MaxAttempts: 2,
			Handler: func(ctx context.Context, m *queue.Message) error {
				key := m.Attributes["tenant"]
				probe.enter(key)
				defer probe.leave(key)
				if key == "hot" {
					<-release
				}
				time.Sleep(100 * time.Millisecond)
				return nil
			},
		}
		stop := start(c)
		// Every cold message is handled while the hot key is stuck.
		if !waitFor(func() bool { return c.Stats().Succeeded >= 30 }) {
			t.Fatalf("cold keys stuck behind the hot one: %+v", c.Stats())
		}
		synctest.Wait()
		// The hot key holds one running handler and at most one waiting.
		if got := q.Counts(); got.Leased > 2 {
			t.Errorf("%d messages leased while the hot key is stuck, want at most 2", got.Leased)
		}
		time.Sleep(time.Minute)
		if got := q.Counts(); got.Leased > 2 {
			t.Errorf("a minute later: %d messages leased, want at most 2", got.Leased)
		}
		close(release)
		released := time.Now()
		if !waitFor(func() bool { return c.Stats().Succeeded+c.Stats().DeadLettered >= 80 }) {
			t.Fatalf("not all handled an hour after: %+v", c.Stats())
		}
		// 50 handlers of 100ms one at a time take 5s; postponed messages
		// come back late, as the key was stuck when they left.
		took := time.Since(released)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		st := c.Stats()
		if st.DeadLettered != 0 || st.Postponed < 50 {
			t.Errorf("Stats = %+v, want every hot message postponed, none dead", st)
		}
		if probe.peak["hot"] != 1 {
			t.Errorf("hot key ran %d at once, want 1", probe.peak["hot"])
		}
		t.Logf("80 messages, 1 key stuck for a minute: %d postponed, %d received; its 50 messages of 100ms took %v once unstuck",
			st.Postponed, st.Received, took)
	})
}

func TestStopReleasesMessagesWaitingForTheirKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := memqueue.New()
		publishKeyed(t, q, "a", 3)
		release := make(chan struct{})
		c := &queue.Consumer{
			Source: q, Concurrency: 4, Logger: quiet, Key: "tenant",
			Handler: func(ctx context.Context, m *queue.Message) error {
				<-release
				return nil
			},
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		synctest.Wait()
		if got := q.Counts(); got.Leased != 2 || got.Ready != 0 || c.Stats().Postponed != 1 {
			t.Fatalf("%+v, %+v: want one running, one waiting and one postponed", got, c.Stats())
		}
		cancel()
		synctest.Wait()
		if got := q.Counts(); got.Leased != 1 {
			t.Errorf("after the stop: %+v, want the waiting message released", got)
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if st := c.Stats(); st.Succeeded != 1 || st.Released != 1 {
			t.Errorf("Stats = %+v, want 1 handled, 1 released", st)
		}
	})
}

func TestLimitsThatCannotWorkAreRejected(t *testing.T) {
	h := func(ctx context.Context, m *queue.Message) error { return nil }
	for name, c := range map[string]*queue.Consumer{
		"burst 0":         {RateLimit: rate.NewLimiter(10, 0)},
		"PerKey, no Key":  {PerKey: 2},
		"negative PerKey": {Key: "tenant", PerKey: -1},
	} {
		c.Source, c.Handler = memqueue.New(), h
		if err := c.Run(context.Background()); err == nil {
			t.Errorf("%s: Run = nil, want an error", name)
		}
	}
}

func TestARateLimitOfZeroPausesTheConsumerUntilSetLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := memqueue.New()
		publishN(t, q, 3)
		lim := rate.NewLimiter(0, 1)
		var receives atomic.Int64
		src := &source{Source: q, onReceive: func(int) { receives.Add(1) }}
		c := &queue.Consumer{
			Source: src, Logger: quiet, RateLimit: lim,
			Handler: func(ctx context.Context, m *queue.Message) error { return nil },
		}
		stop := start(c)
		time.Sleep(time.Minute)
		// The burst lets one through; then nothing, and no busy loop.
		if st := c.Stats(); st.Received != 1 || receives.Load() != 1 {
			t.Errorf("paused a minute: %+v, %d receives; want 1 message received once", st, receives.Load())
		}
		lim.SetLimit(rate.Inf)
		time.Sleep(2 * time.Second)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if st := c.Stats(); st.Succeeded != 3 {
			t.Errorf("after SetLimit(Inf): %+v, want all 3 handled", st)
		}
	})
}
