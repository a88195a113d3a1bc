package sqs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/work"
)

// receipt is the lease of one received copy of a message, as this process
// knows it. SQS does not reliably refuse a stale receipt handle (deleting
// with one "succeeds, but the message might not be deleted"), so the Queue
// fences receipts itself: once the lease it knows of has ended, or the
// copy was settled, every call with the receipt is ErrLeaseLost without
// asking SQS.
type receipt struct {
	handle   string
	received time.Time // when the receive request started: SQS's 12 hours count from about then

	mu       sync.Mutex
	deadline time.Time // the lease ends no later than this
	ended    bool      // settled: acked, released, retried or dead-lettered
}

// fenceMargin is how long before its deadline a lease counts as ended: a
// request sent later might reach SQS after the lease has passed on.
const fenceMargin = 100 * time.Millisecond

// live reports whether the lease is still held.
func (r *receipt) live() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.ended && time.Until(r.deadline) > fenceMargin
}

func (r *receipt) end() {
	r.mu.Lock()
	r.ended = true
	r.mu.Unlock()
}

func (r *receipt) extendTo(deadline time.Time) {
	r.mu.Lock()
	r.deadline = deadline
	r.mu.Unlock()
}

// receiptOf returns m's receipt, or an error if m did not come from a
// Queue's Receive.
func receiptOf(m *queue.Message) (*receipt, error) {
	r, ok := m.Receipt.(*receipt)
	if !ok || r == nil {
		return nil, fmt.Errorf("sqs: %s was not received from an SQS queue", describe(m))
	}
	return r, nil
}

// leaseLost is the error for a message whose lease has passed on.
func leaseLost(m *queue.Message) error {
	return &queue.LeaseLostError{ID: m.ID, Err: fmt.Errorf("sqs: %s: %w", describe(m), queue.ErrLeaseLost)}
}

// Ack deletes msgs with DeleteMessageBatch, ten a call. Every entry that
// SQS reports failed is looked at: an invalid or expired receipt is
// a *queue.LeaseLostError for that message; any other failure is retried twice, then
// returned. A message whose lease this process knows to have ended is not
// sent at all and is ErrLeaseLost. The others are deleted whatever happens
// to those; the error joins one error per message that was not.
func (q *Queue) Ack(ctx context.Context, msgs ...*queue.Message) error {
	var errs []error
	var live []*queue.Message
	for _, m := range msgs {
		r, err := receiptOf(m)
		switch {
		case err != nil:
			errs = append(errs, err)
		case !r.live():
			errs = append(errs, leaseLost(m))
		default:
			live = append(live, m)
		}
	}
	for chunk := range slices.Chunk(live, maxBatch) {
		errs = append(errs, q.deleteBatch(ctx, chunk))
	}
	return errors.Join(errs...)
}

// ackAttempts is how many times a batch entry that failed for a reason
// other than its receipt is sent.
const ackAttempts = 3

func (q *Queue) deleteBatch(ctx context.Context, msgs []*queue.Message) error {
	var errs []error
	for attempt := 1; len(msgs) > 0; attempt++ {
		entries := make([]types.DeleteMessageBatchRequestEntry, len(msgs))
		for i, m := range msgs {
			entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: &m.Receipt.(*receipt).handle}
		}
		out, err := q.client.DeleteMessageBatch(ctx, &awssqs.DeleteMessageBatchInput{QueueUrl: &q.url, Entries: entries})
		if err != nil {
			return errors.Join(append(errs, classify("ack", err))...)
		}
		for _, ok := range out.Successful {
			if i, err := strconv.Atoi(aws.ToString(ok.Id)); err == nil && i < len(msgs) {
				msgs[i].Receipt.(*receipt).end()
			}
		}
		var retry []*queue.Message
		for _, f := range out.Failed {
			i, err := strconv.Atoi(aws.ToString(f.Id))
			if err != nil || i >= len(msgs) {
				errs = append(errs, fmt.Errorf("sqs: ack: SQS reported a failure for unknown entry %q: %s", aws.ToString(f.Id), aws.ToString(f.Message)))
				continue
			}
			m := msgs[i]
			switch code := aws.ToString(f.Code); {
			case staleReceipt(code):
				m.Receipt.(*receipt).end()
				errs = append(errs, leaseLost(m))
			case attempt < ackAttempts && !f.SenderFault:
				retry = append(retry, m)
			default:
				errs = append(errs, fmt.Errorf("sqs: ack %s: %s: %s", describe(m), code, aws.ToString(f.Message)))
			}
		}
		msgs = retry
	}
	return errors.Join(errs...)
}

// Nack makes m visible again after delay, rounded up to whole seconds and
// cut to what is left of SQS's 12 hours since m was received, with
// ChangeMessageVisibility. The receipt is spent: later calls with it are
// ErrLeaseLost.
func (q *Queue) Nack(ctx context.Context, m *queue.Message, delay time.Duration) error {
	r, err := receiptOf(m)
	if err != nil {
		return err
	}
	if !r.live() {
		return leaseLost(m)
	}
	vis := time.Duration(0)
	if delay > 0 {
		vis = min(visibility(delay), time.Until(r.received.Add(MaxVisibility)).Truncate(time.Second))
	}
	if err := q.changeVisibility(ctx, m, r, max(vis, 0)); err != nil {
		return err
	}
	r.end()
	return nil
}

// Extend asks SQS to keep m leased for lease from now (whole seconds) with
// ChangeMessageVisibility. SQS keeps a message leased for at most 12 hours
// after it was received: past that, Extend returns an error wrapping both
// queue.ErrLeaseLost and ErrVisibilityLimit, and near it, it extends only to
// the limit.
func (q *Queue) Extend(ctx context.Context, m *queue.Message, lease time.Duration) error {
	r, err := receiptOf(m)
	if err != nil {
		return err
	}
	if !r.live() {
		return leaseLost(m)
	}
	start := time.Now()
	left := r.received.Add(MaxVisibility).Sub(start).Truncate(time.Second)
	if left < time.Second {
		r.end()
		return fmt.Errorf("sqs: extend %s: %w (%w)", describe(m), queue.ErrLeaseLost, ErrVisibilityLimit)
	}
	vis := min(visibility(lease), left)
	if err := q.changeVisibility(ctx, m, r, vis); err != nil {
		return err
	}
	r.extendTo(start.Add(vis))
	return nil
}

func (q *Queue) changeVisibility(ctx context.Context, m *queue.Message, r *receipt, vis time.Duration) error {
	_, err := q.client.ChangeMessageVisibility(ctx, &awssqs.ChangeMessageVisibilityInput{
		QueueUrl:          &q.url,
		ReceiptHandle:     &r.handle,
		VisibilityTimeout: int32(vis / time.Second),
	})
	var api smithy.APIError
	if errors.As(err, &api) && staleReceipt(api.ErrorCode()) {
		r.end()
		return leaseLost(m)
	}
	if err != nil {
		return classify("change visibility of "+describe(m), err)
	}
	return nil
}

// staleReceipt reports whether an SQS error code means that a receipt no
// longer holds its message.
func staleReceipt(code string) bool {
	switch code {
	case "ReceiptHandleIsInvalid", "MessageNotInflight", "InvalidParameterValue",
		"AWS.SimpleQueueService.MessageNotInflight", "ReceiptHandleIsInvalidException":
		return true
	}
	return false
}

// classify wraps an error of an SQS call, marking with crew.ErrPermanent
// those that retrying cannot clear: a queue that does not exist, and
// credentials or permissions that SQS refuses.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist",
			"AccessDenied", "AccessDeniedException", "InvalidClientTokenId",
			"UnrecognizedClientException", "SignatureDoesNotMatch", "InvalidSecurity",
			"KmsAccessDenied", "KmsDisabled", "KmsNotFound", "KmsInvalidState", "InvalidAddress":
			return fmt.Errorf("sqs: %s: %w (%w)", op, err, work.ErrPermanent)
		}
	}
	return fmt.Errorf("sqs: %s: %w", op, err)
}
