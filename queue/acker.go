package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/crewgo/crew/backoff"
)

// acker sends acknowledgements in batches: up to size at once, each waiting
// at most delay for others to join it. Failed batches are retried a few
// times; a message whose ack is finally lost will be delivered again. Each
// message's outcome is reported once its batch is settled: a success only
// once the acknowledgement committed, since a crash before then delivers
// the message again.
type acker struct {
	r       *run
	size    int
	delay   time.Duration
	pending chan handled
	done    chan struct{}
}

// handled is a message whose handler succeeded, waiting for its ack.
type handled struct {
	m       *Message
	elapsed time.Duration
}

func newAcker(r *run, size int, delay time.Duration) *acker {
	if size <= 0 {
		size = DefaultAckBatch
	}
	if delay <= 0 {
		delay = DefaultAckDelay
	}
	a := &acker{r: r, size: size, delay: delay, pending: make(chan handled, size), done: make(chan struct{})}
	go a.loop()
	return a
}

func (a *acker) add(m *Message, elapsed time.Duration) { a.pending <- handled{m, elapsed} }

// close flushes what is pending and waits for the acker to stop.
func (a *acker) close() {
	close(a.pending)
	<-a.done
}

func (a *acker) loop() {
	defer close(a.done)
	batch := make([]handled, 0, a.size)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var m handled
		var ok bool
		if len(batch) == 0 {
			m, ok = <-a.pending
		} else {
			select {
			case m, ok = <-a.pending:
			case <-timer.C:
				a.send(batch)
				batch = batch[:0]
				continue
			}
		}
		if !ok {
			if len(batch) > 0 {
				a.send(batch)
			}
			return
		}
		batch = append(batch, m)
		if len(batch) == 1 {
			timer.Reset(a.delay)
		}
		if len(batch) == a.size {
			timer.Stop()
			a.send(batch)
			batch = batch[:0]
		}
	}
}

// ackAttempts is how often a batch is tried before its failure is logged.
const ackAttempts = 4

// send acknowledges batch, retrying a transient failure, and reports each
// message: Succeeded once the ack committed, else LeaseLost. A Source's
// Ack does not say which message of a batch lost its lease, so a failed
// batch counts for each of its messages: success is never claimed for a
// message that may be delivered again.
func (a *acker) send(batch []handled) {
	r := a.r
	msgs := make([]*Message, len(batch))
	for i, h := range batch {
		msgs[i] = h.m
	}
	var err error
	for attempt := 1; attempt <= ackAttempts; attempt++ {
		ctx, cancel := context.WithTimeout(r.ops, r.lease/3)
		err = r.c.Source.Ack(ctx, msgs...)
		cancel()
		if err == nil || errors.Is(err, ErrLeaseLost) || permanent(err) {
			break
		}
		if attempt < ackAttempts {
			_ = backoff.Sleep(r.ops, backoff.FullJitter(backoff.Exponential(50*time.Millisecond, time.Second))(attempt))
		}
	}
	if err != nil {
		r.log.Warn("queue: ack failed; the messages will be delivered again", "messages", len(batch), "err", err)
		if permanent(err) {
			r.fail(fmt.Errorf("queue: ack: %w", err))
		}
		err = fmt.Errorf("queue: ack failed: %w", err)
	}
	for _, h := range batch {
		if err != nil {
			r.c.lost.Add(1)
			r.report(Result{Message: h.m, Outcome: LeaseLost, Err: err, Elapsed: h.elapsed})
			continue
		}
		r.c.succeeded.Add(1)
		r.report(Result{Message: h.m, Outcome: Succeeded, Elapsed: h.elapsed})
	}
}
