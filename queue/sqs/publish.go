package sqs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/crewgo/crew/queue"
)

// Attribute names that carry SQS's FIFO parameters through queue.Attribute:
// Publish sends them as the message's group and deduplication IDs, not as
// message attributes.
const (
	groupAttr = "crew.sqs.MessageGroupId"
	dedupAttr = "crew.sqs.MessageDeduplicationId"
)

// MessageGroup sets the message group of a message published to a FIFO
// queue: messages of one group are delivered, and handled, one at a time
// in the order they were published. Publishing to a FIFO queue without a
// group uses the group "default".
func MessageGroup(id string) queue.PublishOption { return queue.Attribute(groupAttr, id) }

// DeduplicationID sets the deduplication ID of a message published to a
// FIFO queue: SQS accepts only the first message with a given ID within
// five minutes. Without it, a FIFO queue needs content-based deduplication.
func DeduplicationID(id string) queue.PublishOption { return queue.Attribute(dedupAttr, id) }

// Publish sends body with SendMessage and returns SQS's message ID.
//
// A queue.Delay is rounded up to whole seconds; longer than MaxDelay (15
// minutes) is an error. Attributes become String message attributes (SQS
// takes at most 10). A message larger than MaxMessageSize, body and
// attributes together, is an error before any request. SQS has no
// priorities: queue.Priority is ignored (use one queue per priority, and
// a consumer for each).
func (q *Queue) Publish(ctx context.Context, body []byte, opts ...queue.PublishOption) (string, error) {
	in, err := q.sendInput(body, queue.NewPublishOptions(opts...))
	if err != nil {
		return "", err
	}
	out, err := q.client.SendMessage(ctx, in)
	if err != nil {
		return "", classify("publish", err)
	}
	return aws.ToString(out.MessageId), nil
}

// PublishBatch sends bodies, all with the same options, with
// SendMessageBatch, ten a call, and returns their IDs in order. A message
// that SQS refused has an empty ID, and its failure, with its index, is in
// the error, which joins every failure. Checks are those of Publish, made
// for every message before any request.
func (q *Queue) PublishBatch(ctx context.Context, bodies [][]byte, opts ...queue.PublishOption) ([]string, error) {
	o := queue.NewPublishOptions(opts...)
	inputs := make([]*awssqs.SendMessageInput, len(bodies))
	for i, b := range bodies {
		in, err := q.sendInput(b, o)
		if err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
		inputs[i] = in
	}
	ids := make([]string, len(bodies))
	var errs []error
	for start := 0; start < len(inputs); start += maxBatch {
		chunk := inputs[start:min(start+maxBatch, len(inputs))]
		entries := make([]types.SendMessageBatchRequestEntry, len(chunk))
		for i, in := range chunk {
			entries[i] = types.SendMessageBatchRequestEntry{
				Id: aws.String(strconv.Itoa(i)), MessageBody: in.MessageBody, DelaySeconds: in.DelaySeconds,
				MessageAttributes: in.MessageAttributes, MessageGroupId: in.MessageGroupId,
				MessageDeduplicationId: in.MessageDeduplicationId,
			}
		}
		out, err := q.client.SendMessageBatch(ctx, &awssqs.SendMessageBatchInput{QueueUrl: &q.url, Entries: entries})
		if err != nil {
			errs = append(errs, fmt.Errorf("messages %d to %d: %w", start, start+len(chunk)-1, classify("publish", err)))
			continue
		}
		for _, ok := range out.Successful {
			if i, err := strconv.Atoi(aws.ToString(ok.Id)); err == nil && i < len(chunk) {
				ids[start+i] = aws.ToString(ok.MessageId)
			}
		}
		for _, f := range out.Failed {
			i, _ := strconv.Atoi(aws.ToString(f.Id))
			errs = append(errs, fmt.Errorf("sqs: publish message %d: %s: %s", start+i, aws.ToString(f.Code), aws.ToString(f.Message)))
		}
	}
	return ids, errors.Join(errs...)
}

// sendInput checks one message and builds its SendMessage input.
func (q *Queue) sendInput(body []byte, o queue.PublishOptions) (*awssqs.SendMessageInput, error) {
	if o.Delay > MaxDelay {
		return nil, fmt.Errorf("sqs: delay %v is longer than the %v SQS allows", o.Delay, MaxDelay)
	}
	in := &awssqs.SendMessageInput{QueueUrl: &q.url, MessageBody: aws.String(string(body))}
	if o.Delay > 0 && q.fifo {
		return nil, errors.New("sqs: a FIFO queue takes no delay per message (set the queue's DelaySeconds instead)")
	}
	if o.Delay > 0 {
		in.DelaySeconds = int32(visibility(o.Delay) / time.Second)
	}
	size := len(body)
	for k, v := range o.Attributes {
		switch k {
		case groupAttr:
			in.MessageGroupId = aws.String(v)
			continue
		case dedupAttr:
			in.MessageDeduplicationId = aws.String(v)
			continue
		}
		if in.MessageAttributes == nil {
			in.MessageAttributes = map[string]types.MessageAttributeValue{}
		}
		in.MessageAttributes[k] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
		size += len(k) + len("String") + len(v)
	}
	if size > MaxMessageSize {
		return nil, fmt.Errorf("sqs: message of %d bytes (body and attributes) is larger than the %d bytes SQS accepts", size, MaxMessageSize)
	}
	if q.fifo && in.MessageGroupId == nil {
		in.MessageGroupId = aws.String("default")
	}
	return in, nil
}
