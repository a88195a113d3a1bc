package sqs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/crewgo/crew/queue"
)

// Limits that SQS sets.
const (
	// MaxVisibility is the longest a message can stay leased after one
	// receive, extensions included.
	MaxVisibility = 12 * time.Hour
	// MaxDelay is the longest delay SQS accepts on a published message or
	// a retried one.
	MaxDelay = 15 * time.Minute
	// MaxMessageSize is the largest message, body and attributes together,
	// that SQS accepts.
	MaxMessageSize = 1 << 20
	// MaxWaitTime is the longest long poll SQS accepts.
	MaxWaitTime = 20 * time.Second
	// maxBatch is the most entries of one batch call, and the most
	// messages one ReceiveMessage returns.
	maxBatch = 10
)

// Queue is one SQS queue, as a queue.Source and a queue.Publisher. Create it
// with New or Open; its methods are safe for concurrent use.
type Queue struct {
	client   *awssqs.Client
	url      string
	fifo     bool
	waitTime time.Duration

	dlqMu  sync.Mutex
	dlqURL string // "" until known

	polls sync.WaitGroup // long polls abandoned by a Receive whose ctx ended
}

// Option configures a Queue.
type Option func(*Queue)

// DeadLetterQueue sets the URL of the queue that DeadLetter moves messages
// to, and that Dead, Redrive and Purge read. Without it, the Queue uses the
// dead-letter queue of the queue's RedrivePolicy.
func DeadLetterQueue(url string) Option {
	return func(q *Queue) { q.dlqURL = url }
}

// WaitTime sets the longest a Receive waits on SQS in one request for
// messages to arrive: MaxWaitTime, 20 seconds, by default. SQS waits in
// whole seconds, so d is rounded down to them, from one second to
// MaxWaitTime: a Receive that found nothing polls again at once, and a
// wait of zero would make it poll an idle queue without pause. SQS bills
// every request, so a long wait costs least on an idle queue; a Receive
// whose context ends sooner waits only until then.
func WaitTime(d time.Duration) Option {
	return func(q *Queue) { q.waitTime = min(max(d.Truncate(time.Second), time.Second), MaxWaitTime) }
}

// New returns the queue at queueURL, reached through client. It makes no
// request: a queue that does not exist shows as an error of the first call.
func New(client *awssqs.Client, queueURL string, opts ...Option) *Queue {
	q := &Queue{client: client, url: queueURL, waitTime: MaxWaitTime}
	q.fifo = strings.HasSuffix(queueURL, ".fifo")
	for _, opt := range opts {
		opt(q)
	}
	return q
}

// URL returns the queue's URL.
func (q *Queue) URL() string { return q.url }

// PrefetchLimit bounds the adaptive prefetch of a queue.Consumer whose
// Prefetch is zero: nine messages per handler, at most 90, so that a
// consumer of quick handlers receives in requests of ten (see the package
// documentation's section on requests). It makes Queue a
// queue.PrefetchLimiter.
func (q *Queue) PrefetchLimit(concurrency int) int {
	return min(9*concurrency, 90)
}

// Close waits for the long polls that a Receive abandoned when its context
// ended to be answered, and releases what SQS handed them. It returns after
// at most the WaitTime. The Queue must not be used after Close; the client
// is not closed.
func (q *Queue) Close() error {
	q.polls.Wait()
	return nil
}

// Receive long-polls SQS for up to maxMsgs messages, leased for lease
// rounded up to whole seconds: it waits until messages arrive, the
// WaitTime passes (it then polls again), or ctx ends. SQS waits in whole
// seconds: with less than one second left before ctx's deadline, Receive
// polls once without waiting, then waits for the deadline. Each message's
// Attempt is SQS's ApproximateReceiveCount, and its FirstReceived SQS's
// ApproximateFirstReceiveTimestamp. SQS returns at most ten
// messages a request: for more, Receive makes one request per ten at once
// (up to 100 messages).
//
// When ctx ends during a poll, Receive returns ctx's error at once and the
// poll goes on in the background: what SQS hands it is released (made
// visible again) as soon as it answers, rather than left leased for the
// whole lease. Close waits for such polls.
//
// On a FIFO queue, Receive returns at most the first message of each
// message group and releases the group's later ones, so that a group's
// messages are handled one at a time and in order: SQS does not hand out a
// group's next message while one is leased.
func (q *Queue) Receive(ctx context.Context, maxMsgs int, lease time.Duration) ([]*queue.Message, error) {
	maxMsgs = min(max(maxMsgs, 1), maxParallel*maxBatch)
	vis := visibility(lease)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		wait := q.waitTime
		if d, ok := ctx.Deadline(); ok {
			wait = min(wait, time.Until(d))
		}
		msgs, err := q.poll(ctx, maxMsgs, vis, wait.Truncate(time.Second))
		if err != nil || len(msgs) > 0 {
			return msgs, err
		}
		if wait < time.Second {
			// SQS waits in whole seconds: with less than one left, the
			// poll above did not wait, and nothing will come in time.
			<-ctx.Done()
		}
	}
}

type pollResult struct {
	msgs []*queue.Message
	err  error
}

// poll makes the ReceiveMessage requests of one long poll. They run on a
// goroutine of their own, detached from ctx: cancelling a long poll does not stop SQS
// from handing it messages, so an abandoned poll must still see its answer
// to release them.
func (q *Queue) poll(ctx context.Context, maxMsgs int, vis time.Duration, wait time.Duration) ([]*queue.Message, error) {
	var (
		mu        sync.Mutex
		abandoned bool
		answer    = make(chan pollResult, 1)
	)
	q.polls.Add(1)
	go func() {
		defer q.polls.Done()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), wait+30*time.Second)
		defer cancel()
		msgs, err := q.receiveParallel(rctx, maxMsgs, vis, wait)
		mu.Lock()
		defer mu.Unlock()
		if abandoned {
			q.release(msgs)
			return
		}
		answer <- pollResult{msgs, err}
	}()
	select {
	case r := <-answer:
		return r.msgs, r.err
	case <-ctx.Done():
		mu.Lock()
		abandoned = true
		mu.Unlock()
		select {
		case r := <-answer: // answered just as ctx ended
			q.release(r.msgs)
		default:
		}
		return nil, ctx.Err()
	}
}

// maxParallel bounds the ReceiveMessage requests that one Receive makes at
// once.
const maxParallel = 10

// receiveParallel receives up to maxMsgs messages with as many concurrent
// ReceiveMessage requests as it takes at ten messages each: a consumer that
// has room for more than ten messages need not wait for one round trip per
// ten. It returns what every request got, with the errors of those that
// failed.
func (q *Queue) receiveParallel(ctx context.Context, maxMsgs int, vis, wait time.Duration) ([]*queue.Message, error) {
	n := (maxMsgs + maxBatch - 1) / maxBatch
	if n == 1 {
		return q.receive(ctx, maxMsgs, vis, wait)
	}
	results := make([]pollResult, n)
	var wg sync.WaitGroup
	for i := range results {
		size := min(maxBatch, maxMsgs-i*maxBatch)
		wg.Go(func() { results[i].msgs, results[i].err = q.receive(ctx, size, vis, wait) })
	}
	wg.Wait()
	var msgs []*queue.Message
	var errs []error
	seen := map[string]bool{}
	for _, r := range results {
		for _, m := range r.msgs {
			// A message that two requests got (its lease ran out while
			// they waited) is kept once; the other copy's receipt is
			// stale anyway.
			if !seen[m.ID] {
				seen[m.ID] = true
				msgs = append(msgs, m)
			}
		}
		errs = append(errs, r.err)
	}
	return msgs, errors.Join(errs...)
}

// receive makes one ReceiveMessage request and converts its answer.
func (q *Queue) receive(ctx context.Context, maxMsgs int, vis, wait time.Duration) ([]*queue.Message, error) {
	start := time.Now()
	out, err := q.client.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{
		QueueUrl:            &q.url,
		MaxNumberOfMessages: int32(maxMsgs),
		VisibilityTimeout:   int32(vis / time.Second),
		WaitTimeSeconds:     int32(wait / time.Second),
		//lint:ignore SA1019 the deprecated field is still what some SQS implementations read for ApproximateReceiveCount.
		AttributeNames:              []types.QueueAttributeName{"All"},
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
		MessageAttributeNames:       []string{"All"},
	})
	if err != nil {
		return nil, classify("receive", err)
	}
	msgs := make([]*queue.Message, 0, len(out.Messages))
	seen := make(map[string]int, len(out.Messages))
	groups := map[string]bool{}
	var later []*queue.Message
	for _, sm := range out.Messages {
		m := toMessage(sm, start, vis)
		if i, dup := seen[m.ID]; dup {
			// Received twice in one answer (its visibility ran out while
			// the poll waited): only the newer receipt is current.
			msgs[i] = m
			continue
		}
		if g := sm.Attributes[string(types.MessageSystemAttributeNameMessageGroupId)]; q.fifo && g != "" {
			if groups[g] {
				later = append(later, m)
				continue
			}
			groups[g] = true
		}
		seen[m.ID] = len(msgs)
		msgs = append(msgs, m)
	}
	q.release(later)
	return msgs, nil
}

// toMessage converts a received SQS message; the receive request started
// at start and asked for visibility vis.
func toMessage(sm types.Message, start time.Time, vis time.Duration) *queue.Message {
	attempt, _ := strconv.Atoi(sm.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
	m := &queue.Message{
		ID:      aws.ToString(sm.MessageId),
		Body:    []byte(aws.ToString(sm.Body)),
		Attempt: max(attempt, 1),
		Receipt: &receipt{handle: aws.ToString(sm.ReceiptHandle), received: start, deadline: start.Add(vis)},
	}
	// Unix milliseconds, set by SQS at the first receive.
	first, err := strconv.ParseInt(sm.Attributes[string(types.MessageSystemAttributeNameApproximateFirstReceiveTimestamp)], 10, 64)
	if err == nil && first > 0 {
		m.FirstReceived = time.UnixMilli(first)
	}
	for k, v := range sm.MessageAttributes {
		if v.StringValue == nil {
			continue // a binary attribute: crew's attributes are strings
		}
		if m.Attributes == nil {
			m.Attributes = make(map[string]string, len(sm.MessageAttributes))
		}
		m.Attributes[k] = *v.StringValue
	}
	return m
}

// release makes msgs visible again at once, in batches, as well as it can:
// a message it fails to release comes back when its lease ends.
func (q *Queue) release(msgs []*queue.Message) {
	for chunk := range slices.Chunk(msgs, maxBatch) {
		entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, len(chunk))
		for i, m := range chunk {
			r := m.Receipt.(*receipt)
			r.end()
			entries[i] = types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: &r.handle}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, _ = q.client.ChangeMessageVisibilityBatch(ctx, &awssqs.ChangeMessageVisibilityBatchInput{QueueUrl: &q.url, Entries: entries})
		cancel()
	}
}

// visibility is lease as SQS counts it: whole seconds, at least one, at
// most MaxVisibility.
func visibility(lease time.Duration) time.Duration {
	v := (lease + time.Second - 1).Truncate(time.Second)
	return min(max(v, time.Second), MaxVisibility)
}

// ErrVisibilityLimit is what a lease lost to SQS's 12-hour limit on a
// message's visibility wraps (with queue.ErrLeaseLost).
var ErrVisibilityLimit = errors.New("sqs: a message cannot stay leased more than 12 hours after it was received")

// describe names a message for an error.
func describe(m *queue.Message) string { return fmt.Sprintf("message %s", m.ID) }
