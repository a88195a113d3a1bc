package queue_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/memqueue"
)

// results collects what OnResult reports, by message ID.
type results struct {
	mu  sync.Mutex
	got map[string]queue.Outcome
	all chan struct{} // closed once want results arrived
	n   int
}

func newResults(want int) *results {
	return &results{got: map[string]queue.Outcome{}, all: make(chan struct{}), n: want}
}

func (r *results) add(res queue.Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got[res.Message.ID] = res.Outcome
	if len(r.got) == r.n {
		close(r.all)
	}
}

func (r *results) outcome(id string) queue.Outcome {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[id]
}

// staleOnAck makes the receipt of the message with ID victim stale (it
// gives the message back) just before acknowledging a batch that holds it,
// as when its lease passed on while its ack waited; then ack's own Ack
// decides what is reported. It counts the batches that held victim.
type staleOnAck struct {
	queue.Source
	victim string
	ack    func(ctx context.Context, msgs ...*queue.Message) error
}

func (s *staleOnAck) Ack(ctx context.Context, msgs ...*queue.Message) error {
	for _, m := range msgs {
		if m.ID == s.victim {
			if err := s.Source.Nack(ctx, m, time.Hour); err != nil {
				return err
			}
		}
	}
	return s.ack(ctx, msgs...)
}

func TestAckReportsOnlyTheMessagesWhoseLeaseWasLost(t *testing.T) {
	for _, tc := range []struct {
		name  string
		named bool // the Source names the lost message
	}{
		{"named", true},
		{"unnamed", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := memqueue.New()
			ids := publishN(t, q, 8)
			src := &staleOnAck{Source: q, victim: ids[3], ack: q.Ack}
			if !tc.named {
				// A Source that says only that some lease was lost.
				src.ack = func(ctx context.Context, msgs ...*queue.Message) error {
					if err := q.Ack(ctx, msgs...); err != nil {
						return fmt.Errorf("some lease was lost: %w", queue.ErrLeaseLost)
					}
					return nil
				}
			}
			res := newResults(len(ids))
			c := &queue.Consumer{
				Source: src, Concurrency: 8, AckBatch: 8, AckDelay: time.Minute, Logger: quiet,
				OnResult: res.add,
				Handler:  func(context.Context, *queue.Message) error { return nil },
			}
			stop := start(c)
			<-res.all
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			for _, id := range ids {
				want := queue.Succeeded
				if id == src.victim || !tc.named {
					want = queue.LeaseLost
				}
				if got := res.outcome(id); got != want {
					t.Errorf("message %s: %v, want %v", id, got, want)
				}
			}
			if s := c.Stats(); tc.named && (s.Succeeded != 7 || s.LeaseLost != 1) {
				t.Errorf("Stats %+v, want 7 succeeded and 1 lease lost", s)
			}
		})
	}
}

// blockingAck holds the first Ack call until release is closed, and
// reports on second when another Ack call begins meanwhile.
type blockingAck struct {
	queue.Source
	mu      sync.Mutex
	calls   int
	first   chan struct{} // closed when the first call began
	second  chan struct{} // closed when the second call began
	release chan struct{}
}

func (b *blockingAck) Ack(ctx context.Context, msgs ...*queue.Message) error {
	b.mu.Lock()
	b.calls++
	call := b.calls
	b.mu.Unlock()
	switch call {
	case 1:
		close(b.first)
		<-b.release
	case 2:
		close(b.second)
	}
	return b.Source.Ack(ctx, msgs...)
}

func TestAnAckInFlightDoesNotHoldUpTheNext(t *testing.T) {
	q := memqueue.New()
	ids := publishN(t, q, 2)
	src := &blockingAck{Source: q, first: make(chan struct{}), second: make(chan struct{}), release: make(chan struct{})}
	res := newResults(2)
	c := &queue.Consumer{
		Source: src, Concurrency: 1, AckBatch: 1, Logger: quiet, OnResult: res.add,
		Handler: func(context.Context, *queue.Message) error { return nil },
	}
	stop := start(c)
	<-src.first
	select {
	case <-src.second:
	case <-time.After(10 * time.Second):
		close(src.release)
		_ = stop()
		t.Fatal("the second message's ack waited for the first's to commit")
	}
	// The first ack has not committed: its success is not reported yet.
	if got := res.outcome(ids[0]); got != 0 {
		t.Errorf("message %s reported %v while its ack was in flight", ids[0], got)
	}
	close(src.release)
	<-res.all
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if got := res.outcome(id); got != queue.Succeeded {
			t.Errorf("message %s: %v, want succeeded", id, got)
		}
	}
	if got := q.Counts(); got != (memqueue.Counts{}) {
		t.Errorf("queue %+v after both acks, want it empty", got)
	}
}
