package queue

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/crewgo/crew/backoff"
	"github.com/crewgo/crew/pool"
	"github.com/crewgo/crew/work"
)

// Defaults for the Consumer fields left zero.
const (
	DefaultConcurrency  = 10
	DefaultLease        = 30 * time.Second
	DefaultMaxAttempts  = 5
	DefaultDrainTimeout = 25 * time.Second
	DefaultAckBatch     = 64
	DefaultAckDelay     = 20 * time.Millisecond
	// DefaultPrefetch bounds the prefetch of a Consumer whose Prefetch is
	// zero (see Consumer.Prefetch).
	DefaultPrefetch = 64
)

// MinLease is the shortest Lease a Consumer accepts. A shorter lease would
// expire before it could be extended (extensions come every third of the
// lease, over a network round trip), and SQS counts visibility timeouts in
// whole seconds.
const MinLease = time.Second

// ErrDrainTimeout is the cause that handlers see when the consumer's drain
// deadline passes while they still run, and what a *DrainError wraps.
var ErrDrainTimeout = errors.New("queue: drain timeout")

// ErrHandlerTimeout is the cause that a handler sees when it runs longer
// than the Consumer's HandlerTimeout.
var ErrHandlerTimeout = errors.New("queue: handler timeout")

// DrainError is what Consumer.Run returns when it had to give up messages
// at its drain deadline: their handlers were cancelled and the messages
// were released to be received again.
type DrainError struct {
	Released []string // the IDs of the released messages
}

// Error lists the released messages.
func (e *DrainError) Error() string {
	return fmt.Sprintf("queue: drain timeout: released %d unfinished messages: %s",
		len(e.Released), strings.Join(e.Released, ", "))
}

// Unwrap returns ErrDrainTimeout.
func (e *DrainError) Unwrap() error { return ErrDrainTimeout }

// Consumer receives messages from a Source and runs Handler on each, at most
// Concurrency at once. It is a crew.Worker: run it on its own with Run, or
// add it to a crew.Group.
//
// A Consumer holds no more messages than it can start: it receives only for
// free handler slots (plus Prefetch). While a handler runs, the message's
// lease is extended every third of Lease, so a job may run far longer than
// the lease. A handler's success acknowledges the message (in batches); a
// failure makes it ready again after a backoff delay, until MaxAttempts
// deliveries, after which the message is dead-lettered with the last error.
//
// When Run's context ends, the consumer stops receiving at once (an
// in-flight long poll is abandoned) and releases the messages it holds but
// has not started. Running handlers are not cancelled: they have until the
// drain deadline to finish, and their leases keep being extended meanwhile.
// The drain deadline is DrainTimeout after the stop or, when the consumer
// runs in a crew.Group, the end of crew.DrainContext if that comes first: the
// group's stop deadline, or at once when the group's stop is cut short by a
// second Stop. At the deadline their contexts are
// cancelled and the messages still unfinished are released; Run then
// returns a *DrainError naming them.
//
// The exported fields configure the consumer and must not change once Run
// has been called. Run must not be called again while it runs.
type Consumer struct {
	Source  Source
	Handler Handler

	// Concurrency is how many handlers run at once (DefaultConcurrency if
	// zero).
	Concurrency int
	// Prefetch is how many messages the consumer may hold, leased, beyond
	// its free handler slots, so that a slot that frees up finds its next
	// message ready. Zero adapts it: none at first, and more (up to eight
	// times Concurrency, at most DefaultPrefetch, or what a Source that is a
	// PrefetchLimiter allows) only while handlers finish during Receive
	// calls, so that slow handlers never make the consumer hold more than
	// it can start. Negative: none.
	Prefetch int
	// Lease is how long a received message stays invisible to other
	// consumers before it must be extended (DefaultLease if zero). A
	// non-zero Lease below MinLease makes Run return an error at once.
	Lease time.Duration
	// MaxAttempts is how many deliveries a message gets before it is
	// dead-lettered (DefaultMaxAttempts if zero; negative: never for a
	// failure). A message already delivered more often, such as one whose
	// lease expired repeatedly under crashing workers, is dead-lettered
	// without running its handler.
	MaxAttempts int
	// Retry says how long a failed message waits before it is ready again,
	// given its attempt number (1-second to 5-minute exponential backoff
	// with jitter if nil).
	Retry backoff.Policy
	// RateLimit, if set, bounds how many handlers start per second: each
	// start takes one of its tokens. A message waiting for a token is not
	// received yet, so it burns no lease: the consumer receives only as
	// many messages as the limiter lets start now, waiting for the first
	// token before it receives at all. A limiter may be shared by several
	// consumers to bound them together, and changed while they run
	// (SetLimit, SetBurst; the consumer sees a change within a second, and
	// a limit of 0 pauses it). Its burst must be at least 1, unless its
	// limit is rate.Inf, or Run returns an error at once.
	RateLimit *rate.Limiter
	// Key names a message attribute, such as "tenant", whose value puts
	// the message in a group: at most PerKey handlers (1 if zero) run at
	// once for messages of one value, while messages of other values, and
	// messages without the attribute, take the remaining slots. A message
	// whose key is busy waits, with its lease extended, when it should
	// start soon: behind at most PerKey others of its key, or more while
	// the key's measured pace says it would start within 50ms, and
	// 4×Concurrency in all. Otherwise it is postponed: given
	// back to the queue unstarted, to be ready again when the key should
	// have run the messages postponed before it, judged by how long
	// handlers take (or, for a key whose handlers run longer than usual,
	// by how long they have run), at most a minute later. So a key with a
	// long backlog holds few leases and never stops the consumer from
	// receiving the messages of other keys. A postponed message's next
	// delivery counts in Message.Attempt, but not against MaxAttempts,
	// when this consumer receives it again; OnResult is not called for a
	// postponement, which Stats counts as Postponed.
	Key string
	// PerKey is how many handlers may run at once for one value of Key
	// (1 if zero; a PerKey without a Key makes Run return an error).
	PerKey int
	// HandlerTimeout bounds one run of the handler (none if zero); the
	// handler's context then ends with ErrHandlerTimeout as its cause.
	HandlerTimeout time.Duration
	// DrainTimeout bounds how long running handlers may take to finish after
	// Run's context ends (DefaultDrainTimeout if zero).
	DrainTimeout time.Duration
	// AckBatch and AckDelay bound how many acknowledgements are sent
	// together and how long one waits for others (DefaultAckBatch,
	// DefaultAckDelay if zero). A few batches are sent at once, so that
	// handlers do not wait for one batch to commit before the next is
	// sent.
	AckBatch int
	AckDelay time.Duration
	// Logger receives a line for errors talking to the Source and, unless
	// OnResult is set, one for each message outcome: retries, dead
	// letters, releases and lost leases (successes at debug level).
	// slog.Default() if nil.
	Logger *slog.Logger
	// OnResult, if set, is called once for every message the consumer
	// finishes with, instead of the consumer logging the outcome itself:
	// from the goroutine that handled it, except that a handler's success
	// (or a lease lost at its acknowledgement) is reported from a goroutine
	// that sends acknowledgements, once the acknowledgement committed (keep
	// OnResult quick: acknowledgements wait for it). Calls may be concurrent. Every call happens before Run
	// returns.
	OnResult func(Result)

	n counters
}

// Result is what became of one message.
type Result struct {
	Message *Message
	Outcome Outcome
	Err     error         // the handler's error, or why the message was given up
	Elapsed time.Duration // how long the handler ran
	Delay   time.Duration // Retried: how long until the message is ready again
}

// Outcome says what the consumer did with a message.
type Outcome int

const (
	// Succeeded: the handler returned nil and the message's
	// acknowledgement committed: it will not be delivered again.
	Succeeded Outcome = iota + 1
	// Retried: the handler failed; the message will be delivered again.
	Retried
	// DeadLettered: the message failed for good and was dead-lettered.
	DeadLettered
	// Released: the consumer stopped before the handler finished (or
	// started), or a failing Receive returned the message with its error;
	// the message was made ready again at once.
	Released
	// LeaseLost: the lease could not be kept, so the message belongs to
	// another delivery now; the handler's context was cancelled. Also a
	// message whose handler succeeded but whose acknowledgement failed:
	// one that the Source's Ack named in a *LeaseLostError, or every
	// message of a batch whose Ack failed without naming any. It may be
	// delivered again.
	LeaseLost
)

// String returns the outcome's name in lower case, such as "retried".
func (o Outcome) String() string {
	switch o {
	case Succeeded:
		return "succeeded"
	case Retried:
		return "retried"
	case DeadLettered:
		return "dead-lettered"
	case Released:
		return "released"
	case LeaseLost:
		return "lease-lost"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Stats counts what a Consumer has done since it was created.
type Stats struct {
	Received     int64 // messages received
	Held         int64 // messages received and not yet settled (running, or waiting for a slot)
	Running      int64 // handlers running now
	Succeeded    int64 // messages handled and acknowledged (the acknowledgement committed)
	Retried      int64 // failures that will be retried
	DeadLettered int64 // messages dead-lettered
	Released     int64 // messages given back unfinished at a stop, or returned by a failing Receive
	LeaseLost    int64 // messages whose lease was lost while held, or whose acknowledgement failed
	Postponed    int64 // messages given back unstarted because their Key was busy (not a Result)
}

// Stats returns the consumer's counters. It is safe to call at any time.
func (c *Consumer) Stats() Stats {
	return Stats{
		Received:     c.n.received.Load(),
		Held:         c.n.held.Load(),
		Running:      c.n.running.Load(),
		Succeeded:    c.n.succeeded.Load(),
		Retried:      c.n.retried.Load(),
		DeadLettered: c.n.dead.Load(),
		Released:     c.n.released.Load(),
		LeaseLost:    c.n.leaseLost.Load(),
		Postponed:    c.n.postponed.Load(),
	}
}

// run holds the state of one call to Run.
type run struct {
	c           *Consumer
	log         *slog.Logger
	concurrency int
	prefetch    int               // the most it prefetches
	adaptive    *adaptivePrefetch // nil unless Prefetch is zero
	lease       time.Duration

	src    *source   // calls to the Source, with a context that survives the stop
	out    *reporter // where outcomes go
	h      *handling // what every delivery shares
	pool   *pool.Pool
	starts *startGate    // RateLimit, or nil
	keys   *keyLimit     // Key and PerKey, or nil
	held   atomic.Int64  // messages received and not yet finished
	freed  chan struct{} // one token: a handler slot freed up

	// Received messages go, in order, from the receive loop to the
	// dispatcher, which waits for a free handler for each. The receive
	// loop can thus receive for slots that free up while prefetched
	// messages still wait for theirs.
	batches    chan []*delivery
	dispatched chan struct{} // closed when the dispatcher has returned

	stopReceiving context.CancelCauseFunc // ends the receive loop early, on a permanent failure

	mu       sync.Mutex
	gaveBack []string // IDs released at the drain deadline
	failure  error    // the first permanent failure of the Source
}

// Run receives and handles messages until ctx ends, then drains as the
// Consumer's documentation describes. It returns nil after a complete drain,
// a *DrainError if messages had to be released at the drain deadline, and an
// error at once if Source or Handler is nil or Lease is below MinLease.
//
// A Source error that wraps crew.ErrPermanent, from Receive, Ack, Nack,
// Extend or DeadLetter, stops the consumer as the end of ctx would: it stops
// receiving, releases the messages it holds but has not started, lets
// running handlers drain, and then Run returns the first such error. Other
// Source errors are logged and retried with backoff.
func (c *Consumer) Run(ctx context.Context) error {
	if c.Source == nil || c.Handler == nil {
		return errors.New("queue: Consumer needs a Source and a Handler")
	}
	if c.Lease != 0 && c.Lease < MinLease {
		return fmt.Errorf("queue: Consumer.Lease %v is below MinLease (%v): the lease would end before it could be extended", c.Lease, MinLease)
	}
	if err := c.checkLimits(); err != nil {
		return err
	}
	r := c.newRun(ctx)
	// A permanent failure of the Source ends receiving as the end of ctx
	// would.
	rctx, stopReceiving := context.WithCancelCause(ctx)
	defer stopReceiving(nil)
	r.stopReceiving = stopReceiving
	r.pool = pool.New(r.concurrency, pool.Queue(0), pool.WithContext(r.src.ops))
	r.receive(rctx)

	// Stop: nothing more is received; running handlers drain until the
	// deadline, then are cancelled.
	drainTimeout := c.DrainTimeout
	if drainTimeout <= 0 {
		drainTimeout = DefaultDrainTimeout
	}
	drainCtx, cancel := context.WithTimeoutCause(r.src.ops, drainTimeout, ErrDrainTimeout)
	defer cancel()
	// Inside a crew.Group the drain also ends with the group's: at its stop
	// deadline, or at once when the group's stop is cut short.
	end, endDrain := context.WithCancelCause(drainCtx)
	defer endDrain(nil)
	defer context.AfterFunc(work.DrainContext(ctx), func() { endDrain(ErrDrainTimeout) })()
	drainCtx = end
	// At the deadline, Shutdown cancels the handlers' contexts with
	// ErrDrainTimeout; Wait then waits for them to return. Handlers report
	// their own outcomes, so the pool's errors are not needed.
	_ = r.pool.Shutdown(drainCtx)
	_ = r.pool.Wait()
	r.h.acks.close()

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failure != nil {
		return r.failure
	}
	if len(r.gaveBack) > 0 {
		return &DrainError{Released: r.gaveBack}
	}
	return nil
}

// newRun returns the state of one call to Run, with the Consumer's zero
// fields defaulted, its acker started.
func (c *Consumer) newRun(ctx context.Context) *run {
	r := &run{
		c:           c,
		log:         cmp.Or(c.Logger, slog.Default()),
		concurrency: cmp.Or(max(c.Concurrency, 0), DefaultConcurrency),
		prefetch:    c.Prefetch,
		lease:       cmp.Or(max(c.Lease, 0), DefaultLease),
		freed:       make(chan struct{}, 1),
		starts:      newStartGate(c.RateLimit),
	}
	if r.prefetch == 0 {
		a := newAdaptivePrefetch(c.Source, r.concurrency)
		r.adaptive, r.prefetch = &a, a.max
	}
	r.prefetch = max(r.prefetch, 0)
	r.keys = newKeyLimit(c, r.concurrency)
	r.src = &source{Source: c.Source, ops: context.WithoutCancel(ctx), log: r.log, fail: r.fail}
	r.out = &reporter{counts: &c.n, onResult: c.OnResult, log: r.log}
	r.h = &handling{
		handler:     c.Handler,
		timeout:     c.HandlerTimeout,
		maxAttempts: cmp.Or(c.MaxAttempts, DefaultMaxAttempts),
		retry:       c.Retry,
		lease:       r.lease,
		src:         r.src,
		acks:        newAcker(r.src, r.out, r.lease/3, c.AckBatch, c.AckDelay),
		out:         r.out,
		finish:      r.finish,
		gaveBack: func(id string) {
			r.mu.Lock()
			r.gaveBack = append(r.gaveBack, id)
			r.mu.Unlock()
		},
	}
	if r.h.retry == nil {
		r.h.retry = backoff.EqualJitter(backoff.Exponential(time.Second, 5*time.Minute))
	}
	return r
}

// receive runs the receive loop until ctx ends, or Receive fails
// permanently, and returns once every message it received has been started
// or released.
func (r *run) receive(ctx context.Context) {
	capacity := r.concurrency + r.prefetch
	// Held messages are at most capacity, plus those waiting for their
	// key, so the batches never fill the channel.
	r.batches = make(chan []*delivery, capacity+r.keys.maxWaitingOrZero())
	r.dispatched = make(chan struct{})
	dctx, stop := context.WithCancel(ctx)
	go r.dispatch(dctx)
	defer func() {
		stop() // after a permanent failure too: release what waits
		close(r.batches)
		<-r.dispatched
	}()

	failures := 0
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	defer linger.Stop()
	for ctx.Err() == nil {
		capacity := r.capacityNow(capacity) // smaller while the prefetch adapts
		want := r.room(ctx, capacity, linger)
		if want == 0 {
			continue
		}
		if want = r.starts.allow(ctx, want); want == 0 {
			continue // ctx ended while waiting for the rate limit
		}
		start := r.receiveStarts()
		msgs, err := r.src.Receive(ctx, want, r.lease)
		if err != nil {
			// A Source may return what it got before the failure, or
			// before it noticed the stop.
			if ctx.Err() != nil {
				r.release(msgs, ErrStopping)
				break
			}
			if permanent(err) {
				r.fail(fmt.Errorf("queue: receive: %w", err))
				r.release(msgs, err)
				return
			}
			r.release(msgs, err)
			failures++
			wait := backoff.FullJitter(backoff.Exponential(100*time.Millisecond, 10*time.Second))(failures)
			r.log.Warn("queue: receive failed; retrying", "err", err, "retry_in", wait)
			_ = backoff.Sleep(ctx, wait)
			continue
		}
		failures = 0
		r.adaptPrefetch(start)
		r.starts.spend(len(msgs))
		r.c.n.received.Add(int64(len(msgs)))
		r.hold(len(msgs))
		// Leases are extended from the moment of receipt, so that a
		// prefetched message waiting for a slot keeps its lease too.
		deliveries := make([]*delivery, len(msgs))
		for i, m := range msgs {
			deliveries[i] = r.h.newDelivery(m)
		}
		if len(deliveries) > 0 {
			r.batches <- deliveries
		}
	}
}

// room waits for the consumer to have room for more messages, out of
// capacity, and returns how many it may receive now, or 0 if it should look
// again (a slot freed up while it had none, or ctx ended). With fewer than
// half its slots free, it lingers a moment for more: quick handlers free
// their slots one at a time, and one Receive should fetch several messages
// instead of one each.
func (r *run) room(ctx context.Context, capacity int, linger *time.Timer) int {
	want := r.free(capacity)
	if want <= 0 {
		select {
		case <-r.freed:
		case <-ctx.Done():
		}
		return 0
	}
	if want >= (capacity+1)/2 {
		return want
	}
	linger.Reset(receiveLinger)
	defer linger.Stop()
	for want < (capacity+1)/2 {
		select {
		case <-r.freed:
			want = r.free(capacity)
		case <-linger.C:
			return want
		case <-ctx.Done():
			return 0
		}
	}
	return want
}

// dispatch starts each received message's handler as a slot frees up, in
// the order received, until the receive loop closes r.batches. Once ctx
// ends, it releases the messages that have not started instead.
func (r *run) dispatch(ctx context.Context) {
	defer close(r.dispatched)
	for deliveries := range r.batches {
		for _, d := range deliveries {
			if ctx.Err() == nil && r.start(ctx, d) {
				continue
			}
			// Stopping: give back what has not started.
			d.beat.stop()
			r.releaseHeld([]*Message{d.m}, ErrStopping)
		}
	}
	r.releaseWaiting()
}

// free is how many more messages the consumer may hold: its capacity less
// what it holds, not counting the messages that wait for their key.
func (r *run) free(capacity int) int {
	return capacity - int(r.held.Load()) + r.waiting()
}

// release gives back messages that were received but never dispatched,
// reporting why.
func (r *run) release(msgs []*Message, why error) {
	r.hold(len(msgs))
	r.releaseHeld(msgs, why)
}

// hold accounts for n messages received.
func (r *run) hold(n int) {
	r.held.Add(int64(n))
	r.c.n.held.Add(int64(n))
}

// releaseHeld gives back held messages that will not be started, reporting
// why.
func (r *run) releaseHeld(msgs []*Message, why error) {
	for _, m := range msgs {
		r.src.nack(m, 0, "release")
		r.out.report(Result{Message: m, Outcome: Released, Err: why})
		r.finish()
	}
}

// fail stops the consumer for an error of the Source that will never
// clear: the receive loop ends, what is held but not started is released,
// running handlers drain, and Run returns the first such error.
func (r *run) fail(err error) {
	r.mu.Lock()
	if r.failure == nil {
		r.failure = err
	}
	r.mu.Unlock()
	r.stopReceiving(err)
}

// receiveLinger is how long the consumer waits for more of its handler slots
// to free up before receiving for fewer than half of them.
const receiveLinger = time.Millisecond

// ErrStopping is the Err of a Released Result for a message that the
// consumer received but never started because it was stopping.
var ErrStopping = errors.New("queue: consumer stopping")

// finish accounts for a message the consumer no longer holds.
func (r *run) finish() {
	r.held.Add(-1)
	r.c.n.held.Add(-1)
	r.signalFreed()
}

// signalFreed wakes the receive loop to receive for a slot that freed up.
func (r *run) signalFreed() {
	select {
	case r.freed <- struct{}{}:
	default:
	}
}
