package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/crewgo/crew/work"
)

// counters are a Consumer's counts, read by Consumer.Stats.
type counters struct {
	received, held, running, postponed            atomic.Int64
	succeeded, retried, dead, released, leaseLost atomic.Int64
}

// of returns the counter of outcome o.
func (n *counters) of(o Outcome) *atomic.Int64 {
	switch o {
	case Succeeded:
		return &n.succeeded
	case Retried:
		return &n.retried
	case DeadLettered:
		return &n.dead
	case Released:
		return &n.released
	default:
		return &n.leaseLost
	}
}

// reporter is the one place where what became of a message turns into the
// consumer's counters, its OnResult call, or, without OnResult, a log line.
type reporter struct {
	counts   *counters
	onResult func(Result)
	log      *slog.Logger
}

// report counts res, then hands it to OnResult or logs it.
func (rp *reporter) report(res Result) {
	rp.counts.of(res.Outcome).Add(1)
	if rp.onResult != nil {
		rp.onResult(res)
		return
	}
	m := res.Message
	switch res.Outcome {
	case Succeeded:
		rp.log.Debug("queue: message handled", "id", m.ID, "attempt", m.Attempt, "elapsed", res.Elapsed)
	case Retried:
		rp.log.Warn("queue: handler failed; will retry", "id", m.ID, "attempt", m.Attempt, "retry_in", res.Delay, "err", res.Err)
	case DeadLettered:
		rp.log.Error("queue: message dead-lettered", "id", m.ID, "attempt", m.Attempt, "err", res.Err)
	case Released:
		rp.log.Info("queue: message released", "id", m.ID, "attempt", m.Attempt, "err", res.Err)
	case LeaseLost:
		rp.log.Warn("queue: lease lost; the message will be handled again", "id", m.ID, "err", res.Err)
	}
}

// source makes the calls that settle messages, for every part of a
// consumer: it logs their failures and stops the consumer (fail) on an
// error that will never clear. ops outlives the stop, so that a draining
// consumer can still settle what it holds.
type source struct {
	Source
	ops  context.Context
	log  *slog.Logger
	fail func(error)
}

// check logs err, a failure of op on message id, and stops the consumer
// if it will never clear.
func (s *source) check(err error, op, id string) {
	s.log.Warn("queue: "+op+" failed", "id", id, "err", err)
	if permanent(err) {
		s.fail(fmt.Errorf("queue: %s message %s: %w", op, id, err))
	}
}

// nack gives m back after delay; op names the step for the log. A lost
// lease needs no giving back; the lease of a message whose nack failed
// expires and the message comes back all the same.
func (s *source) nack(m *Message, delay time.Duration, op string) {
	if err := s.Nack(s.ops, m, delay); err != nil && !errors.Is(err, ErrLeaseLost) {
		s.check(err, op, m.ID)
	}
}

// deadLetter moves m to the dead letters, recording reason.
func (s *source) deadLetter(m *Message, reason error) {
	if err := s.DeadLetter(s.ops, m, reason); err != nil {
		s.check(err, "dead-letter", m.ID)
	}
}

// permanent reports whether a Source's error will never clear, by the
// convention every Source follows: it wraps crew.ErrPermanent.
func permanent(err error) bool { return errors.Is(err, work.ErrPermanent) }
