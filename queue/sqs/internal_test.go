package sqs

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/sqs/sqstest"
)

func newTestQueue(t *testing.T) *Queue {
	t.Helper()
	srv := sqstest.Start(t)
	q := New(srv.Client(), srv.CreateQueue(t, "internal", 1000), WaitTime(time.Second))
	t.Cleanup(func() { _ = q.Close() })
	return q
}

func receiveN(t *testing.T, q *Queue, n int) []*queue.Message {
	t.Helper()
	var out []*queue.Message
	for len(out) < n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		msgs, err := q.Receive(ctx, n-len(out), time.Minute)
		cancel()
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		out = append(out, msgs...)
	}
	return out
}

// SQS reports a batch delete's failures per entry, with HTTP 200 and no
// error: each must be looked at. A receipt that SQS refuses is
// ErrLeaseLost for that message only.
func TestAckReportsEachEntryThatSQSRefused(t *testing.T) {
	q := newTestQueue(t)
	ctx := context.Background()
	for range 3 {
		if _, err := q.Publish(ctx, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	msgs := receiveN(t, q, 3)
	msgs[1].Receipt.(*receipt).handle = "not-a-receipt"
	err := q.Ack(ctx, msgs...)
	if !errors.Is(err, queue.ErrLeaseLost) || !strings.Contains(err.Error(), msgs[1].ID) {
		t.Fatalf("Ack = %v, want ErrLeaseLost naming %s", err, msgs[1].ID)
	}
	for _, i := range []int{0, 2} {
		if strings.Contains(err.Error(), msgs[i].ID) {
			t.Errorf("Ack's error names %s, which was deleted", msgs[i].ID)
		}
	}
	// The other two were deleted: nothing is received (the refused one
	// is still leased).
	rctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	if got, _ := q.Receive(rctx, 10, time.Minute); len(got) != 0 {
		t.Errorf("received %d messages after the batch ack, want none", len(got))
	}
}

// SQS keeps a message leased at most 12 hours after it was received: an
// extension stops at the limit, and past it the lease is lost, with a
// clear error and without a request.
func TestExtendStopsAtSQSVisibilityLimit(t *testing.T) {
	q := newTestQueue(t)
	ctx := context.Background()
	if _, err := q.Publish(ctx, []byte("a long job")); err != nil {
		t.Fatal(err)
	}
	m := receiveN(t, q, 1)[0]
	r := m.Receipt.(*receipt)
	r.received = time.Now().Add(-MaxVisibility + 30*time.Second)
	if err := q.Extend(ctx, m, time.Hour); err != nil {
		t.Fatalf("Extend near the limit: %v", err)
	}
	if left := time.Until(r.deadline); left > 31*time.Second {
		t.Errorf("Extend near the limit leased for %v more, past the 12 hours", left)
	}
	r.received = time.Now().Add(-MaxVisibility)
	q.client = nil // no request may be made
	err := q.Extend(ctx, m, time.Hour)
	if !errors.Is(err, queue.ErrLeaseLost) || !errors.Is(err, ErrVisibilityLimit) {
		t.Fatalf("Extend past the limit = %v, want ErrLeaseLost and ErrVisibilityLimit", err)
	}
	if err := q.Ack(ctx, m); !errors.Is(err, queue.ErrLeaseLost) {
		t.Errorf("Ack after the limit = %v, want ErrLeaseLost", err)
	}
}

func TestVisibilityIsWholeSecondsWithinSQSLimits(t *testing.T) {
	for _, tc := range []struct{ lease, want time.Duration }{
		{0, time.Second},
		{200 * time.Millisecond, time.Second},
		{time.Second, time.Second},
		{1001 * time.Millisecond, 2 * time.Second},
		{30 * time.Second, 30 * time.Second},
		{13 * time.Hour, MaxVisibility},
	} {
		if got := visibility(tc.lease); got != tc.want {
			t.Errorf("visibility(%v) = %v, want %v", tc.lease, got, tc.want)
		}
	}
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct{ raw, queueURL, endpoint, region string }{
		{"sqs://sqs.eu-west-1.amazonaws.com/123456789012/emails", "https://sqs.eu-west-1.amazonaws.com/123456789012/emails", "https://sqs.eu-west-1.amazonaws.com", "eu-west-1"},
		{"sqs+http://127.0.0.1:9324/000000000000/jobs?region=us-east-1", "http://127.0.0.1:9324/000000000000/jobs", "http://127.0.0.1:9324", ""},
		{"sqs://eu-west-2.queue.amazonaws.com/1/q.fifo", "https://eu-west-2.queue.amazonaws.com/1/q.fifo", "https://eu-west-2.queue.amazonaws.com", "eu-west-2"},
	} {
		queueURL, endpoint, params, err := parseURL(tc.raw)
		if err != nil {
			t.Errorf("parseURL(%q): %v", tc.raw, err)
			continue
		}
		if queueURL != tc.queueURL || endpoint != tc.endpoint {
			t.Errorf("parseURL(%q) = %q, %q; want %q, %q", tc.raw, queueURL, endpoint, tc.queueURL, tc.endpoint)
		}
		if got := regionOfHost(endpoint); got != tc.region {
			t.Errorf("regionOfHost(%q) = %q, want %q", endpoint, got, tc.region)
		}
		if strings.Contains(tc.raw, "region=") && params["region"] != "us-east-1" {
			t.Errorf("parseURL(%q): params %v", tc.raw, params)
		}
	}
	for _, raw := range []string{
		"http://127.0.0.1/0/q", "sqs://host/q", "sqs://host/0/q/extra", "sqs:///0/q",
		"sqs://host/0/q?queue=x", "sqs://host/0/q?region=a&region=b", "sqs://user@host/0/q",
		"sqs://host/0/q?region=a#b", "sqs://host/0/q?region=%zz", "sqs://host/0/q?region=a;dlq=b",
	} {
		if _, _, _, err := parseURL(raw); err == nil {
			t.Errorf("parseURL(%q) succeeded, want an error", raw)
		}
	}
}
