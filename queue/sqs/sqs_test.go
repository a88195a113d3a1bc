package sqs_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"go.uber.org/goleak"

	"github.com/crewgo/crew"
	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/queuetest"
	"github.com/crewgo/crew/queue/sqs"
	"github.com/crewgo/crew/queue/sqs/sqstest"
)

// server is the emulator that every test of the package shares; each test
// makes queues of its own on it.
var server *sqstest.Server

func TestMain(m *testing.M) {
	if code, ok := crash.Child(); ok {
		os.Exit(code) // a consumer that TestCrashSafety started
	}
	if spec := os.Getenv(pollChildEnv); spec != "" {
		os.Exit(pollChild(spec)) // a consumer that a long-poll test started
	}
	var err error
	server, err = sqstest.StartServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = server.Stop()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

var queueSeq atomic.Int64

// newQueueURL creates a queue, with a dead-letter queue, for one test. The
// queue's own redrive threshold is high enough never to act: the consumer
// dead-letters messages itself.
func newQueueURL(t testing.TB) string {
	return server.CreateQueue(t, fmt.Sprintf("q%d", queueSeq.Add(1)), 1000)
}

// newQueue returns a Queue on a new SQS queue, closed when t ends. Its
// long polls are short, as the emulator answers a long poll early only once
// it has as many messages as were asked for.
func newQueue(t testing.TB, opts ...sqs.Option) *sqs.Queue {
	q := sqs.New(server.Client(), newQueueURL(t), append([]sqs.Option{sqs.WaitTime(time.Second)}, opts...)...)
	t.Cleanup(func() { _ = q.Close() })
	return q
}

func deadIDs(t *testing.T, q *sqs.Queue) []string {
	dead, err := q.Dead(t.Context())
	if err != nil {
		t.Fatalf("Dead: %v", err)
	}
	var ids []string
	for _, d := range dead {
		ids = append(ids, d.Message.ID)
	}
	return ids
}

// emulatorSkips are the conformance tests that cannot pass on SQS or on
// its emulator, with the reason.
var emulatorSkips = map[string]string{
	"TestConformance/PriorityThenAge": "SQS has no message priorities, and a standard queue does not keep the order of publication",
	"TestConformance/NackDelaysRedelivery": "the emulator (local-aws-sqs 2.0.2) adds 1 to ApproximateReceiveCount on every " +
		"ChangeMessageVisibility, which Nack uses, so the redelivery's Attempt is 3, not 2; real SQS counts receives only",
	"TestConformance/DeadLetterAfterMaxAttempts": "the emulator (local-aws-sqs 2.0.2) adds 1 to ApproximateReceiveCount on every " +
		"ChangeMessageVisibility, which a retry uses, so the attempts are 1, 3 instead of 1, 2, 3; real SQS counts receives only",
}

func TestConformance(t *testing.T) {
	queuetest.Suite{
		New: func(t *testing.T) queuetest.Queue {
			if why, ok := emulatorSkips[t.Name()]; ok {
				t.Skip(why)
			}
			return newQueue(t)
		},
		Dead:  func(t *testing.T, q queuetest.Queue) []string { return deadIDs(t, q.(*sqs.Queue)) },
		Lease: time.Second, // SQS counts leases in whole seconds
	}.Run(t)
}

func TestPublishRefusesWhatSQSWouldBeforeAnyRequest(t *testing.T) {
	// No SQS listens here: an error that is not a connection failure was
	// found before any request.
	q := sqs.New(server.Client(func(o *awssqs.Options) { o.BaseEndpoint = aws.String("http://127.0.0.1:1") }), "http://127.0.0.1:1/0/q")
	ctx := t.Context()
	if _, err := q.Publish(ctx, []byte("x"), queue.Delay(16*time.Minute)); err == nil || !strings.Contains(err.Error(), "delay") {
		t.Errorf("Publish with a 16-minute delay = %v, want an error about the delay", err)
	}
	big := make([]byte, sqs.MaxMessageSize+1)
	if _, err := q.Publish(ctx, big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Publish of %d bytes = %v, want an error about the size", len(big), err)
	}
	if _, err := q.PublishBatch(ctx, [][]byte{[]byte("ok"), big}); err == nil || !strings.Contains(err.Error(), "message 1") {
		t.Errorf("PublishBatch with a message too large = %v, want an error naming message 1", err)
	}
}

func TestMissingQueueIsPermanent(t *testing.T) {
	q := sqs.New(server.Client(), server.Endpoint+"/"+sqstest.Account+"/no-such-queue")
	t.Cleanup(func() { _ = q.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := q.Receive(ctx, 1, time.Minute); !errors.Is(err, crew.ErrPermanent) {
		t.Errorf("Receive from a missing queue = %v, want crew.ErrPermanent", err)
	}
	c := &queue.Consumer{Source: q, Handler: func(context.Context, *queue.Message) error { return nil }, Logger: slog.New(slog.DiscardHandler)}
	if err := c.Run(ctx); !errors.Is(err, crew.ErrPermanent) {
		t.Errorf("Consumer.Run on a missing queue = %v, want it to stop with crew.ErrPermanent", err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	raw := "sqs+http://" + server.Addr + "/" + sqstest.Account + "/no-such-queue?region=us-east-1"
	if _, err := sqs.Open(ctx, raw); !errors.Is(err, crew.ErrPermanent) || !strings.Contains(err.Error(), "no-such-queue") {
		t.Errorf("Open(%s) = %v, want crew.ErrPermanent naming the queue", raw, err)
	}
}

func TestRedriveAndPurgeDeadLetters(t *testing.T) {
	q := newQueue(t)
	ctx := t.Context()
	for _, body := range []string{"a", "b", "c"} {
		if _, err := q.Publish(ctx, []byte(body), queue.Attribute("kind", body)); err != nil {
			t.Fatal(err)
		}
	}
	msgs := receiveAllWithin(t, q, 3)
	byBody := map[string]*queue.Message{}
	for _, m := range msgs {
		if err := q.DeadLetter(ctx, m, errors.New("broken "+string(m.Body))); err != nil {
			t.Fatal(err)
		}
		byBody[string(m.Body)] = m
	}
	dead, err := q.Dead(ctx)
	if err != nil || len(dead) != 3 {
		t.Fatalf("Dead = %d, %v; want 3", len(dead), err)
	}
	for _, d := range dead {
		b := string(d.Message.Body)
		if d.Message.ID != byBody[b].ID || d.Reason != "broken "+b || d.Message.Attributes["kind"] != b || d.At.IsZero() {
			t.Errorf("dead letter %+v (%+v), want the message's ID, reason and attributes", d, d.Message)
		}
		if first := byBody[b].FirstReceived; first.IsZero() || !d.Message.FirstReceived.Equal(first) {
			t.Errorf("dead letter %s: FirstReceived %v, want %v, when it was first received in its queue", b, d.Message.FirstReceived, first)
		}
	}
	if n, err := q.Redrive(ctx, byBody["b"].ID); n != 1 || err != nil {
		t.Fatalf("Redrive(b) = %d, %v; want 1", n, err)
	}
	back := receiveAllWithin(t, q, 1)[0]
	if string(back.Body) != "b" || back.Attributes["kind"] != "b" || len(back.Attributes) != 1 {
		t.Errorf("redriven message %q with %v, want b with its attribute only", back.Body, back.Attributes)
	}
	if n, err := q.Purge(ctx); n != 2 || err != nil {
		t.Fatalf("Purge = %d, %v; want 2", n, err)
	}
	if dead, err := q.Dead(ctx); len(dead) != 0 || err != nil {
		t.Errorf("Dead after Purge = %d, %v; want none", len(dead), err)
	}
	s, err := q.Stats(ctx)
	if err != nil || s.Dead != 0 || s.Leased != 1 {
		t.Errorf("Stats = %+v, %v; want the redriven message leased and no dead letters", s, err)
	}
}

func receiveAllWithin(t *testing.T, q *sqs.Queue, n int) []*queue.Message {
	t.Helper()
	var out []*queue.Message
	for len(out) < n {
		out = append(out, receiveWithin(t, q, n-len(out))...)
	}
	return out
}

// SQS returns at most ten messages a request: a Receive for more makes
// several requests at once, and returns each message once.
func TestReceiveOfMoreThanTenMessagesGetsThemAll(t *testing.T) {
	q := newQueue(t)
	bodies := make([][]byte, 30)
	for i := range bodies {
		bodies[i] = []byte(strconv.Itoa(i))
	}
	if _, err := q.PublishBatch(t.Context(), bodies); err != nil {
		t.Fatal(err)
	}
	msgs := receiveWithin(t, q, 25)
	seen := map[string]bool{}
	for _, m := range msgs {
		seen[m.ID] = true
	}
	if len(msgs) != 25 || len(seen) != 25 {
		t.Errorf("Receive(25) returned %d messages, %d distinct; want 25", len(msgs), len(seen))
	}
	if err := q.Ack(t.Context(), msgs...); err != nil {
		t.Fatal(err)
	}
}

// A job that runs far longer than its lease keeps its message: the
// consumer extends the visibility while the handler runs, so no other
// receiver gets it, and it is handled once.
func TestLongJobKeepsItsMessageInvisible(t *testing.T) {
	q := newQueue(t)
	if _, err := q.Publish(t.Context(), []byte("an hour-long job, in miniature")); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	finish := make(chan struct{})
	done := make(chan queue.Result, 1)
	c := &queue.Consumer{
		Source:      q,
		Concurrency: 1,
		Lease:       time.Second, // the job runs 4 leases
		Handler: func(ctx context.Context, m *queue.Message) error {
			close(started)
			<-finish
			return ctx.Err()
		},
		OnResult: func(r queue.Result) { done <- r },
		Logger:   slog.New(slog.DiscardHandler),
	}
	ctx, stop := context.WithCancel(t.Context())
	result := make(chan error, 1)
	go func() { result <- c.Run(ctx) }()
	<-started
	// Meanwhile another receiver finds nothing, well past the lease.
	rctx, cancel := context.WithTimeout(t.Context(), 4*time.Second)
	msgs, _ := q.Receive(rctx, 10, time.Minute)
	cancel()
	close(finish)
	if len(msgs) != 0 {
		t.Errorf("another receiver got %s while the job ran", bodies(msgs))
	}
	if r := <-done; r.Outcome != queue.Succeeded {
		t.Errorf("the job's outcome: %v (%v), want succeeded", r.Outcome, r.Err)
	}
	stop()
	if err := <-result; err != nil {
		t.Errorf("Consumer.Run: %v", err)
	}
}
