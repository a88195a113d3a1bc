package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/crewgo/crew/backoff"
)

// ackInFlight is how many batches of acknowledgements are sent at once. A
// batch waits for a commit (a disk flush, a network round trip); with one
// batch at a time, handlers that finish meanwhile wait for that commit
// before they can take their next message.
const ackInFlight = 4

// acker sends acknowledgements in batches: up to size at once, each waiting
// at most delay for others to join it, up to ackInFlight batches at once.
// A handler waits to hand over its message only while that many batches are
// in flight and another is full: the backlog is bounded. Failed batches are
// retried a few times; a message whose ack is finally lost will be
// delivered again. Each message's outcome is reported once its batch is
// settled: a success only once the acknowledgement committed, since a crash
// before then delivers the message again.
type acker struct {
	src     *source
	out     *reporter
	timeout time.Duration // for each call to Ack
	size    int
	delay   time.Duration

	pending chan handled
	slots   chan struct{} // one token per batch in flight
	sending sync.WaitGroup
	done    chan struct{}
}

// handled is a message whose handler succeeded, waiting for its ack.
type handled struct {
	m       *Message
	elapsed time.Duration
}

func newAcker(src *source, out *reporter, timeout time.Duration, size int, delay time.Duration) *acker {
	if size <= 0 {
		size = DefaultAckBatch
	}
	if delay <= 0 {
		delay = DefaultAckDelay
	}
	a := &acker{
		src: src, out: out, timeout: timeout, size: size, delay: delay,
		pending: make(chan handled, size),
		slots:   make(chan struct{}, ackInFlight),
		done:    make(chan struct{}),
	}
	go a.loop()
	return a
}

func (a *acker) add(m *Message, elapsed time.Duration) { a.pending <- handled{m, elapsed} }

// close flushes what is pending and waits for every batch to settle.
func (a *acker) close() {
	close(a.pending)
	<-a.done
}

// loop gathers batches and hands each to a sender goroutine.
func (a *acker) loop() {
	defer close(a.done)
	defer a.sending.Wait()
	var batch []handled
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	flush := func() {
		timer.Stop()
		a.slots <- struct{}{} // at most ackInFlight batches in flight
		a.sending.Add(1)
		go func(batch []handled) {
			defer a.sending.Done()
			defer func() { <-a.slots }()
			a.send(batch)
		}(batch)
		batch = nil
	}
	for {
		var h handled
		var ok bool
		if len(batch) == 0 {
			h, ok = <-a.pending
		} else {
			select {
			case h, ok = <-a.pending:
			case <-timer.C:
				flush()
				continue
			}
		}
		if !ok {
			if len(batch) > 0 {
				flush()
			}
			return
		}
		if batch == nil {
			batch = make([]handled, 0, a.size)
			timer.Reset(a.delay)
		}
		batch = append(batch, h)
		if len(batch) == a.size {
			flush()
		}
	}
}

// ackAttempts is how often a batch is tried before its failure is logged.
const ackAttempts = 4

// send acknowledges batch, retrying a transient failure, and reports each
// message: Succeeded once the ack committed, else LeaseLost. A message that
// the Source names in a *LeaseLostError lost its lease and the rest of the
// batch was deleted; an error that names none counts for every message of
// the batch, since success is never claimed for a message that may be
// delivered again.
func (a *acker) send(batch []handled) {
	msgs := make([]*Message, len(batch))
	for i, h := range batch {
		msgs[i] = h.m
	}
	err := a.ack(msgs)
	lost, named := leaseLostIDs(err)
	if err != nil && !named {
		a.src.log.Warn("queue: ack failed; the messages will be delivered again", "messages", len(batch), "err", err)
		if permanent(err) {
			a.src.fail(fmt.Errorf("queue: ack: %w", err))
		}
		err = fmt.Errorf("queue: ack failed: %w", err)
	}
	for _, h := range batch {
		switch {
		case err == nil:
			a.out.report(Result{Message: h.m, Outcome: Succeeded, Elapsed: h.elapsed})
		case !named:
			a.out.report(Result{Message: h.m, Outcome: LeaseLost, Err: err, Elapsed: h.elapsed})
		case lost[h.m.ID] != nil:
			a.out.report(Result{Message: h.m, Outcome: LeaseLost, Err: lost[h.m.ID], Elapsed: h.elapsed})
		default:
			a.out.report(Result{Message: h.m, Outcome: Succeeded, Elapsed: h.elapsed})
		}
	}
}

// ack calls the Source's Ack, retrying a transient failure.
func (a *acker) ack(msgs []*Message) error {
	var err error
	for attempt := 1; attempt <= ackAttempts; attempt++ {
		ctx, cancel := context.WithTimeout(a.src.ops, a.timeout)
		err = a.src.Ack(ctx, msgs...)
		cancel()
		if err == nil || errors.Is(err, ErrLeaseLost) || permanent(err) {
			return err
		}
		if attempt < ackAttempts {
			_ = backoff.Sleep(a.src.ops, backoff.FullJitter(backoff.Exponential(50*time.Millisecond, time.Second))(attempt))
		}
	}
	return err
}

// leaseLostIDs reads the *LeaseLostError values of an Ack's error, by
// message ID. named is true when err is nothing but such errors (joined,
// possibly wrapped): then every other message of the batch was deleted.
func leaseLostIDs(err error) (lost map[string]error, named bool) {
	if err == nil {
		return nil, false
	}
	lost = map[string]error{}
	var walk func(err error) bool
	walk = func(err error) bool {
		var ll *LeaseLostError
		switch u := err.(type) {
		case *LeaseLostError:
			ll = u
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if !walk(e) {
					return false
				}
			}
			return true
		case interface{ Unwrap() error }:
			return u.Unwrap() != nil && walk(u.Unwrap())
		default:
			return false
		}
		lost[ll.ID] = ll
		return true
	}
	if !walk(err) {
		return nil, false
	}
	return lost, true
}
