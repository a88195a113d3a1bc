package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/work"
)

// receipt is one delivery of a message to this Queue: the ack subject that
// settles it and the time by which the server may deliver it again.
type receipt struct {
	seq      uint64
	reply    string
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
		pctx, cancel := withTimeout(ctx)
		raw, err := q.mux.pull(pctx, q.pullAPI, max)
		cancel()
		msgs := q.take(raw, start)
		if err != nil || len(msgs) > 0 {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return q.lease(ctx, msgs, lease, lease != q.ackWait), q.classify(err)
		}
		msgs, err = q.wait(ctx)
		if len(msgs) > 0 {
			// Its lease may have begun long before it arrived.
			return q.lease(ctx, msgs, lease, true), ctx.Err()
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return nil, q.classify(err)
		}
	}
}

// wait waits up to longPoll for one message, with a pull request for one.
func (q *Queue) wait(ctx context.Context) ([]*queue.Message, error) {
	start := time.Now()
	pctx, cancel := context.WithTimeout(ctx, longPoll)
	defer cancel()
	opts := []natsjs.FetchOpt{natsjs.FetchContext(pctx)}
	if deadline, _ := pctx.Deadline(); time.Until(deadline) >= longPoll/2 {
		// A pull request dies with a restarting server; missing
		// heartbeats tell, sooner than nats.go's default.
		opts = append(opts, natsjs.FetchHeartbeat(pollHeartbeat))
	}
	batch, err := q.cons.Fetch(1, opts...)
	if err != nil {
		return nil, err
	}
	var raw []*nats.Msg
	for m := range batch.Messages() {
		raw = append(raw, &nats.Msg{Reply: m.Reply(), Header: m.Headers(), Data: m.Data()})
	}
	return q.take(raw, start), batch.Error()
}

// take turns delivered messages into queue messages, holding each under
// a new receipt whose deadline counts from start, when the server could
// have delivered it first. A first delivery's FirstReceived is now, when
// it arrived: JetStream records no time of delivery, so a redelivery's
// stays zero.
func (q *Queue) take(raw []*nats.Msg, start time.Time) []*queue.Message {
	out := make([]*queue.Message, 0, len(raw))
	now := time.Now()
	for _, m := range raw {
		seq, delivered, ok := ackInfo(m.Reply)
		if !ok {
			continue // not a JetStream message; nothing to settle
		}
		r := &receipt{seq: seq, reply: m.Reply, deadline: start.Add(q.ackWait)}
		id := m.Header.Get(hdrID)
		if id == "" {
			id = strconv.FormatUint(seq, 10)
		}
		msg := &queue.Message{
			ID:         id,
			Body:       m.Data,
			Attributes: attributes(m.Header),
			Attempt:    int(delivered),
			Receipt:    r,
		}
		if delivered == 1 {
			msg.FirstReceived = now
		}
		out = append(out, msg)
		q.mu.Lock()
		q.held[seq] = r
		q.mu.Unlock()
	}
	return out
}

// ackInfo reads a delivered message's stream sequence and delivery count
// from its reply subject: $JS.ACK.<stream>.<consumer>.<delivered>.<stream
// seq>.<consumer seq>.<time>.<pending>, or the same after a domain and an
// account hash (and before a random token) on newer servers.
func ackInfo(reply string) (seq, delivered uint64, ok bool) {
	tokens := strings.Split(reply, ".")
	if len(tokens) < 9 || tokens[0] != "$JS" || tokens[1] != "ACK" {
		return 0, 0, false
	}
	i := 4 // the delivery count
	if len(tokens) >= 11 {
		i = 6
	}
	delivered, err1 := strconv.ParseUint(tokens[i], 10, 64)
	seq, err2 := strconv.ParseUint(tokens[i+1], 10, 64)
	return seq, delivered, err1 == nil && err2 == nil
}

// lease sets the lease of freshly received messages when reset is true,
// with one confirmed request each, sent together. A message whose request
// fails keeps the lease it had, which ends no later than the server's.
func (q *Queue) lease(ctx context.Context, msgs []*queue.Message, lease time.Duration, reset bool) []*queue.Message {
	if !reset || len(msgs) == 0 {
		return msgs
	}
	receipts := make([]*receipt, len(msgs))
	replies := make([]string, len(msgs))
	for i, m := range msgs {
		receipts[i] = m.Receipt.(*receipt)
		replies[i] = receipts[i].reply
	}
	_ = q.renew(context.WithoutCancel(ctx), receipts, replies, lease)
	return msgs
}

// renew makes the receipts' messages due for redelivery lease from now,
// and records that deadline for each that the server confirmed. A lease of
// AckWait is an InProgress; any other, a Nak with that delay, which
// JetStream applies to the redelivery timer of the delivered message in
// the same way.
func (q *Queue) renew(ctx context.Context, receipts []*receipt, replies []string, lease time.Duration) []error {
	body := []byte("+WPI")
	if lease != q.ackWait {
		body = nakDelay(lease)
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	sent := time.Now()
	errs := q.mux.confirm(ctx, replies, body)
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, r := range receipts {
		if errs[i] == nil && q.held[r.seq] == r {
			r.deadline = sent.Add(lease)
		}
	}
	return errs
}

func nakDelay(d time.Duration) []byte {
	return fmt.Appendf(nil, `-NAK {"delay": %d}`, d.Nanoseconds())
}

// request sends an acknowledgement of kind body for r and waits for the
// server to confirm it.
func (q *Queue) request(ctx context.Context, r *receipt, body []byte) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	return q.mux.confirm(ctx, []string{r.reply}, body)[0]
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
		return nil, &queue.LeaseLostError{ID: m.ID, Err: fmt.Errorf("jetstream: message %s: %w", m.ID, queue.ErrLeaseLost)}
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

// Ack deletes handled messages with a confirmed acknowledgement each, as
// DoubleAck sends, all sent at once before it waits for the server's
// replies. A message whose lease ended, or that this Queue received again
// since, is not acknowledged and is reported as a *queue.LeaseLostError; the
// others are still acknowledged.
func (q *Queue) Ack(ctx context.Context, msgs ...*queue.Message) error {
	errs := make([]error, len(msgs))
	var held []*receipt
	var replies []string
	var which []int
	for i, m := range msgs {
		r, err := q.current(m)
		if err != nil {
			errs[i] = err
			continue
		}
		held = append(held, r)
		replies = append(replies, r.reply)
		which = append(which, i)
	}
	if len(held) > 0 {
		ctx, cancel := withTimeout(ctx)
		defer cancel()
		for j, err := range q.mux.confirm(ctx, replies, []byte("+ACK")) {
			if id := msgs[which[j]].ID; errors.Is(err, queue.ErrLeaseLost) {
				errs[which[j]] = &queue.LeaseLostError{ID: id, Err: fmt.Errorf("jetstream: ack %s: %w", id, err)}
				continue
			} else if err != nil {
				errs[which[j]] = fmt.Errorf("jetstream: ack %s: %w", id, err)
				continue
			}
			q.settle(held[j])
		}
	}
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
	if err := q.renew(ctx, []*receipt{r}, []string{r.reply}, lease)[0]; err != nil {
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
		return fmt.Errorf("jetstream: queue %s: %w: %w", q.name, err, work.ErrPermanent)
	case errors.Is(err, nats.ErrNoResponders):
		// Nobody answers for the consumer: it is gone, or the server is
		// restarting. Ask.
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		if _, ierr := q.cons.Info(ctx); errors.Is(ierr, natsjs.ErrConsumerNotFound) || errors.Is(ierr, natsjs.ErrStreamNotFound) {
			return fmt.Errorf("jetstream: queue %s: %w: %w", q.name, ierr, work.ErrPermanent)
		}
	}
	return fmt.Errorf("jetstream: queue %s: receive: %w", q.name, err)
}
