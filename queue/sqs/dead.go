package sqs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/work"
)

// deadAttr is the message attribute in which DeadLetter records, as JSON,
// the message's ID in its queue, why it was given up, when, and when it
// was first received there.
const deadAttr = "crew.dead"

type deadNote struct {
	ID            string    `json:"id"`
	Reason        string    `json:"reason"`
	At            time.Time `json:"at"`
	FirstReceived time.Time `json:"first_received,omitzero"` // in its queue, not in the dead-letter queue
}

// DeadMessage is one dead letter: the message as it was last delivered, why
// it was given up, and when. A message that SQS moved itself, under the
// queue's RedrivePolicy, has no reason and no time. It is the type every
// crew backend lists dead letters with.
type DeadMessage = queue.DeadMessage

// DeadLetter sends m, with its attributes and the reason in the message
// attribute "crew.dead", to the dead-letter queue, then deletes it from this
// queue. The dead-letter queue is the DeadLetterQueue option's, else the
// one of the queue's RedrivePolicy; without either, DeadLetter fails with
// an error wrapping crew.ErrPermanent. A message whose lease has ended is
// ErrLeaseLost and is not sent. If the delete fails after the send, the
// message is in both queues: a later delivery dead-letters it again.
func (q *Queue) DeadLetter(ctx context.Context, m *queue.Message, reason error) error {
	r, err := receiptOf(m)
	if err != nil {
		return err
	}
	if !r.live() {
		return leaseLost(m)
	}
	dlq, err := q.deadLetterURL(ctx)
	if err != nil {
		return err
	}
	why := "dead-lettered"
	if reason != nil {
		why = reason.Error()
	}
	note, _ := json.Marshal(deadNote{ID: deadID(m), Reason: why, At: time.Now().UTC(), FirstReceived: m.FirstReceived.UTC()})
	attrs := map[string]types.MessageAttributeValue{
		deadAttr: {DataType: aws.String("String"), StringValue: aws.String(string(note))},
	}
	for k, v := range m.Attributes {
		if k != deadAttr {
			attrs[k] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
		}
	}
	in := &awssqs.SendMessageInput{QueueUrl: &dlq, MessageBody: aws.String(string(m.Body)), MessageAttributes: attrs}
	if strings.HasSuffix(dlq, ".fifo") {
		in.MessageGroupId, in.MessageDeduplicationId = aws.String("dead"), aws.String(m.ID)
	}
	if _, err := q.client.SendMessage(ctx, in); err != nil {
		return classify("dead-letter "+describe(m), err)
	}
	if err := q.deleteBatch(ctx, []*queue.Message{m}); err != nil {
		return err
	}
	return nil
}

// deadID is the ID a dead letter keeps: the one it had in this queue.
func deadID(m *queue.Message) string {
	var n deadNote
	if v, ok := m.Attributes[deadAttr]; ok && json.Unmarshal([]byte(v), &n) == nil && n.ID != "" {
		return n.ID
	}
	return m.ID
}

// errNoDeadLetterQueue is the error for a queue without a dead-letter queue.
var errNoDeadLetterQueue = fmt.Errorf("no dead-letter queue: give it a RedrivePolicy, or use the DeadLetterQueue option: %w", work.ErrPermanent)

// deadLetterURL returns the dead-letter queue's URL, reading the queue's
// RedrivePolicy the first time.
func (q *Queue) deadLetterURL(ctx context.Context) (string, error) {
	q.dlqMu.Lock()
	defer q.dlqMu.Unlock()
	if q.dlqURL != "" {
		return q.dlqURL, nil
	}
	out, err := q.client.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{
		QueueUrl:       &q.url,
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameRedrivePolicy},
	})
	if err != nil {
		return "", classify("read the redrive policy", err)
	}
	var policy struct {
		Target string `json:"deadLetterTargetArn"`
	}
	raw := out.Attributes[string(types.QueueAttributeNameRedrivePolicy)]
	if raw == "" || json.Unmarshal([]byte(raw), &policy) != nil || policy.Target == "" {
		return "", fmt.Errorf("sqs: queue %s: %w", q.url, errNoDeadLetterQueue)
	}
	// arn:aws:sqs:REGION:ACCOUNT:NAME
	parts := strings.Split(policy.Target, ":")
	if len(parts) != 6 {
		return "", fmt.Errorf("sqs: queue %s: dead-letter target %q is not an SQS queue ARN: %w", q.url, policy.Target, work.ErrPermanent)
	}
	u, err := q.client.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: &parts[5], QueueOwnerAWSAccountId: &parts[4]})
	if err != nil {
		return "", classify("find the dead-letter queue "+policy.Target, err)
	}
	q.dlqURL = aws.ToString(u.QueueUrl)
	return q.dlqURL, nil
}

// Stats holds SQS's approximate counts of a queue's messages:
// ApproximateNumberOfMessages (Ready), ...NotVisible (Leased), ...Delayed
// (Delayed), and the dead-letter queue's ApproximateNumberOfMessages (Dead;
// 0 without one). It is the type every crew backend counts with.
type Stats = queue.Depth

// Stats reads the approximate counts of the queue and of its dead-letter
// queue, if it has one. SQS updates them within about a minute.
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	counts, err := q.counts(ctx, q.url)
	if err != nil {
		return Stats{}, err
	}
	s := Stats{
		Ready:   counts[types.QueueAttributeNameApproximateNumberOfMessages],
		Leased:  counts[types.QueueAttributeNameApproximateNumberOfMessagesNotVisible],
		Delayed: counts[types.QueueAttributeNameApproximateNumberOfMessagesDelayed],
	}
	dlq, err := q.deadLetterURL(ctx)
	if errors.Is(err, errNoDeadLetterQueue) {
		return s, nil // no dead-letter queue
	}
	if err != nil {
		return s, err
	}
	dead, err := q.counts(ctx, dlq)
	if err != nil {
		return s, err
	}
	s.Dead = dead[types.QueueAttributeNameApproximateNumberOfMessages] +
		dead[types.QueueAttributeNameApproximateNumberOfMessagesNotVisible] +
		dead[types.QueueAttributeNameApproximateNumberOfMessagesDelayed]
	return s, nil
}

func (q *Queue) counts(ctx context.Context, url string) (map[types.QueueAttributeName]int, error) {
	names := []types.QueueAttributeName{
		types.QueueAttributeNameApproximateNumberOfMessages,
		types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		types.QueueAttributeNameApproximateNumberOfMessagesDelayed,
	}
	out, err := q.client.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: names})
	if err != nil {
		return nil, classify("read the counts of "+url, err)
	}
	counts := make(map[types.QueueAttributeName]int, len(names))
	for _, n := range names {
		counts[n], _ = strconv.Atoi(out.Attributes[string(n)])
	}
	return counts, nil
}

// Dead lists the dead letters, oldest first. SQS cannot list a queue: Dead
// receives every message of the dead-letter queue (each stays leased for
// up to a minute while it does), until a one-second long poll finds
// nothing more, and then releases them all, so a consumer of the
// dead-letter queue itself would be held back meanwhile.
func (q *Queue) Dead(ctx context.Context) ([]DeadMessage, error) {
	var out []DeadMessage
	err := q.scanDead(ctx, func(m *queue.Message, d DeadMessage) scanAction {
		out = append(out, d)
		return keep
	})
	slices.SortStableFunc(out, func(a, b DeadMessage) int { return a.At.Compare(b.At) })
	return out, err
}

// Redrive sends the named dead letters (all of them when no ID is given)
// back to the queue, ready at once, with their attributes but without the
// dead-letter record, and returns how many it moved. IDs are those Dead
// lists; SQS gives each redriven message a new ID.
func (q *Queue) Redrive(ctx context.Context, ids ...string) (int, error) {
	n := 0
	var errs []error
	err := q.scanDead(ctx, func(m *queue.Message, d DeadMessage) scanAction {
		if len(ids) > 0 && !slices.Contains(ids, d.Message.ID) {
			return keep
		}
		attrs := map[string]string{}
		for k, v := range m.Attributes {
			if k != deadAttr {
				attrs[k] = v
			}
		}
		opts := []queue.PublishOption{}
		for k, v := range attrs {
			opts = append(opts, queue.Attribute(k, v))
		}
		if _, err := q.Publish(ctx, m.Body, opts...); err != nil {
			errs = append(errs, fmt.Errorf("redrive %s: %w", d.Message.ID, err))
			return keep
		}
		n++
		return remove
	})
	return n, errors.Join(append(errs, err)...)
}

// Purge deletes every dead letter and returns how many it deleted.
func (q *Queue) Purge(ctx context.Context) (int, error) {
	n := 0
	err := q.scanDead(ctx, func(*queue.Message, DeadMessage) scanAction {
		n++
		return remove
	})
	return n, err
}

type scanAction int

const (
	keep scanAction = iota
	remove
)

// scanDead receives every message of the dead-letter queue, calls fn on
// each, then deletes those fn removes and releases the others.
func (q *Queue) scanDead(ctx context.Context, fn func(*queue.Message, DeadMessage) scanAction) error {
	url, err := q.deadLetterURL(ctx)
	if err != nil {
		return err
	}
	dlq := &Queue{client: q.client, url: url, fifo: strings.HasSuffix(url, ".fifo")}
	var kept, removed []*queue.Message
	defer func() { dlq.release(kept) }()
	seen := map[string]bool{}
	// Short polls (no wait) are quick, but each asks only some of SQS's
	// servers and can answer nothing while messages remain: the scan ends
	// only when a long poll, which asks them all, finds nothing either.
	var wait time.Duration
	for {
		msgs, err := dlq.receive(ctx, maxBatch, time.Minute, wait)
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			if wait > 0 {
				break
			}
			wait = time.Second
			continue
		}
		wait = 0
		for _, m := range msgs {
			if seen[m.ID] {
				kept = append(kept, m)
				continue
			}
			seen[m.ID] = true
			if fn(m, deadMessage(m)) == remove {
				removed = append(removed, m)
			} else {
				kept = append(kept, m)
			}
		}
	}
	return dlq.Ack(ctx, removed...)
}

// deadMessage reads the dead-letter record of a message of the dead-letter
// queue.
func deadMessage(m *queue.Message) DeadMessage {
	d := DeadMessage{Message: &queue.Message{ID: m.ID, Body: m.Body, Attempt: m.Attempt}}
	var n deadNote
	if v, ok := m.Attributes[deadAttr]; ok && json.Unmarshal([]byte(v), &n) == nil {
		d.Message.ID, d.Reason, d.At, d.Message.FirstReceived = n.ID, n.Reason, n.At, n.FirstReceived
	}
	for k, v := range m.Attributes {
		if k != deadAttr {
			if d.Message.Attributes == nil {
				d.Message.Attributes = map[string]string{}
			}
			d.Message.Attributes[k] = v
		}
	}
	return d
}
