package batch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/crewgo/crew/backoff"
	"github.com/crewgo/crew/work"
)

// errDone cancels a batch's context once the batch has returned, for the
// rare fn that kept it.
var errDone = errors.New("batch: the batch has returned")

// errBurst is the stop cause when a shared Limiter cannot ever grant a token.
var errBurst = errors.New("batch: the rate limiter allows no events (its burst is 0)")

// batch is the state that every item of one call of Map, Each, MapSeq or
// EachSeq shares. A feed hands the items to the workers; batch decides
// whether an item may start, runs its attempts, and records the stop.
type batch[In, Out any] struct {
	cfg      config
	fn       func(context.Context, int, In) (Out, error)
	ctx      context.Context // the parent's child; cancelled by MaxErrors and when the batch returns
	cancel   context.CancelCauseFunc
	done     <-chan struct{}
	deadline time.Time
	hasDL    bool
	limiter  *rate.Limiter
	start    time.Time
	total    int // len(items), or -1 for a sequence

	stopped  atomic.Bool  // no item and no retry may start any more
	failures atomic.Int64 // for MaxErrors

	mu         sync.Mutex
	cause      error // why the batch stopped; set once, with stopped
	byFailures bool  // the cause is MaxErrors: the failed items explain it
	skipErr    error // the Err of every skipped item
	progressMu sync.Mutex
	progress   Progress // guarded by progressMu
}

func newBatch[In, Out any](ctx context.Context, cfg config, fn func(context.Context, int, In) (Out, error), total int) *batch[In, Out] {
	b := &batch[In, Out]{cfg: cfg, fn: fn, total: total, start: time.Now()}
	b.ctx, b.cancel = context.WithCancelCause(ctx)
	b.done = b.ctx.Done()
	b.deadline, b.hasDL = ctx.Deadline()
	switch {
	case cfg.limiter != nil:
		b.limiter = cfg.limiter
	case cfg.rateLimit != rate.Inf:
		b.limiter = rate.NewLimiter(cfg.rateLimit, cfg.rateBurst)
	}
	b.progress.Total = total
	return b
}

// stop records the first reason for stopping; later reasons are ignored.
// With cancel, the running items' context is cancelled as well.
func (b *batch[In, Out]) stop(cause error, byFailures, cancel bool) {
	b.mu.Lock()
	if b.cause == nil {
		b.cause, b.byFailures = cause, byFailures
		b.skipErr = &skipError{cause}
		b.stopped.Store(true)
	}
	b.mu.Unlock()
	if cancel {
		b.cancel(cause)
	}
}

// running reports whether items may still start. It notices the end of the
// parent context and records it as the stop cause.
func (b *batch[In, Out]) running() bool {
	if b.stopped.Load() {
		return false
	}
	select {
	case <-b.done:
		b.stop(context.Cause(b.ctx), false, false)
		return false
	default:
		return true
	}
}

// run runs item i into o, which it finds zeroed (Skipped): first the checks
// that decide whether the item may start at all, then its attempts. now is
// the current time as the caller knows it (the end of its previous item);
// run returns the time at which the item ended, which saves the caller a
// clock read per item.
func (b *batch[In, Out]) run(i int, in In, o *Outcome[Out], now time.Time) time.Time {
	if !b.running() {
		return now
	}
	if b.limiter != nil || (b.hasDL && b.cfg.margin > 0) {
		var err error
		if now, err = b.admit(now); err != nil {
			if err != errStopped {
				b.stop(err, false, false)
			}
			return now
		}
	}
	start := now
	for attempt := 1; ; attempt++ {
		v, err := b.call(i, in)
		o.Value, o.Err, o.Attempts = v, err, attempt
		if err == nil {
			o.Status = Succeeded
			break
		}
		if attempt >= b.cfg.attempts || !b.retryable(err) || !b.waitRetry(attempt) {
			o.Status = Failed
			break
		}
	}
	now = time.Now()
	o.Elapsed = now.Sub(start)
	b.finished(o.Status)
	return now
}

// errStopped reports, inside admit, a stop that is already recorded.
var errStopped = errors.New("batch: stopped")

// admit decides, at now, whether an attempt may start given the Margin and
// the rate limiter, and waits for the limiter's turn. It returns the time
// after the wait, or the reason the attempt may not start.
func (b *batch[In, Out]) admit(now time.Time) (time.Time, error) {
	if b.hasDL && b.deadline.Sub(now) < b.cfg.margin {
		return now, fmt.Errorf("batch: less than the %v margin left before the deadline: %w", b.cfg.margin, context.DeadlineExceeded)
	}
	if b.limiter == nil {
		return now, nil
	}
	r := b.limiter.ReserveN(now, 1)
	if !r.OK() {
		return now, errBurst
	}
	d := r.DelayFrom(now)
	if d == 0 {
		return now, nil
	}
	if b.hasDL && b.deadline.Sub(now.Add(d)) < b.cfg.margin {
		r.CancelAt(now)
		if b.cfg.margin > 0 {
			return now, fmt.Errorf("batch: waiting %v for the rate limiter would end within the %v margin of the deadline: %w", d, b.cfg.margin, context.DeadlineExceeded)
		}
		return now, fmt.Errorf("batch: waiting %v for the rate limiter would end past the deadline: %w", d, context.DeadlineExceeded)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return time.Now(), nil
	case <-b.done:
		r.Cancel()
		b.running() // records the parent's end as the stop cause
		return time.Now(), errStopped
	}
}

// call makes one attempt, with the ItemTimeout, and turns a panic into an
// error.
func (b *batch[In, Out]) call(i int, in In) (v Out, err error) {
	ctx := b.ctx
	if b.cfg.itemTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.cfg.itemTimeout)
		defer cancel()
	}
	if pe := work.Catch(func() { v, err = b.fn(ctx, i, in) }); pe != nil {
		return v, pe
	}
	return v, err
}

// retryable reports whether err deserves another attempt: never once the
// batch has stopped or its context has ended, never for work.ErrPermanent,
// then as the Retry option says.
func (b *batch[In, Out]) retryable(err error) bool {
	if !b.running() || errors.Is(err, work.ErrPermanent) {
		return false
	}
	if b.cfg.retryable != nil {
		return b.cfg.retryable(err)
	}
	var pe *work.PanicError
	return !errors.As(err, &pe)
}

// waitRetry waits out the backoff after the given number of failed attempts
// and reports whether the next attempt may start. A wait that would end
// within the Margin of the deadline is not begun.
func (b *batch[In, Out]) waitRetry(failed int) bool {
	d := max(b.cfg.policy(failed), 0)
	now := time.Now()
	if b.hasDL && b.deadline.Sub(now.Add(d)) < b.cfg.margin {
		return false
	}
	if err := backoff.Sleep(b.ctx, d); err != nil {
		b.running() // records the parent's end as the stop cause
		return false
	}
	if !b.running() {
		return false
	}
	if b.limiter != nil || (b.hasDL && b.cfg.margin > 0) {
		// A retry that cannot start in time fails the item with its last
		// error; the next item to start finds the same and stops the batch.
		if _, err := b.admit(time.Now()); err != nil {
			return false
		}
	}
	return true
}

// finished counts a finished item: MaxErrors, then OnProgress.
func (b *batch[In, Out]) finished(s Status) {
	if s == Failed {
		n := b.failures.Add(1)
		if b.cfg.maxErrors > 0 && n >= int64(b.cfg.maxErrors) {
			b.stop(failuresError(b.cfg.maxErrors), true, true)
		}
	}
	if b.cfg.onProgress == nil {
		return
	}
	b.progressMu.Lock()
	defer b.progressMu.Unlock()
	p := &b.progress
	p.Done++
	switch s {
	case Succeeded:
		p.Succeeded++
	case Failed:
		p.Failed++
	}
	p.Elapsed = time.Since(b.start)
	b.cfg.onProgress(*p)
}

func failuresError(n int) error {
	if n == 1 {
		return errors.New("batch: stopped at the first failure (StopOnError)")
	}
	return fmt.Errorf("batch: stopped after %d failures (MaxErrors)", n)
}

// finalProgress reports the final counts when some items were skipped, which
// OnProgress has not seen item by item.
func (b *batch[In, Out]) finalProgress(succeeded, failed, skipped int) {
	if b.cfg.onProgress == nil || skipped == 0 {
		return
	}
	b.progressMu.Lock()
	defer b.progressMu.Unlock()
	p := &b.progress
	p.Succeeded, p.Failed, p.Skipped = succeeded, failed, skipped
	p.Done = succeeded + failed + skipped
	p.Elapsed = time.Since(b.start)
	b.cfg.onProgress(*p)
}

// stopCause returns the reason the batch stopped, if it is one to put at the
// head of the returned error (not MaxErrors, which the failed items explain),
// and the Err of the skipped items.
func (b *batch[In, Out]) stopCause() (head, skip error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cause != nil && !b.byFailures {
		head = b.cause
	}
	return head, b.skipErr
}

// finish completes the report of a slice batch once every worker has
// returned: it counts the items, gives the skipped ones their Err, reports
// the final progress and builds the error.
func (b *batch[In, Out]) finish(rep *Report[Out]) error {
	head, skip := b.stopCause()
	var failed []ItemError
	for i := range rep.Items {
		o := &rep.Items[i]
		switch o.Status {
		case Succeeded:
			rep.Succeeded++
		case Failed:
			failed = append(failed, ItemError{Index: i, Attempts: o.Attempts, Err: o.Err})
		default:
			rep.Skipped++
			if o.Err == nil {
				o.Err = skip
			}
		}
	}
	rep.Failed = len(failed)
	b.finalProgress(rep.Succeeded, rep.Failed, rep.Skipped)
	return joinErrors(head, failed)
}

// joinErrors builds the error of a batch: head first, then the failed
// items in index order.
func joinErrors(head error, failed []ItemError) error {
	if head == nil && len(failed) == 0 {
		return nil
	}
	slices.SortFunc(failed, func(a, b ItemError) int { return a.Index - b.Index })
	errs := make([]error, 0, 1+len(failed))
	if head != nil {
		errs = append(errs, head)
	}
	for i := range failed {
		errs = append(errs, &failed[i])
	}
	return errors.Join(errs...)
}
