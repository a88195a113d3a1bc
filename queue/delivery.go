package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/crewgo/crew/backoff"
	"github.com/crewgo/crew/work"
)

// handling is what every delivery of one run shares: how to run the
// handler, and where a message goes once it has run. It knows nothing of
// the receive loop.
type handling struct {
	handler     Handler
	timeout     time.Duration // HandlerTimeout; none if zero
	maxAttempts int           // negative: no limit
	retry       backoff.Policy
	lease       time.Duration
	src         *source
	acks        *acker
	out         *reporter
	finish      func()          // the consumer holds the message no more
	gaveBack    func(id string) // released at the drain deadline
}

// delivery is one received message on its way through a consumer.
type delivery struct {
	h    *handling
	m    *Message
	beat *heartbeat

	// With Consumer.Key: the message's key, if it has one, and how often
	// this consumer postponed it, deliveries that MaxAttempts does not
	// count.
	key       string
	keyed     bool
	postponed int
	admitted  time.Time     // when it took one of its key's places
	delay     time.Duration // how long it is postponed for
	elapsed   time.Duration // how long the handler ran
}

// attempt is the message's delivery count, less the deliveries that this
// consumer postponed without starting it.
func (d *delivery) attempt() int { return d.m.Attempt - d.postponed }

// newDelivery starts keeping m's lease alive, from its receipt on.
func (h *handling) newDelivery(m *Message) *delivery {
	return &delivery{h: h, m: m, beat: startHeartbeat(h.src, m, h.lease)}
}

// handle runs the handler on the message and settles it: ack, retry,
// dead-letter or release. It is a pool task; ctx is the pool's context,
// which ends only at the drain deadline.
func (d *delivery) handle(ctx context.Context) error {
	h, m := d.h, d.m
	defer h.finish()
	h.out.counts.running.Add(1)
	defer h.out.counts.running.Add(-1)

	if attempt := d.attempt(); h.maxAttempts > 0 && attempt > h.maxAttempts {
		// Delivered too often without a result: its handler probably
		// crashed the process. Running it again would do the same.
		d.beat.stop()
		d.deadLetter(fmt.Errorf("queue: delivered %d times, more than MaxAttempts (%d)", attempt, h.maxAttempts))
		return nil
	}
	hctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if !d.beat.watch(cancel) {
		d.beat.stop()
		d.report(LeaseLost, d.beat.err(), 0)
		return nil
	}
	if t := h.timeout; t > 0 {
		var stop context.CancelFunc
		hctx, stop = context.WithTimeoutCause(hctx, t, ErrHandlerTimeout)
		defer stop()
	}
	start := time.Now()
	err := call(h.handler, hctx, m)
	d.elapsed = time.Since(start)
	if lost := d.beat.stop(); lost != nil {
		d.report(LeaseLost, lost, 0)
		return nil
	}
	d.settle(ctx, err)
	return nil
}

// settle does what the handler's result err asks for, the lease being
// still held.
func (d *delivery) settle(ctx context.Context, err error) {
	h, m := d.h, d.m
	switch {
	case err == nil:
		h.acks.add(m, d.elapsed) // reports the outcome once the ack is settled
	case errors.Is(context.Cause(ctx), ErrDrainTimeout):
		// Cancelled at the drain deadline: give it back for another try
		// that this one does not count against.
		h.src.nack(m, 0, "release")
		h.gaveBack(m.ID)
		d.report(Released, err, 0)
	case errors.Is(err, work.ErrPermanent) || (h.maxAttempts > 0 && d.attempt() >= h.maxAttempts):
		d.deadLetter(err)
	default:
		delay := max(h.retry(d.attempt()), 0)
		h.src.nack(m, delay, "nack")
		d.report(Retried, err, delay)
	}
}

func (d *delivery) deadLetter(reason error) {
	d.h.src.deadLetter(d.m, reason)
	d.report(DeadLettered, reason, 0)
}

func (d *delivery) report(o Outcome, err error, delay time.Duration) {
	d.h.out.report(Result{Message: d.m, Outcome: o, Err: err, Elapsed: d.elapsed, Delay: delay})
}

// call runs h, turning a panic into a *work.PanicError.
func call(h Handler, ctx context.Context, m *Message) (err error) {
	if pe := work.Catch(func() { err = h(ctx, m) }); pe != nil {
		return pe
	}
	return err
}

// heartbeat keeps one message's lease alive by extending it every third of
// the lease, from receipt until stop.
type heartbeat struct {
	src      *source
	m        *Message
	lease    time.Duration
	every    time.Duration
	mu       sync.Mutex // held across each Extend, so that stop waits for it
	timer    *time.Timer
	stopped  bool
	deadline time.Time               // when the current lease ends
	lost     error                   // why the lease was lost, if it was
	onLost   context.CancelCauseFunc // cancels the handler, once it runs
}

func startHeartbeat(src *source, m *Message, lease time.Duration) *heartbeat {
	h := &heartbeat{src: src, m: m, lease: lease, every: lease / 3, deadline: time.Now().Add(lease)}
	h.timer = time.AfterFunc(h.every, h.extend)
	return h
}

// extend renews the lease. A lost lease cancels the handler; other errors
// are retried while the current lease leaves time to.
func (h *heartbeat) extend() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped || h.lost != nil {
		return
	}
	ctx, cancel := context.WithTimeout(h.src.ops, h.every)
	err := h.src.Extend(ctx, h.m, h.lease)
	cancel()
	if err == nil {
		h.deadline = time.Now().Add(h.lease)
		h.timer.Reset(h.every)
		return
	}
	retry := h.every / 4
	if permanent(err) {
		h.src.fail(fmt.Errorf("queue: extend message %s: %w", h.m.ID, err))
	} else if !errors.Is(err, ErrLeaseLost) && time.Until(h.deadline) > 2*retry {
		h.src.log.Warn("queue: lease extension failed; retrying", "id", h.m.ID, "err", err)
		h.timer.Reset(retry)
		return
	}
	h.lost = fmt.Errorf("queue: lease lost: %w", err)
	if h.onLost != nil {
		h.onLost(h.lost)
	}
}

// watch arranges for cancel to be called if the lease is lost, and reports
// false if it has been lost already.
func (h *heartbeat) watch(cancel context.CancelCauseFunc) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.onLost = cancel
	return h.lost == nil
}

// stop ends the heartbeat, after any extension in progress, and returns why
// the lease was lost, if it was.
func (h *heartbeat) stop() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped = true
	h.timer.Stop()
	return h.lost
}

func (h *heartbeat) err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lost
}
