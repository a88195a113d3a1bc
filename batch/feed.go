package batch

import (
	"iter"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// maxSpins is how many times an idle worker of MapSeq or EachSeq looks for
// the next item, yielding the processor in between, before it sleeps.
// Spinning saves a sleep and a wake-up per item while the sequence produces
// items about as fast as the workers finish them. One worker at most spins
// at a time.
const maxSpins = 16

// window returns how many items MapSeq and EachSeq hold at most with the
// given number of workers: items read from the sequence and not yet passed
// on, whether waiting for a worker, running, or (MapSeq) finished and
// waiting for the items before them. It is 4*workers, but at least 256,
// rounded up to a power of two.
func window(workers int) int {
	return 1 << bits.Len(uint(max(4*workers, 256)-1))
}

type feedMode uint8

const (
	fromSlice feedMode = iota // Map, Each: items and outcomes in slices
	ordered                   // MapSeq: a ring; outcomes yielded in order
	unordered                 // EachSeq: a ring; outcomes counted
)

// feed hands a batch's items to its workers, one at a time: no item ever
// waits behind another while a worker is free.
//
// Items are numbered in order; tail counts those available and head those
// claimed, and a worker claims item head by advancing head. For a slice,
// tail is len(items) from the start. For a sequence, the goroutine that
// ranges over it (the reader) puts item i into slot i&mask of a ring and
// advances tail. When a worker no longer needs item i's slot, it stores i+1
// into ready[i&mask]; the reader follows with next, and reads item n only
// once next > n-len(ring), which is what bounds memory. For MapSeq, a worker
// needs the slot until it has put the item's outcome into out, from which
// the reader yields outcomes in order; for EachSeq, a worker copies the item
// out of its slot before running it, so that a slow item never holds back
// the reader.
type feed[In, Out any] struct {
	b     *batch[In, Out]
	mode  feedMode
	items []In           // fromSlice
	outs  []Outcome[Out] // fromSlice
	in    []In           // the ring
	out   []Outcome[Out] // ordered
	ready []atomic.Int64 // ready[i&mask] is i+1 once item i's slot is free
	mask  int

	tail   atomic.Int64
	head   atomic.Int64
	closed atomic.Bool // tail is final

	// Idle workers sleep on cond; idle counts them (and those about to
	// sleep) and spinning the one worker that may spin instead.
	mu       sync.Mutex
	cond     sync.Cond
	idle     atomic.Int32
	spinning atomic.Int32
	wg       sync.WaitGroup

	// The reader, waiting for item i, stores i in waitFor and sleeps on
	// wake; the worker done with item i wakes it. A stale wake-up only
	// makes the reader look again.
	waitFor atomic.Int64
	wake    chan struct{}

	// Owned by the reader.
	started bool
	next    int  // the first item the reader has not passed
	broke   bool // MapSeq's loop body returned false
	rep     Report[struct{}]

	errsMu sync.Mutex // EachSeq's workers add their counts when they exit
	errs   []ItemError
}

func newFeed[In, Out any](b *batch[In, Out], mode feedMode) *feed[In, Out] {
	f := &feed[In, Out]{b: b, mode: mode}
	f.cond.L = &f.mu
	f.waitFor.Store(-1)
	if mode != fromSlice {
		size := window(b.cfg.workers)
		f.in = make([]In, size)
		f.ready = make([]atomic.Int64, size)
		f.mask = size - 1
		f.wake = make(chan struct{}, 1)
		if mode == ordered {
			f.out = make([]Outcome[Out], size)
		}
	}
	return f
}

// runSlice runs a slice batch and returns once every worker has returned.
func (f *feed[In, Out]) runSlice(items []In, outs []Outcome[Out]) {
	f.items, f.outs = items, outs
	f.tail.Store(int64(len(items)))
	f.closed.Store(true)
	for range min(f.b.cfg.workers, len(items)) {
		f.wg.Go(f.work)
	}
	f.wg.Wait()
}

// publish makes the items before n available, and wakes a worker if none is
// looking for work. The first call starts the workers.
func (f *feed[In, Out]) publish(n int) {
	f.tail.Store(int64(n))
	if !f.started {
		f.started = true
		for range f.b.cfg.workers {
			f.wg.Go(f.work)
		}
		return
	}
	if f.spinning.Load() == 0 && f.idle.Load() > 0 {
		f.mu.Lock()
		f.cond.Signal()
		f.mu.Unlock()
	}
}

// close tells the workers that tail is final. It may be called twice.
func (f *feed[In, Out]) close() {
	f.closed.Store(true)
	f.mu.Lock()
	f.cond.Broadcast()
	f.mu.Unlock()
}

// claim returns the next item's index for a worker, waiting for one if need
// be, and reports whether it had to wait. It returns ok false when the feed
// is closed and every item is claimed, or when a slice batch has stopped
// (finish marks the rest Skipped).
//
// A worker going to sleep counts itself idle, under mu, before it looks at
// tail one last time, and publish advances tail before it looks at idle: so
// either the worker sees the new item or publish sees the worker and wakes
// it. publish wakes nobody while a worker spins; a spinner stops counting as
// spinning before it looks at tail again, whether it gives up or claims an
// item, and in the latter case wakes a sleeper for any item left, so no
// item is left unclaimed while a worker sleeps.
func (f *feed[In, Out]) claim() (i int, ok, waited bool) {
	spins, spinner := 0, false
	defer func() {
		if spinner {
			f.spinning.Add(-1)
		}
	}()
	for {
		if f.mode == fromSlice {
			if f.b.stopped.Load() {
				return 0, false, false
			}
			i := int(f.head.Add(1) - 1)
			return i, i < len(f.items), false
		}
		h, t := f.head.Load(), f.tail.Load()
		if h < t {
			if !f.head.CompareAndSwap(h, h+1) {
				continue
			}
			// publish wakes nobody while a worker spins, counting on the
			// spinner; so the spinner, once it stops spinning, hands on
			// what it leaves, and so does any worker that leaves items.
			if spinner {
				f.spinning.Add(-1)
				spinner = false
			}
			if f.tail.Load() > h+1 && f.idle.Load() > 0 {
				f.mu.Lock()
				f.cond.Signal()
				f.mu.Unlock()
			}
			return int(h), true, waited
		}
		if f.closed.Load() && f.head.Load() >= f.tail.Load() {
			return 0, false, waited
		}
		waited = true
		if spins < maxSpins && (spinner || f.spinning.CompareAndSwap(0, 1)) {
			spinner = true
			spins++
			runtime.Gosched()
			continue
		}
		if spinner {
			f.spinning.Add(-1)
			spinner = false
		}
		f.mu.Lock()
		f.idle.Add(1)
		for f.head.Load() >= f.tail.Load() && !f.closed.Load() {
			f.cond.Wait()
		}
		f.idle.Add(-1)
		f.mu.Unlock()
		spins = 0
	}
}

// done marks item i's slot free, and wakes the reader if it waits for it.
func (f *feed[In, Out]) done(i int) {
	f.ready[i&f.mask].Store(int64(i) + 1)
	if f.waitFor.Load() == int64(i) {
		select {
		case f.wake <- struct{}{}:
		default:
		}
	}
}

func (f *feed[In, Out]) work() {
	b := f.b
	var zero In
	var succeeded, skipped int
	var errs []ItemError
	now := time.Now()
	for {
		i, ok, waited := f.claim()
		if !ok {
			break
		}
		if waited {
			now = time.Now()
		}
		switch f.mode {
		case fromSlice:
			now = b.run(i, f.items[i], &f.outs[i], now)
		case ordered:
			slot := i & f.mask
			o := &f.out[slot]
			now = b.run(i, f.in[slot], o, now)
			f.in[slot] = zero // let the item be collected
			if o.Status == Skipped {
				_, o.Err = b.stopCause()
			}
			f.done(i)
		case unordered:
			slot := i & f.mask
			in := f.in[slot]
			f.in[slot] = zero
			f.done(i)
			var o Outcome[Out]
			now = b.run(i, in, &o, now)
			switch o.Status {
			case Succeeded:
				succeeded++
			case Failed:
				errs = append(errs, ItemError{Index: i, Attempts: o.Attempts, Err: o.Err})
			default:
				skipped++
			}
		}
	}
	if f.mode == unordered {
		f.errsMu.Lock()
		f.rep.Succeeded += succeeded
		f.rep.Skipped += skipped
		f.errs = append(f.errs, errs...)
		f.errsMu.Unlock()
	}
}

// isDone reports whether the slot of item next is free.
func (f *feed[In, Out]) isDone() bool {
	return f.ready[f.next&f.mask].Load() == int64(f.next)+1
}

// advance follows the items up to limit: all the way, waiting for workers,
// if wait, else as far as they are done. For MapSeq it yields the outcomes
// on the way, and stops if the loop body breaks.
func (f *feed[In, Out]) advance(limit int, wait bool, yield func(int, Outcome[Out]) bool) {
	for !f.broke && f.next < limit {
		if !f.isDone() {
			if !wait {
				return
			}
			f.waitFor.Store(int64(f.next))
			if !f.isDone() {
				<-f.wake
			}
			f.waitFor.Store(-1)
			continue
		}
		if f.mode == unordered {
			f.next++
		} else if !yield(f.take()) {
			f.broke = true
		}
	}
}

// take removes the next outcome from the ring and counts it.
func (f *feed[In, Out]) take() (int, Outcome[Out]) {
	i := f.next
	s := i & f.mask
	o := f.out[s]
	f.out[s] = Outcome[Out]{} // run expects a zero slot; drop references
	f.next++
	switch o.Status {
	case Succeeded:
		f.rep.Succeeded++
	case Failed:
		f.rep.Failed++
	default:
		f.rep.Skipped++
	}
	return i, o
}

// runSeq reads seq, feeding the workers, until seq ends, the batch stops or
// MapSeq's loop body breaks; then it waits for the workers. yield is nil
// for EachSeq.
func (f *feed[In, Out]) runSeq(seq iter.Seq[In], yield func(int, Outcome[Out]) bool) {
	b := f.b
	returned := false
	defer func() {
		if !returned { // a panic in seq or in the loop body
			b.stop(errUnwound, false, true)
			f.close()
			f.wg.Wait()
		}
	}()
	size := len(f.in)
	n := 0
	skippedAt := -1 // an item read after the stop
	for in := range seq {
		if !b.running() {
			skippedAt = n
			break
		}
		f.advance(n-size+1, true, yield) // make room for item n
		if f.mode == ordered {
			f.advance(n, false, yield) // and pass on what is ready
		}
		if f.broke {
			break
		}
		f.in[n&f.mask] = in
		n++
		f.publish(n)
	}
	if f.broke {
		b.stop(errBreak, false, true)
	}
	f.close()
	if f.mode == ordered {
		f.advance(n, true, yield)
		if f.broke {
			b.stop(errBreak, false, true)
		}
	}
	f.wg.Wait()
	returned = true
	if skippedAt >= 0 {
		f.rep.Skipped++
		if f.mode == ordered && !f.broke {
			_, skip := b.stopCause()
			yield(skippedAt, Outcome[Out]{Err: skip})
		}
	}
	if f.mode == ordered {
		for f.next < n { // outcomes the loop will never see
			f.take()
		}
	}
}
