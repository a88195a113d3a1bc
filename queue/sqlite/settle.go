package sqlite

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/crewgo/crew/queue"
)

// fence returns the key of m's current delivery: its row ID and receipt. A
// message that this queue did not deliver has none, and settling it fails
// with queue.ErrLeaseLost. (Whether the receipt is of this queue is known
// only with the writer: see ours.)
func (q *Queue) fence(m *queue.Message) (id int64, r receipt, err error) {
	r, ok := m.Receipt.(receipt)
	id, perr := strconv.ParseInt(m.ID, 10, 64)
	if !ok || perr != nil {
		return 0, receipt{}, &queue.LeaseLostError{ID: m.ID, Err: fmt.Errorf("sqlite: queue %q: message %s was not received from this queue: %w", q.name, m.ID, queue.ErrLeaseLost)}
	}
	return id, r, nil
}

// ours reports whether r is a receipt of this queue, whose row ID is qid
// (0 if it has none). It runs with the writer.
func (r receipt) ours(qid int64) bool { return qid != 0 && r.queue == qid }

func (q *Queue) leaseLost(m *queue.Message) error {
	return &queue.LeaseLostError{ID: m.ID, Err: fmt.Errorf("sqlite: queue %q: message %s: %w", q.name, m.ID, queue.ErrLeaseLost)}
}

// Ack deletes the messages, in one transaction. A message whose lease has
// passed on (it was received again, nacked, dead-lettered or deleted since
// this copy was received) is left alone and reported as a
// *queue.LeaseLostError in the joined error; the others are still deleted.
// If the database fails, nothing is deleted.
func (q *Queue) Ack(ctx context.Context, msgs ...*queue.Message) error {
	if err := q.check(); err != nil {
		return err
	}
	type ack struct {
		m       *queue.Message
		id      int64
		r       receipt
		deleted bool
	}
	acks := make([]ack, 0, len(msgs))
	var lost []error
	for _, m := range msgs {
		id, r, err := q.fence(m)
		if err != nil {
			lost = append(lost, err)
			continue
		}
		acks = append(acks, ack{m: m, id: id, r: r})
	}
	if len(acks) == 0 {
		return errors.Join(lost...)
	}
	err := q.db.write(ctx, func(w *writer) error {
		qid, err := q.rowID(w, false)
		if err != nil {
			return err
		}
		for i := range acks {
			a := &acks[i]
			if !a.r.ours(qid) {
				continue
			}
			n, err := w.exec(sqlAck, a.r.queue, a.r.priority, a.id, a.r.token)
			if err != nil {
				return err
			}
			a.deleted = n > 0 // a second copy of the message finds none
		}
		return nil
	})
	if err != nil {
		return q.wrap(err, "ack")
	}
	for _, a := range acks {
		if !a.deleted {
			lost = append(lost, q.leaseLost(a.m))
		}
	}
	return errors.Join(lost...)
}

// Nack gives up m's lease: m becomes ready again after delay (at once for
// zero or less), keeps its attempt count, and m's receipt is no longer
// valid. It fails with an error wrapping queue.ErrLeaseLost, and changes
// nothing, if m's lease has passed on.
func (q *Queue) Nack(ctx context.Context, m *queue.Message, delay time.Duration) error {
	t := now()
	err := q.settle(ctx, m, "nack", func(w *writer, id int64, r receipt) (bool, error) {
		if delay > 0 {
			return setAside(w, id, r, stateDelayed, after(t, delay), nil)
		}
		n, err := w.exec(sqlRelease, r.queue, r.priority, id, r.token)
		return n > 0, err
	})
	if err == nil {
		q.notify() // a waiting Receive takes it, or waits for its delay
	}
	return err
}

// Extend makes m's lease end lease from now, even if it had run out, as
// long as nobody has received m since. It fails with an error wrapping
// queue.ErrLeaseLost, and changes nothing, if m's lease has passed on.
func (q *Queue) Extend(ctx context.Context, m *queue.Message, lease time.Duration) error {
	if lease <= 0 {
		return fmt.Errorf("sqlite: queue %q: Extend(message %s, lease=%v): lease must be positive", q.name, m.ID, lease)
	}
	end := after(now(), lease)
	return q.settle(ctx, m, "extend", func(w *writer, id int64, r receipt) (bool, error) {
		n, err := w.exec(sqlExtend, r.queue, r.priority, id, r.token, end)
		return n > 0, err
	})
}

// DeadLetter moves m to the queue's dead letters with reason's text (see
// [Queue.Dead]); it is never received again unless redriven. It fails with
// an error wrapping queue.ErrLeaseLost, and changes nothing, if m's lease
// has passed on.
func (q *Queue) DeadLetter(ctx context.Context, m *queue.Message, reason error) error {
	text := "dead-lettered"
	if reason != nil {
		text = reason.Error()
	}
	t := now()
	return q.settle(ctx, m, "dead-letter", func(w *writer, id int64, r receipt) (bool, error) {
		return setAside(w, id, r, stateDead, t, text)
	})
}

// setAside moves message id, if it still carries r, from ready to the
// messages table, in state with readyAt and reason (see the schema), and
// reports whether it did.
func setAside(w *writer, id int64, r receipt, state, readyAt int64, reason any) (bool, error) {
	n, err := w.exec(sqlSetAside, r.queue, r.priority, id, r.token, state, readyAt, reason)
	if err != nil || n == 0 {
		return false, err
	}
	_, err = w.exec(sqlLeaveReady, r.queue, r.priority, id)
	return true, err
}

// settle runs op on m with the writer, given m's row ID and receipt once
// they are known to be of this queue; op reports whether m still carried
// the receipt, and so was settled.
func (q *Queue) settle(ctx context.Context, m *queue.Message, name string, op func(w *writer, id int64, r receipt) (bool, error)) error {
	if err := q.check(); err != nil {
		return err
	}
	id, r, err := q.fence(m)
	if err != nil {
		return err
	}
	var settled bool
	err = q.db.write(ctx, func(w *writer) error {
		qid, err := q.rowID(w, false)
		if err != nil || !r.ours(qid) {
			return err
		}
		settled, err = op(w, id, r)
		return err
	})
	if err != nil {
		return q.wrap(err, name+" message "+m.ID)
	}
	if !settled {
		return q.leaseLost(m)
	}
	return nil
}
