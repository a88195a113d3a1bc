package jetstream_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/crewgo/crew"
	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/jetstream"
)

func receiveOne(t *testing.T, q *jetstream.Queue, lease time.Duration) *queue.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	msgs, err := q.Receive(ctx, 1, lease)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Receive: %d messages, %v", len(msgs), err)
	}
	return msgs[0]
}

func TestPublishRefusesWhatJetStreamCannotDo(t *testing.T) {
	js := connect(t, startServer(t, t.TempDir(), 0).ClientURL())
	q := newQueue(t, js)
	ctx := t.Context()
	if _, err := q.Publish(ctx, []byte("x"), queue.Priority(1)); !errors.Is(err, jetstream.ErrNoPriority) || !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Publish with a priority = %v, want ErrNoPriority", err)
	}
	for _, key := range []string{"Nats-Msg-Id", "Crew-Id", "a b", "a:b"} {
		if _, err := q.Publish(ctx, []byte("x"), queue.Attribute(key, "v")); err == nil {
			t.Errorf("Publish with attribute %q succeeded, want an error", key)
		}
	}
	// A stream of the user's that cannot schedule: a delay is an error,
	// not a message delivered at once.
	if _, err := js.CreateStream(ctx, natsjs.StreamConfig{Name: "PLAIN", Subjects: []string{"plain", "plain.>"}, Retention: natsjs.WorkQueuePolicy}); err != nil {
		t.Fatal(err)
	}
	plain, err := jetstream.New(js, "plain", jetstream.Stream("PLAIN"), jetstream.Subject("plain"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.Publish(ctx, []byte("x"), queue.Delay(time.Second)); !errors.Is(err, jetstream.ErrNoSchedules) {
		t.Errorf("Publish with a delay on a stream without schedules = %v, want ErrNoSchedules", err)
	}
	if s, err := plain.Stats(ctx); err != nil || s.Ready != 0 {
		t.Errorf("Stats %+v, %v after the refused publish; want nothing ready", s, err)
	}
}

func TestExistingStreamMustTakeTheSubjects(t *testing.T) {
	js := connect(t, startServer(t, t.TempDir(), 0).ClientURL())
	if _, err := js.CreateStream(t.Context(), natsjs.StreamConfig{Name: "ORDERS", Subjects: []string{"orders"}}); err != nil {
		t.Fatal(err)
	}
	_, err := jetstream.New(js, "orders", jetstream.Stream("ORDERS"), jetstream.Subject("orders"))
	if err == nil || !strings.Contains(err.Error(), "orders.dead") || !errors.Is(err, crew.ErrPermanent) {
		t.Errorf("New on a stream without the dead-letter subject = %v, want a permanent error naming orders.dead", err)
	}
}

func TestNoCreateCreatesNothing(t *testing.T) {
	js := connect(t, startServer(t, t.TempDir(), 0).ClientURL())
	_, err := jetstream.New(js, "typo", jetstream.NoCreate())
	if !errors.Is(err, crew.ErrPermanent) || !strings.Contains(err.Error(), "CREW_typo") {
		t.Errorf("New(NoCreate) of a missing queue = %v, want a permanent error naming its stream", err)
	}
	if _, err := js.Stream(t.Context(), "CREW_typo"); !errors.Is(err, natsjs.ErrStreamNotFound) {
		t.Errorf("the stream exists after New(NoCreate): %v", err)
	}
}

// TestReceiveTakesOnlyWhatItAskedFor checks that a waiting Receive pulls
// one message, and leaves the others of a burst ready for other workers.
func TestReceiveTakesOnlyWhatItAskedFor(t *testing.T) {
	js := connect(t, startServer(t, t.TempDir(), 0).ClientURL())
	q := newQueue(t, js)
	got := make(chan []*queue.Message, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		msgs, _ := q.Receive(ctx, 10, time.Minute)
		got <- msgs
	}()
	waitPulling(t, js, q)
	for range 5 {
		if _, err := q.Publish(t.Context(), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if msgs := <-got; len(msgs) == 0 {
		t.Fatal("the waiting Receive returned nothing")
	}
	// The server counts what was published as ready a moment after it
	// confirmed the publish: wait for the counts to settle.
	var s jetstream.Stats
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var err error
		if s, err = q.Stats(t.Context()); err != nil {
			t.Fatal(err)
		}
		if s.Leased == 1 && s.Ready == 4 {
			return
		}
	}
	t.Errorf("after a burst of 5 during a waiting Receive: %d leased, %d ready; want 1 and 4", s.Leased, s.Ready)
}

// waitPulling returns once a Receive on q waits on the server with a pull
// request.
func waitPulling(t *testing.T, js natsjs.JetStream, q *jetstream.Queue) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		info, err := js.Consumer(t.Context(), "CREW_"+q.Name(), "crew_"+q.Name())
		if err != nil {
			t.Fatal(err)
		}
		if info.CachedInfo().NumWaiting > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no Receive waited on the server")
		}
		time.Sleep(5 * time.Millisecond) // polling a condition
	}
}

// TestStaleHolderIsFencedAcrossProcesses checks that a Queue refuses to
// acknowledge a delivery whose lease ended, even when another process, not
// itself, received the message since, so that the other's copy survives.
func TestStaleHolderIsFencedAcrossProcesses(t *testing.T) {
	url := startServer(t, t.TempDir(), 0).ClientURL()
	a := newQueue(t, connect(t, url))
	b, err := jetstream.New(connect(t, url), a.Name())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Publish(t.Context(), []byte("x")); err != nil {
		t.Fatal(err)
	}
	stale := receiveOne(t, a, time.Second)
	current := receiveOne(t, b, time.Minute) // after a's lease ended
	if err := a.Ack(t.Context(), stale); !errors.Is(err, queue.ErrLeaseLost) {
		t.Errorf("Ack of a delivery whose lease ended = %v, want ErrLeaseLost", err)
	}
	if err := a.Extend(t.Context(), stale, time.Minute); !errors.Is(err, queue.ErrLeaseLost) {
		t.Errorf("Extend of a delivery whose lease ended = %v, want ErrLeaseLost", err)
	}
	if s, _ := b.Stats(t.Context()); s.Leased != 1 {
		t.Errorf("after the stale Ack: %+v, want the message still leased to the other process", s)
	}
	if err := b.Ack(t.Context(), current); err != nil {
		t.Errorf("Ack by the current holder: %v", err)
	}
}

func TestDeadLettersListRedriveAndPurge(t *testing.T) {
	js := connect(t, startServer(t, t.TempDir(), 0).ClientURL())
	q := newQueue(t, js)
	ctx := t.Context()
	var ids []string
	for _, body := range []string{"a", "b"} {
		id, err := q.Publish(ctx, []byte(body), queue.Attribute("kind", body))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		m := receiveOne(t, q, time.Minute)
		if err := q.DeadLetter(ctx, m, errors.New("cannot parse\nline 2")); err != nil {
			t.Fatal(err)
		}
	}
	dead, err := q.Dead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 2 || dead[0].Message.ID != ids[0] || dead[1].Message.ID != ids[1] {
		t.Fatalf("Dead = %v, want %v oldest first", dead, ids)
	}
	d := dead[0]
	if string(d.Message.Body) != "a" || d.Message.Attributes["kind"] != "a" || d.Message.Attempt != 1 ||
		d.Reason != "cannot parse line 2" || time.Since(d.At) > time.Minute {
		t.Errorf("dead letter %+v, %+v: want body, attributes, attempt, reason and time kept", d, d.Message)
	}
	if s, err := q.Stats(ctx); err != nil || s != (jetstream.Stats{Dead: 2}) {
		t.Errorf("Stats = %+v, %v; want 2 dead", s, err)
	}

	if n, err := q.Redrive(ctx, ids[0], "no such id"); err != nil || n != 1 {
		t.Fatalf("Redrive = %d, %v; want 1", n, err)
	}
	m := receiveOne(t, q, time.Minute)
	if m.ID != ids[0] || m.Attributes["kind"] != "a" || m.Attempt != 1 {
		t.Errorf("redriven message %+v: want ID %s, its attributes, a fresh attempt", m, ids[0])
	}
	if err := q.Ack(ctx, m); err != nil {
		t.Fatal(err)
	}
	if n, err := q.Purge(ctx); err != nil || n != 1 {
		t.Errorf("Purge = %d, %v; want 1", n, err)
	}
	if dead, err := q.Dead(ctx); err != nil || len(dead) != 0 {
		t.Errorf("Dead after Purge = %v, %v", dead, err)
	}
}

func TestDelayedMessagesAreCounted(t *testing.T) {
	js := connect(t, startServer(t, t.TempDir(), 0).ClientURL())
	q := newQueue(t, js)
	if _, err := q.Publish(t.Context(), []byte("later"), queue.Delay(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if s, err := q.Stats(t.Context()); err != nil || s != (jetstream.Stats{Delayed: 1}) {
		t.Errorf("Stats = %+v, %v; want 1 delayed", s, err)
	}
}

// TestDeletedConsumerStopsTheConsumer checks that a consumer deleted under
// a running queue.Consumer is an error that never clears.
func TestDeletedConsumerStopsTheConsumer(t *testing.T) {
	js := connect(t, startServer(t, t.TempDir(), 0).ClientURL())
	q := newQueue(t, js)
	if err := js.DeleteConsumer(t.Context(), "CREW_"+q.Name(), "crew_"+q.Name()); err != nil {
		t.Fatal(err)
	}
	c := &queue.Consumer{Source: q, Handler: func(context.Context, *queue.Message) error { return nil }, Logger: quietLogger()}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := c.Run(ctx); !errors.Is(err, crew.ErrPermanent) {
		t.Errorf("Consumer.Run on a deleted consumer = %v, want an error wrapping crew.ErrPermanent", err)
	}
}

func TestOpenReadsTheURL(t *testing.T) {
	srv := runServer(t, &server.Options{Username: "crew", Password: "s3cret"})
	addr := srv.Addr().String()
	ctx := t.Context()
	q, err := jetstream.Open(ctx, "nats://crew:s3cret@"+addr+"?queue=emails&ack_wait=1m")
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if q.Name() != "emails" {
		t.Errorf("Name() = %q, want emails", q.Name())
	}
	if _, err := q.Publish(ctx, []byte("x")); err != nil {
		t.Fatal(err)
	}
	for url, want := range map[string]string{
		"nats://crew:wrong@" + addr + "?queue=emails":        "uthorization",
		"nats://crew:s3cret@" + addr + "?queue=emails&q=2":   `unknown parameter "q"`,
		"nats://crew:s3cret@" + addr + "?queue=a&queue=b":    `"queue" given twice`,
		"nats://crew:s3cret@" + addr + "?ack_wait=soon":      "ack_wait",
		"nats://crew:s3cret@" + addr + "?queue=a.b":          "invalid queue name",
		"nats://crew:s3cret@" + addr + "?queue=x&tls_cert=c": "tls_key",
		"nats://crew:s3cret@" + addr + "?queue=a#b":          `has a fragment "#b"`,
		"nats://crew:s3cret@" + addr + "?queue=a;b":          `a ';' in the query part`,
	} {
		if q, err := jetstream.Open(ctx, url); err == nil || !strings.Contains(err.Error(), want) {
			if q != nil {
				q.Close()
			}
			t.Errorf("Open(%s) = %v, want an error containing %q", url, err, want)
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open's error shows the password: %v", err)
		} else if bad := want != "uthorization"; errors.Is(err, jetstream.ErrBadURL) != bad {
			t.Errorf("Open(%s) = %v: wraps ErrBadURL %v, want %v", url, err, !bad, bad)
		}
	}
}

// Attempt is JetStream's delivery count; FirstReceived, which JetStream
// does not keep, is known on the first delivery alone.
func TestAttemptCountsDeliveries(t *testing.T) {
	js := connect(t, startServer(t, t.TempDir(), 0).ClientURL())
	q := newQueue(t, js)
	if _, err := q.Publish(t.Context(), []byte("x")); err != nil {
		t.Fatal(err)
	}
	var attempts []int
	for i := range 3 {
		before := time.Now()
		m := receiveOne(t, q, time.Minute)
		attempts = append(attempts, m.Attempt)
		if first := m.FirstReceived; i == 0 && (first.Before(before) || first.After(time.Now())) || i > 0 && !first.IsZero() {
			t.Errorf("delivery %d: FirstReceived %v; want the time of the first Receive on the first delivery, zero on the others", i+1, first)
		}
		if err := q.Nack(t.Context(), m, 0); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(attempts, []int{1, 2, 3}) {
		t.Errorf("attempts %v, want [1 2 3]", attempts)
	}
}

// TestMessageAfterAWaitGetsAFreshLease checks that a message that arrives
// at the end of a long poll is leased from its arrival, not from the start
// of the poll.
func TestMessageAfterAWaitGetsAFreshLease(t *testing.T) {
	js := connect(t, startServer(t, t.TempDir(), 0).ClientURL())
	q := newQueue(t, js, jetstream.AckWait(time.Second))
	got := make(chan *queue.Message, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		msgs, _ := q.Receive(ctx, 1, time.Second)
		if len(msgs) == 1 {
			got <- msgs[0]
		}
		close(got)
	}()
	waitPulling(t, js, q)
	time.Sleep(1500 * time.Millisecond) // longer than the lease: the point of the test
	if _, err := q.Publish(t.Context(), []byte("x")); err != nil {
		t.Fatal(err)
	}
	m, ok := <-got
	if !ok {
		t.Fatal("the waiting Receive returned nothing")
	}
	if err := q.Ack(t.Context(), m); err != nil {
		t.Errorf("Ack right after a message arrived from a long poll = %v, want success", err)
	}
}

// TestExtendWithAckWaitKeepsTheMessage extends a lease of the consumer's
// AckWait (an InProgress) past several AckWaits: no other receiver gets
// the message meanwhile.
func TestExtendWithAckWaitKeepsTheMessage(t *testing.T) {
	url := startServer(t, t.TempDir(), 0).ClientURL()
	a := newQueue(t, connect(t, url), jetstream.AckWait(time.Second))
	b, err := jetstream.New(connect(t, url), a.Name())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Publish(t.Context(), []byte("x")); err != nil {
		t.Fatal(err)
	}
	m := receiveOne(t, a, time.Second)
	others := make(chan int, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
		defer cancel()
		msgs, _ := b.Receive(ctx, 1, time.Minute)
		others <- len(msgs)
	}()
	// Extending every quarter of the AckWait leaves 750ms of margin for a
	// loaded machine; ten of them span 2.5 AckWaits.
	for range 10 {
		time.Sleep(250 * time.Millisecond) // the job, between extensions
		if err := a.Extend(t.Context(), m, time.Second); err != nil {
			t.Fatalf("Extend: %v", err)
		}
	}
	if n := <-others; n != 0 {
		t.Errorf("another receiver got the message while its lease was extended")
	}
	if err := a.Ack(t.Context(), m); err != nil {
		t.Errorf("Ack after the extensions: %v", err)
	}
}
