package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/crewgo/crew"
	"github.com/crewgo/crew/queue"
)

// receipt is one delivery of a message to this Queue: the ack subject that
// settles it and the time by which the server may deliver it again.
type receipt struct {
	seq      uint64
	reply    string
	msg      natsjs.Msg
	deadline time.Time // guarded by Queue.mu
}

// longPoll bounds one pull request of a Receive that waits, so that a
// request lost with a restarted server is soon replaced.
const longPoll = 20 * time.Second

// pollHeartbeat is how often the server shows that a long poll's pull
// request is alive.
const pollHeartbeat = 2 * time.Second

// Receive returns up to max messages, leased for lease, waiting until at
// least one is ready or ctx ends. It never asks the server for more
// messages than max, so nothing is leased to this process that it did not
// ask for: it first takes what is ready at once (a no-wait pull of max),
// and only when nothing is, waits for one message (a pull of one, renewed
// every 20 seconds).
//
// The lease is the consumer's AckWait. A lease of another length costs one
// confirmed request per message, which moves its redelivery to lease from
// now. A message that arrives after a wait is confirmed the same way, so
// that its lease counts from its arrival.
//
// When ctx ends, Receive returns ctx's error together with any message that
// arrived meanwhile. A lost connection is an error that clears when the
// client reconnects; a deleted stream or consumer, or a permission
// error, is one that wraps crew.ErrPermanent.
func (q *Queue) Receive(ctx context.Context, max int, lease time.Duration) ([]*queue.Message, error) {
	if max <= 0 || lease <= 0 {
		return nil, fmt.Errorf("jetstream: Receive(max=%d, lease=%v): both must be positive", max, lease)
	}
	q.sweep()
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		start := time.Now()
		batch, err := q.cons.FetchNoWait(max)
		if err != nil {
			return nil, q.classify(err)
		}
		msgs, err := q.take(batch, start)
		if err != nil || len(msgs) > 0 {
			return q.lease(ctx, msgs, lease, lease != q.ackWait), q.classify(err)
		}
		start = time.Now()
		pctx, cancel := context.WithTimeout(ctx, longPoll)
		opts := []natsjs.FetchOpt{natsjs.FetchContext(pctx)}
		if deadline, _ := pctx.Deadline(); time.Until(deadline) >= longPoll/2 {
			// A pull request dies with a restarting server; missing
			// heartbeats tell, sooner than nats.go's default.
			opts = append(opts, natsjs.FetchHeartbeat(pollHeartbeat))
		}
		batch, err = q.cons.Fetch(1, opts...)
		if err != nil {
			cancel()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, q.classify(err)
		}
		msgs, err = q.take(batch, start)
		cancel()
		if len(msgs) > 0 {
			msgs = q.lease(ctx, msgs, lease, true)
			if ctx.Err() != nil {
				return msgs, ctx.Err()
			}
			return msgs, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return nil, q.classify(err)
		}
	}
}

// take collects a fetch's messages, holding each under a new receipt whose
// deadline counts from start, when the server could have delivered it
// first.
func (q *Queue) take(batch natsjs.MessageBatch, start time.Time) ([]*queue.Message, error) {
	var out []*queue.Message
	for jm := range batch.Messages() {
		meta, err := jm.Metadata()
		if err != nil {
			continue // not a JetStream message; nothing to settle
		}
		r := &receipt{seq: meta.Sequence.Stream, reply: jm.Reply(), msg: jm, deadline: start.Add(q.ackWait)}
		h := jm.Headers()
		id := h.Get(hdrID)
		if id == "" {
			id = strconv.FormatUint(r.seq, 10)
		}
		out = append(out, &queue.Message{
			ID:         id,
			Body:       jm.Data(),
			Attributes: attributes(h),
			Attempt:    int(meta.NumDelivered),
			Receipt:    r,
		})
		q.mu.Lock()
		q.held[r.seq] = r
		q.mu.Unlock()
	}
	return out, batch.Error()
}

// lease sets the lease of freshly received messages when reset is true,
// with one concurrent confirmed request each. A message whose request
// fails keeps the lease it had, which ends no later than the server's.
func (q *Queue) lease(ctx context.Context, msgs []*queue.Message, lease time.Duration, reset bool) []*queue.Message {
	if !reset {
		return msgs
	}
	var wg sync.WaitGroup
	for _, m := range msgs {
		wg.Go(func() { _ = q.setLease(context.WithoutCancel(ctx), m.Receipt.(*receipt), lease) })
	}
	wg.Wait()
	return msgs
}

// setLease makes r's message due for redelivery lease from now, and
// records that deadline. A lease of AckWait is an InProgress; any other, a
// Nak with that delay, which JetStream applies to the redelivery timer of
// the delivered message in the same way.
func (q *Queue) setLease(ctx context.Context, r *receipt, lease time.Duration) error {
	body := []byte("+WPI")
	if lease != q.ackWait {
		body = nakDelay(lease)
	}
	sent := time.Now()
	if err := q.request(ctx, r, body); err != nil {
		return err
	}
	q.mu.Lock()
	if q.held[r.seq] == r {
		r.deadline = sent.Add(lease)
	}
	q.mu.Unlock()
	return nil
}

func nakDelay(d time.Duration) []byte {
	return fmt.Appendf(nil, `-NAK {"delay": %d}`, d.Nanoseconds())
}

// request sends an acknowledgement of kind body for r and waits for the
// server to confirm it.
func (q *Queue) request(ctx context.Context, r *receipt, body []byte) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	_, err := q.nc.RequestWithContext(ctx, r.reply, body)
	return err
}

// requestTimeout bounds a confirmation when the caller's context has no
// deadline.
const requestTimeout = 5 * time.Second

func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, requestTimeout)
}

// current checks that m's receipt is the latest delivery of m to this
// Queue and that its lease has not ended.
func (q *Queue) current(m *queue.Message) (*receipt, error) {
	r, ok := m.Receipt.(*receipt)
	if !ok {
		return nil, fmt.Errorf("jetstream: message %s was not received from this queue", m.ID)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.held[r.seq] != r || time.Now().After(r.deadline) {
		return nil, fmt.Errorf("jetstream: message %s: %w", m.ID, queue.ErrLeaseLost)
	}
	return r, nil
}

// settle forgets r: no call may use it again.
func (q *Queue) settle(r *receipt) {
	q.mu.Lock()
	if q.held[r.seq] == r {
		delete(q.held, r.seq)
	}
	q.mu.Unlock()
}

// sweep forgets receipts whose leases ended long ago, which a consumer
// that lost them never settles.
func (q *Queue) sweep() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.held) < 1024 {
		return
	}
	old := time.Now().Add(-time.Minute)
	for seq, r := range q.held {
		if r.deadline.Before(old) {
			delete(q.held, seq)
		}
	}
}

// Ack deletes handled messages with a confirmed acknowledgement each
// (DoubleAck), sent concurrently. A message whose lease ended, or that this
// Queue received again since, is not acknowledged and is reported with
// queue.ErrLeaseLost; the others are still acknowledged.
func (q *Queue) Ack(ctx context.Context, msgs ...*queue.Message) error {
	errs := make([]error, len(msgs))
	var wg sync.WaitGroup
	for i, m := range msgs {
		r, err := q.current(m)
		if err != nil {
			errs[i] = err
			continue
		}
		wg.Go(func() {
			actx, cancel := withTimeout(ctx)
			defer cancel()
			if err := r.msg.DoubleAck(actx); err != nil {
				errs[i] = fmt.Errorf("jetstream: ack %s: %w", m.ID, err)
				return
			}
			q.settle(r)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Nack gives m back: it is delivered again after delay, at once for 0 (a
// Nak, with a delay if any). Its attempt count is kept.
func (q *Queue) Nack(ctx context.Context, m *queue.Message, delay time.Duration) error {
	r, err := q.current(m)
	if err != nil {
		return err
	}
	body := []byte("-NAK")
	if delay > 0 {
		body = nakDelay(delay)
	}
	if err := q.request(ctx, r, body); err != nil {
		return fmt.Errorf("jetstream: nack %s: %w", m.ID, err)
	}
	q.settle(r)
	return nil
}

// Extend makes m's lease end lease from now: a confirmed InProgress when
// lease is the consumer's AckWait, a confirmed Nak with delay lease
// otherwise.
func (q *Queue) Extend(ctx context.Context, m *queue.Message, lease time.Duration) error {
	r, err := q.current(m)
	if err != nil {
		return err
	}
	if err := q.setLease(ctx, r, lease); err != nil {
		return fmt.Errorf("jetstream: extend %s: %w", m.ID, err)
	}
	return nil
}

// classify wraps an error that will never clear in crew.ErrPermanent.
func (q *Queue) classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, natsjs.ErrConsumerNotFound), errors.Is(err, natsjs.ErrStreamNotFound),
		errors.Is(err, natsjs.ErrConsumerDeleted), errors.Is(err, nats.ErrConnectionClosed),
		errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrPermissionViolation):
		return fmt.Errorf("jetstream: queue %s: %w: %w", q.name, err, crew.ErrPermanent)
	case errors.Is(err, nats.ErrNoResponders):
		// Nobody answers for the consumer: it is gone, or the server is
		// restarting. Ask.
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		if _, ierr := q.cons.Info(ctx); errors.Is(ierr, natsjs.ErrConsumerNotFound) || errors.Is(ierr, natsjs.ErrStreamNotFound) {
			return fmt.Errorf("jetstream: queue %s: %w: %w", q.name, ierr, crew.ErrPermanent)
		}
	}
	return fmt.Errorf("jetstream: queue %s: receive: %w", q.name, err)
}
