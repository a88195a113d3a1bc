package sqs_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/sqs"
)

// On a FIFO queue a receive holds at most one message of each group, the
// group's oldest, and gives the group's later ones back at once: they are
// received, one at a time, as the earlier ones are settled.
func TestFIFOReceiveHoldsOneMessagePerGroup(t *testing.T) {
	url, err := server.Create(t.Context(), "fifo-one-per-group.fifo", 1000)
	if err != nil {
		t.Fatal(err)
	}
	q := sqs.New(server.Client(), url, sqs.WaitTime(time.Second))
	t.Cleanup(func() { _ = q.Close() })
	ctx := context.Background()
	var ids []string
	for i, g := range []string{"a", "a", "b", "a"} {
		id, err := q.Publish(ctx, []byte(g+strconv.Itoa(i)), sqs.MessageGroup(g), sqs.DeduplicationID(strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	first := receiveWithin(t, q, 10)
	got := map[string]bool{}
	for _, m := range first {
		got[m.ID] = true
	}
	if len(first) != 2 || !got[ids[0]] || !got[ids[2]] {
		t.Fatalf("first receive got %v, want a0 and b2 only", bodies(first))
	}
	if err := q.Ack(ctx, first...); err != nil {
		t.Fatal(err)
	}
	// The rest of group a comes later, each message once.
	seen := map[string]int{}
	for len(seen) < 2 {
		msgs := receiveWithin(t, q, 10)
		if len(msgs) != 1 {
			t.Fatalf("received %v together, want one message of group a at a time", bodies(msgs))
		}
		seen[string(msgs[0].Body)]++
		if err := q.Ack(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
	}
	if seen["a1"] != 1 || seen["a3"] != 1 {
		t.Errorf("later messages of group a received %v, want a1 and a3 once each", seen)
	}
}

func receiveWithin(t *testing.T, q *sqs.Queue, n int) []*queue.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	msgs, err := q.Receive(ctx, n, time.Minute)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	return msgs
}

func bodies(msgs []*queue.Message) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, string(m.Body))
	}
	return out
}
