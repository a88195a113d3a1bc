package sqs_test

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/crewgo/crew/queue/queuetest"
	"github.com/crewgo/crew/queue/sqs"
	"github.com/crewgo/crew/queue/sqs/sqstest"
)

// server is the emulator that every test of the package shares; each test
// makes queues of its own on it.
var server *sqstest.Server

func TestMain(m *testing.M) {
	if spec := os.Getenv(crashChildEnv); spec != "" {
		os.Exit(crashChild(spec)) // a consumer that a crash test started
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
