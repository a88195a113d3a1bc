// Package queuetest is the conformance suite for queue.Source
// implementations. Every backend that crew ships runs it, and so should a
// backend of your own:
//
//	func TestConformance(t *testing.T) {
//		queuetest.Suite{
//			New:  func(t *testing.T) queuetest.Queue { return mybackend.New(t.TempDir()) },
//			Dead: func(t *testing.T, q queuetest.Queue) []string { return q.(*mybackend.Queue).DeadIDs() },
//		}.Run(t)
//	}
//
// The suite checks the semantics that queue.Consumer relies on: leases and
// their expiry, receipts that fence off stale holders, extension, delayed
// retries, dead letters, batch acknowledgement (naming each stale receipt
// with a *queue.LeaseLostError), ordering by priority then
// age, long polls that wake on a publish, that concurrent receivers
// never share a leased message, and that Message.FirstReceived is set on
// the first delivery and kept on every later one. Leases are real time:
// the suite takes a few seconds per backend.
//
// A backend that cannot do what a test checks (priorities, say, or a
// first-received time that survives a redelivery) skips that test by its
// name in New, with t.Skip and the reason.
//
// A durable backend also runs Crash: consumers in child processes stopped
// with SIGTERM and SIGKILL while they work, to show that a deploy handles
// nothing twice and a crash loses nothing.
package queuetest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/crewgo/crew/queue"
)

// Queue is what the suite tests: a Source that is also a Publisher.
type Queue interface {
	queue.Source
	queue.Publisher
}

// Suite configures a conformance run.
type Suite struct {
	// New returns a new, empty queue. It is called once per test; release
	// the queue with t.Cleanup.
	New func(t *testing.T) Queue
	// Dead returns the IDs of q's dead-lettered messages.
	Dead func(t *testing.T, q Queue) []string
	// Lease is the short lease used by tests that wait for one to expire
	// (default 200ms). Raise it for a backend whose clock is coarse.
	Lease time.Duration
}

// Run runs every conformance test as a subtest of t.
func (s Suite) Run(t *testing.T) {
	if s.New == nil || s.Dead == nil {
		t.Fatal("queuetest: Suite needs New and Dead")
	}
	if s.Lease <= 0 {
		s.Lease = 200 * time.Millisecond
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, s Suite)
	}{
		{"PublishReceiveAck", testPublishReceiveAck},
		{"LeasedMessageIsInvisible", testLeasedMessageIsInvisible},
		{"RedeliveryAfterLeaseExpiry", testRedeliveryAfterLeaseExpiry},
		{"ReceiptFencesStaleHolder", testReceiptFencesStaleHolder},
		{"ExtendKeepsMessageLeased", testExtendKeepsMessageLeased},
		{"NackDelaysRedelivery", testNackDelaysRedelivery},
		{"NackInvalidatesReceipt", testNackInvalidatesReceipt},
		{"DeadLetter", testDeadLetter},
		{"DeadLetterAfterMaxAttempts", testDeadLetterAfterMaxAttempts},
		{"BatchAck", testBatchAck},
		{"BatchAckNamesTheStaleReceipt", testBatchAckNamesTheStaleReceipt},
		{"PriorityThenAge", testPriorityThenAge},
		{"DelayedPublish", testDelayedPublish},
		{"ConcurrentReceiversNeverShare", testConcurrentReceiversNeverShare},
		{"LongPollWakesOnPublish", testLongPollWakesOnPublish},
		{"ReceiveHonoursContext", testReceiveHonoursContext},
		{"ConsumerHandlesEverything", testConsumerHandlesEverything},
		{"FirstReceivedOnFirstDelivery", testFirstReceivedOnFirstDelivery},
		{"FirstReceivedKeptOnRedelivery", testFirstReceivedKeptOnRedelivery},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, s) })
	}
}

// patience bounds every wait for something that should happen soon.
const patience = 10 * time.Second

func publish(t *testing.T, q Queue, body string, opts ...queue.PublishOption) string {
	t.Helper()
	id, err := q.Publish(context.Background(), []byte(body), opts...)
	if err != nil {
		t.Fatalf("Publish(%q): %v", body, err)
	}
	if id == "" {
		t.Fatalf("Publish(%q) returned an empty ID", body)
	}
	return id
}

// receive waits up to patience for at least one message.
func receive(t *testing.T, q Queue, max int, lease time.Duration) []*queue.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	msgs, err := q.Receive(ctx, max, lease)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	if len(msgs) == 0 || len(msgs) > max {
		t.Fatalf("Receive(max=%d) returned %d messages", max, len(msgs))
	}
	return msgs
}

// receiveAll receives until it holds n messages.
func receiveAll(t *testing.T, q Queue, n int, lease time.Duration) []*queue.Message {
	t.Helper()
	var out []*queue.Message
	for len(out) < n {
		out = append(out, receive(t, q, n-len(out), lease)...)
	}
	return out
}

// expectNothing checks that nothing is received within wait.
func expectNothing(t *testing.T, q Queue, wait time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	msgs, err := q.Receive(ctx, 10, time.Minute)
	if len(msgs) > 0 {
		t.Fatalf("received %d messages (first %s), want none", len(msgs), msgs[0].ID)
	}
	if err == nil {
		t.Fatal("Receive returned no message and no error before its context ended")
	}
}

func ack(t *testing.T, q Queue, msgs ...*queue.Message) {
	t.Helper()
	if err := q.Ack(context.Background(), msgs...); err != nil {
		t.Fatalf("Ack: %v", err)
	}
}

func ids(msgs []*queue.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

func testPublishReceiveAck(t *testing.T, s Suite) {
	q := s.New(t)
	want := map[string]string{}
	for i := range 3 {
		body := "body-" + strconv.Itoa(i)
		want[publish(t, q, body, queue.Attribute("n", strconv.Itoa(i)))] = body
	}
	msgs := receiveAll(t, q, 3, time.Minute)
	for _, m := range msgs {
		if string(m.Body) != want[m.ID] {
			t.Errorf("message %s: body %q, want %q", m.ID, m.Body, want[m.ID])
		}
		if m.Attempt != 1 {
			t.Errorf("message %s: Attempt %d on first delivery, want 1", m.ID, m.Attempt)
		}
		if n := m.Attributes["n"]; "body-"+n != want[m.ID] {
			t.Errorf("message %s: attribute n = %q", m.ID, n)
		}
	}
	ack(t, q, msgs...)
	expectNothing(t, q, s.Lease)
}

func testLeasedMessageIsInvisible(t *testing.T, s Suite) {
	q := s.New(t)
	publish(t, q, "x")
	m := receive(t, q, 1, time.Minute)[0]
	expectNothing(t, q, s.Lease)
	ack(t, q, m)
}

func testRedeliveryAfterLeaseExpiry(t *testing.T, s Suite) {
	q := s.New(t)
	id := publish(t, q, "x")
	first := receive(t, q, 1, s.Lease)[0]
	start := time.Now()
	again := receive(t, q, 1, time.Minute)[0]
	if waited := time.Since(start); waited < s.Lease/2 {
		t.Errorf("redelivered after %v, before the %v lease ended", waited, s.Lease)
	}
	if again.ID != id || again.Attempt != 2 {
		t.Fatalf("redelivery: ID %s attempt %d, want %s attempt 2", again.ID, again.Attempt, id)
	}
	if first.Receipt == again.Receipt {
		t.Error("the redelivery has the same receipt as the first delivery")
	}
	ack(t, q, again)
}

func testReceiptFencesStaleHolder(t *testing.T, s Suite) {
	q := s.New(t)
	publish(t, q, "x")
	stale := receive(t, q, 1, s.Lease)[0]
	current := receive(t, q, 1, time.Minute)[0] // after the first lease expired
	ctx := context.Background()
	for name, op := range map[string]func() error{
		"Ack":        func() error { return q.Ack(ctx, stale) },
		"Nack":       func() error { return q.Nack(ctx, stale, 0) },
		"Extend":     func() error { return q.Extend(ctx, stale, time.Minute) },
		"DeadLetter": func() error { return q.DeadLetter(ctx, stale, errors.New("stale")) },
	} {
		if err := op(); !errors.Is(err, queue.ErrLeaseLost) {
			t.Errorf("%s with a stale receipt = %v, want ErrLeaseLost", name, err)
		}
	}
	// None of it changed anything: the current holder still holds it.
	expectNothing(t, q, s.Lease/2)
	if got := s.Dead(t, q); len(got) != 0 {
		t.Errorf("dead letters %v after a stale DeadLetter", got)
	}
	ack(t, q, current)
	expectNothing(t, q, s.Lease/2)
}

func testExtendKeepsMessageLeased(t *testing.T, s Suite) {
	q := s.New(t)
	publish(t, q, "x")
	m := receive(t, q, 1, s.Lease)[0]
	if err := q.Extend(context.Background(), m, time.Minute); err != nil {
		t.Fatalf("Extend: %v", err)
	}
	expectNothing(t, q, 2*s.Lease) // well past the original lease
	ack(t, q, m)
}

func testNackDelaysRedelivery(t *testing.T, s Suite) {
	q := s.New(t)
	publish(t, q, "x")
	m := receive(t, q, 1, time.Minute)[0]
	if err := q.Nack(context.Background(), m, 2*s.Lease); err != nil {
		t.Fatalf("Nack: %v", err)
	}
	start := time.Now()
	expectNothing(t, q, s.Lease)
	again := receive(t, q, 1, time.Minute)[0]
	if waited := time.Since(start); waited < s.Lease {
		t.Errorf("redelivered %v after Nack with a %v delay", waited, 2*s.Lease)
	}
	if again.Attempt != 2 {
		t.Errorf("Attempt %d after one Nack, want 2", again.Attempt)
	}
	// Nack with no delay makes it ready at once.
	if err := q.Nack(context.Background(), again, 0); err != nil {
		t.Fatalf("Nack(0): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.Lease)
	defer cancel()
	msgs, err := q.Receive(ctx, 1, time.Minute)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("after Nack(0): %d messages, %v; want it ready at once", len(msgs), err)
	}
	ack(t, q, msgs...)
}

func testNackInvalidatesReceipt(t *testing.T, s Suite) {
	q := s.New(t)
	publish(t, q, "x")
	m := receive(t, q, 1, time.Minute)[0]
	if err := q.Nack(context.Background(), m, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := q.Ack(context.Background(), m); !errors.Is(err, queue.ErrLeaseLost) {
		t.Errorf("Ack after Nack = %v, want ErrLeaseLost", err)
	}
}

func testDeadLetter(t *testing.T, s Suite) {
	q := s.New(t)
	id := publish(t, q, "poison")
	m := receive(t, q, 1, time.Minute)[0]
	if err := q.DeadLetter(context.Background(), m, errors.New("cannot parse")); err != nil {
		t.Fatalf("DeadLetter: %v", err)
	}
	if got := s.Dead(t, q); !slices.Equal(got, []string{id}) {
		t.Errorf("dead letters = %v, want [%s]", got, id)
	}
	if err := q.Ack(context.Background(), m); !errors.Is(err, queue.ErrLeaseLost) {
		t.Errorf("Ack of a dead letter = %v, want ErrLeaseLost", err)
	}
	expectNothing(t, q, s.Lease)
}

func testDeadLetterAfterMaxAttempts(t *testing.T, s Suite) {
	q := s.New(t)
	id := publish(t, q, "always fails")
	var attempts []int
	var mu sync.Mutex
	dead := make(chan struct{})
	var deadOnce sync.Once
	c := &queue.Consumer{
		Source:      q,
		Concurrency: 1,
		MaxAttempts: 3,
		Retry:       func(int) time.Duration { return 0 },
		Lease:       time.Minute,
		Handler: func(ctx context.Context, m *queue.Message) error {
			mu.Lock()
			attempts = append(attempts, m.Attempt)
			mu.Unlock()
			return fmt.Errorf("attempt %d failed", m.Attempt)
		},
		OnResult: func(r queue.Result) {
			if r.Outcome == queue.DeadLettered {
				deadOnce.Do(func() { close(dead) })
			}
		},
		Logger: quietLogger(),
	}
	runConsumer(t, c, dead)
	if !slices.Equal(attempts, []int{1, 2, 3}) {
		t.Errorf("attempts %v, want [1 2 3]", attempts)
	}
	if got := s.Dead(t, q); !slices.Equal(got, []string{id}) {
		t.Errorf("dead letters = %v, want [%s]", got, id)
	}
}

func testBatchAck(t *testing.T, s Suite) {
	q := s.New(t)
	for i := range 10 {
		publish(t, q, strconv.Itoa(i))
	}
	msgs := receiveAll(t, q, 10, time.Minute)
	// One stale copy among valid ones: the valid ones are still deleted.
	stale := *msgs[0]
	if err := q.Nack(context.Background(), msgs[0], time.Hour); err != nil {
		t.Fatal(err)
	}
	err := q.Ack(context.Background(), append([]*queue.Message{&stale}, msgs[1:]...)...)
	if !errors.Is(err, queue.ErrLeaseLost) {
		t.Errorf("batch Ack with a stale receipt = %v, want it reported as ErrLeaseLost", err)
	}
	expectNothing(t, q, s.Lease)
}

// testBatchAckNamesTheStaleReceipt checks that Ack names exactly the
// messages whose lease passed on, each in a *queue.LeaseLostError, so that
// a consumer reports the others, deleted, as handled.
func testBatchAckNamesTheStaleReceipt(t *testing.T, s Suite) {
	q := s.New(t)
	publish(t, q, "x")
	stale := receive(t, q, 1, s.Lease)[0]
	current := receive(t, q, 1, time.Minute)[0] // after the first lease expired
	publish(t, q, "a")
	publish(t, q, "b")
	others := receiveAll(t, q, 2, time.Minute)
	err := q.Ack(context.Background(), others[0], stale, others[1])
	if named := leaseLostIDs(err); !slices.Equal(named, []string{stale.ID}) {
		t.Errorf("batch Ack with one stale receipt = %v; want only *queue.LeaseLostError values, naming %s alone (named: %v)", err, stale.ID, named)
	}
	// The others were deleted; the current holder still holds its copy.
	expectNothing(t, q, s.Lease/2)
	ack(t, q, current)
	expectNothing(t, q, s.Lease/2)
}

// leaseLostIDs returns the IDs of the *queue.LeaseLostError values that
// err joins (possibly wrapped), or nil if err holds anything else.
func leaseLostIDs(err error) []string {
	switch u := err.(type) {
	case nil:
		return nil
	case *queue.LeaseLostError:
		return []string{u.ID}
	case interface{ Unwrap() []error }:
		var ids []string
		for _, e := range u.Unwrap() {
			named := leaseLostIDs(e)
			if named == nil {
				return nil
			}
			ids = append(ids, named...)
		}
		return ids
	case interface{ Unwrap() error }:
		return leaseLostIDs(u.Unwrap())
	}
	return nil
}

func testPriorityThenAge(t *testing.T, s Suite) {
	q := s.New(t)
	a := publish(t, q, "a")
	b := publish(t, q, "b", queue.Priority(5))
	c := publish(t, q, "c")
	d := publish(t, q, "d", queue.Priority(5))
	e := publish(t, q, "e", queue.Priority(-1))
	want := []string{b, d, a, c, e}
	var got []string
	for len(got) < len(want) {
		msgs := receive(t, q, 1, time.Minute)
		got = append(got, ids(msgs)...)
		ack(t, q, msgs...)
	}
	if !slices.Equal(got, want) {
		t.Errorf("received %v, want priority then age: %v", got, want)
	}
	// The same order within one batch.
	p0a := publish(t, q, "x")
	p5a := publish(t, q, "x", queue.Priority(5))
	p0b := publish(t, q, "x")
	p5b := publish(t, q, "x", queue.Priority(5))
	neg := publish(t, q, "x", queue.Priority(-1))
	msgs := receiveAll(t, q, 5, time.Minute)
	if got, want := ids(msgs), []string{p5a, p5b, p0a, p0b, neg}; !slices.Equal(got, want) {
		t.Errorf("one batch received %v, want %v", got, want)
	}
	ack(t, q, msgs...)
}

func testDelayedPublish(t *testing.T, s Suite) {
	q := s.New(t)
	id := publish(t, q, "later", queue.Delay(2*s.Lease))
	start := time.Now()
	expectNothing(t, q, s.Lease)
	m := receive(t, q, 1, time.Minute)[0]
	if m.ID != id || time.Since(start) < s.Lease {
		t.Errorf("got %s after %v, want %s after about %v", m.ID, time.Since(start), id, 2*s.Lease)
	}
	ack(t, q, m)
}

func testConcurrentReceiversNeverShare(t *testing.T, s Suite) {
	q := s.New(t)
	const n = 200
	for i := range n {
		publish(t, q, strconv.Itoa(i))
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 8 {
		wg.Go(func() {
			for {
				mu.Lock()
				total := len(seen)
				mu.Unlock()
				if total >= n {
					return
				}
				rctx, rcancel := context.WithTimeout(ctx, 200*time.Millisecond)
				msgs, _ := q.Receive(rctx, 5, time.Minute)
				rcancel()
				mu.Lock()
				for _, m := range msgs {
					seen[m.ID]++
				}
				mu.Unlock()
				if len(msgs) > 0 {
					if err := q.Ack(context.Background(), msgs...); err != nil {
						t.Errorf("Ack: %v", err)
					}
				}
			}
		})
	}
	wg.Wait()
	for id, times := range seen {
		if times != 1 {
			t.Errorf("message %s received %d times while leased", id, times)
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct messages received, want %d", len(seen), n)
	}
}

func testLongPollWakesOnPublish(t *testing.T, s Suite) {
	q := s.New(t)
	got := make(chan []*queue.Message, 1)
	waiting := make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		defer cancel()
		close(waiting)
		msgs, _ := q.Receive(ctx, 1, time.Minute)
		got <- msgs
	}()
	<-waiting
	time.Sleep(s.Lease / 4) // let the receiver start waiting; not needed for correctness
	start := time.Now()
	id := publish(t, q, "wake up")
	msgs := <-got
	if len(msgs) != 1 || msgs[0].ID != id {
		t.Fatalf("long poll returned %v, want the published message", ids(msgs))
	}
	if waited := time.Since(start); waited > 2*time.Second {
		t.Errorf("long poll took %v to see a publish in the same process", waited)
	}
	ack(t, q, msgs...)
}

func testReceiveHonoursContext(t *testing.T, s Suite) {
	q := s.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := q.Receive(ctx, 1, time.Minute)
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Receive on an empty queue returned nil after its context ended")
		}
	case <-time.After(patience):
		t.Fatal("Receive did not return after its context ended")
	}
}

func testConsumerHandlesEverything(t *testing.T, s Suite) {
	q := s.New(t)
	const n = 100
	for i := range n {
		publish(t, q, strconv.Itoa(i))
	}
	var mu sync.Mutex
	handled := map[string]int{}
	all := make(chan struct{})
	var allOnce sync.Once
	c := &queue.Consumer{
		Source:      q,
		Concurrency: 8,
		Handler: func(ctx context.Context, m *queue.Message) error {
			mu.Lock()
			defer mu.Unlock()
			handled[string(m.Body)]++
			if len(handled) == n {
				allOnce.Do(func() { close(all) })
			}
			return nil
		},
		Logger: quietLogger(),
	}
	runConsumer(t, c, all)
	for i := range n {
		if handled[strconv.Itoa(i)] != 1 {
			t.Errorf("message %d handled %d times", i, handled[strconv.Itoa(i)])
		}
	}
	expectNothing(t, q, s.Lease)
}

// testFirstReceivedOnFirstDelivery checks that a message's first delivery
// carries the time it was received: not before the Receive began, not
// after it returned. Sources count it in whole milliseconds at the least.
func testFirstReceivedOnFirstDelivery(t *testing.T, s Suite) {
	q := s.New(t)
	publish(t, q, "x")
	before := time.Now().Truncate(time.Millisecond)
	m := receive(t, q, 1, time.Minute)[0]
	after := time.Now()
	if m.FirstReceived.Before(before) || m.FirstReceived.After(after) {
		t.Errorf("FirstReceived = %v on the first delivery, want between %v and %v, when Receive ran",
			m.FirstReceived, before, after)
	}
	ack(t, q, m)
}

// testFirstReceivedKeptOnRedelivery checks that FirstReceived is the first
// delivery's on the redelivery after a lease ran out and on the one after
// a Nack, both well past the first.
func testFirstReceivedKeptOnRedelivery(t *testing.T, s Suite) {
	q := s.New(t)
	publish(t, q, "x")
	first := receive(t, q, 1, s.Lease)[0]
	if first.FirstReceived.IsZero() {
		t.Fatal("FirstReceived is zero on the first delivery")
	}
	expired := receive(t, q, 1, time.Minute)[0] // after the first lease ran out
	if !expired.FirstReceived.Equal(first.FirstReceived) {
		t.Errorf("FirstReceived = %v after the lease ran out, want the first delivery's %v", expired.FirstReceived, first.FirstReceived)
	}
	if err := q.Nack(context.Background(), expired, 0); err != nil {
		t.Fatalf("Nack: %v", err)
	}
	nacked := receive(t, q, 1, time.Minute)[0]
	if !nacked.FirstReceived.Equal(first.FirstReceived) {
		t.Errorf("FirstReceived = %v after a Nack, want the first delivery's %v", nacked.FirstReceived, first.FirstReceived)
	}
	ack(t, q, nacked)
}

// runConsumer runs c until done is closed, then stops it and checks that it
// drained cleanly.
func runConsumer(t *testing.T, c *queue.Consumer, done <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	result := make(chan error, 1)
	go func() { result <- c.Run(ctx) }()
	select {
	case <-done:
	case <-time.After(patience):
		t.Error("the consumer did not finish in time")
	}
	cancel()
	if err := <-result; err != nil {
		t.Errorf("Consumer.Run: %v", err)
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
