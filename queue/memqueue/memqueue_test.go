package memqueue_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/crewgo/crew/queue"

	"github.com/crewgo/crew/queue/memqueue"
	"github.com/crewgo/crew/queue/queuetest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	queuetest.Suite{
		New: func(t *testing.T) queuetest.Queue { return memqueue.New() },
		Dead: func(t *testing.T, q queuetest.Queue) []string {
			var ids []string
			for _, m := range q.(*memqueue.Queue).DeadLetters() {
				ids = append(ids, m.ID)
			}
			return ids
		},
	}.Run(t)
}

func TestRedriveKeepsPriorityAndResetsAttempts(t *testing.T) {
	ctx := context.Background()
	q := memqueue.New()
	low, _ := q.Publish(ctx, []byte("low"))
	high, _ := q.Publish(ctx, []byte("high"), queue.Priority(9))
	msgs, _ := q.Receive(ctx, 2, time.Minute)
	for _, m := range msgs {
		if m.ID == high {
			_ = q.DeadLetter(ctx, m, errors.New("boom"))
		} else {
			_ = q.Nack(ctx, m, 0)
		}
	}
	if n := q.Redrive(high); n != 1 {
		t.Fatalf("Redrive moved %d", n)
	}
	msgs, _ = q.Receive(ctx, 2, time.Minute)
	if len(msgs) != 2 || msgs[0].ID != high || msgs[1].ID != low {
		t.Fatalf("received %v, want the redriven high-priority message first", msgs)
	}
	if msgs[0].Attempt != 1 {
		t.Errorf("redriven message's Attempt = %d, want 1", msgs[0].Attempt)
	}
}

func TestDeadLetterKeepsFirstReceivedAndRedriveStartsItOver(t *testing.T) {
	ctx := context.Background()
	q := memqueue.New()
	id, _ := q.Publish(ctx, []byte("x"))
	msgs, _ := q.Receive(ctx, 1, time.Minute)
	first := msgs[0].FirstReceived
	if err := q.DeadLetter(ctx, msgs[0], errors.New("boom")); err != nil {
		t.Fatal(err)
	}
	if dead := q.Dead(); len(dead) != 1 || !dead[0].Message.FirstReceived.Equal(first) {
		t.Fatalf("Dead = %+v, want message %s first received at %v", dead, id, first)
	}
	q.Redrive()
	before := time.Now()
	msgs, _ = q.Receive(ctx, 1, time.Minute)
	if got := msgs[0].FirstReceived; got.Before(before) {
		t.Errorf("the redriven message's FirstReceived = %v, want a new one, not before %v", got, before)
	}
}
