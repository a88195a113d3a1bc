package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/crewgo/crew/work"
)

// delivery is one received message on its way through a consumer.
type delivery struct {
	r    *run
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

func newDelivery(r *run, m *Message) *delivery {
	d := &delivery{r: r, m: m}
	d.beat = startHeartbeat(r, m)
	return d
}

// handle runs the handler on the message and settles it: ack, retry,
// dead-letter or release. It is a pool task; ctx is the pool's context,
// which ends only at the drain deadline.
func (d *delivery) handle(ctx context.Context) error {
	r, m := d.r, d.m
	defer r.finish()
	r.c.running.Add(1)
	defer r.c.running.Add(-1)

	if attempt := d.attempt(); r.maxAttempts > 0 && attempt > r.maxAttempts {
		// Delivered too often without a result: its handler probably
		// crashed the process. Running it again would do the same.
		d.beat.stop()
		d.deadLetter(fmt.Errorf("queue: delivered %d times, more than MaxAttempts (%d)", attempt, r.maxAttempts), 0)
		return nil
	}

	hctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if !d.beat.watch(cancel) {
		d.beat.stop()
		d.lostLease(0)
		return nil
	}
	if t := r.c.HandlerTimeout; t > 0 {
		var stop context.CancelFunc
		hctx, stop = context.WithTimeoutCause(hctx, t, ErrHandlerTimeout)
		defer stop()
	}
	start := time.Now()
	err := call(r.handler, hctx, m)
	elapsed := time.Since(start)
	d.elapsed = elapsed
	lost := d.beat.stop()

	switch {
	case lost != nil:
		d.lostLease(elapsed)
	case err == nil:
		r.acks.add(m, elapsed) // reports the outcome once the ack is settled
	case errors.Is(context.Cause(ctx), ErrDrainTimeout):
		// Cancelled at the drain deadline: give it back for another try
		// that this one does not count against.
		r.nack(m, 0, "release")
		r.mu.Lock()
		r.gaveBack = append(r.gaveBack, m.ID)
		r.mu.Unlock()
		r.c.released.Add(1)
		r.report(Result{Message: m, Outcome: Released, Err: err, Elapsed: elapsed})
	case errors.Is(err, work.ErrPermanent) || (r.maxAttempts > 0 && d.attempt() >= r.maxAttempts):
		d.deadLetter(err, elapsed)
	default:
		delay := max(r.retry(d.attempt()), 0)
		// If the nack fails, the lease will expire and the message come
		// back anyway.
		r.nack(m, delay, "nack")
		r.c.retried.Add(1)
		r.report(Result{Message: m, Outcome: Retried, Err: err, Elapsed: elapsed, Delay: delay})
	}
	return nil
}

func (d *delivery) deadLetter(reason error, elapsed time.Duration) {
	r, m := d.r, d.m
	if err := r.c.Source.DeadLetter(r.ops, m, reason); err != nil {
		r.log.Error("queue: dead-letter failed", "id", m.ID, "err", err)
		if permanent(err) {
			r.fail(fmt.Errorf("queue: dead-letter message %s: %w", m.ID, err))
		}
	}
	r.c.dead.Add(1)
	r.report(Result{Message: m, Outcome: DeadLettered, Err: reason, Elapsed: elapsed})
}

func (d *delivery) lostLease(elapsed time.Duration) {
	r, m := d.r, d.m
	r.c.lost.Add(1)
	r.report(Result{Message: m, Outcome: LeaseLost, Err: d.beat.err(), Elapsed: elapsed})
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
	r        *run
	m        *Message
	every    time.Duration
	mu       sync.Mutex // held across each Extend, so that stop waits for it
	timer    *time.Timer
	stopped  bool
	deadline time.Time               // when the current lease ends
	lost     error                   // why the lease was lost, if it was
	onLost   context.CancelCauseFunc // cancels the handler, once it runs
}

func startHeartbeat(r *run, m *Message) *heartbeat {
	h := &heartbeat{r: r, m: m, every: r.lease / 3, deadline: time.Now().Add(r.lease)}
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
	ctx, cancel := context.WithTimeout(h.r.ops, h.every)
	err := h.r.c.Source.Extend(ctx, h.m, h.r.lease)
	cancel()
	if err == nil {
		h.deadline = time.Now().Add(h.r.lease)
		h.timer.Reset(h.every)
		return
	}
	retry := h.every / 4
	if permanent(err) {
		h.r.fail(fmt.Errorf("queue: extend message %s: %w", h.m.ID, err))
	} else if !errors.Is(err, ErrLeaseLost) && time.Until(h.deadline) > 2*retry {
		h.r.log.Warn("queue: lease extension failed; retrying", "id", h.m.ID, "err", err)
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
