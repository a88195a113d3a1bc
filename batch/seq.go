package batch

import (
	"context"
	"errors"
	"iter"
)

// errBreak is the cause that running items see when the loop over MapSeq
// ends early.
var errBreak = errors.New("batch: the loop over MapSeq ended early")

// errUnwound is the cause that running items see when a panic in the
// sequence (or in the loop over MapSeq) unwinds through the batch.
var errUnwound = errors.New("batch: a panic in the sequence or in the loop unwound the batch")

// EachSeq calls fn for every item of seq, at most [Workers] at once, and
// returns when seq is exhausted and every call it started has returned. It is
// [Each] for inputs too large to hold in memory (rows of a query, lines of a
// file, pages of an API): it reads seq only as fast as the workers take
// items, holds at most max(256, 4*Workers) items read and not yet taken by a
// worker, and reports counts only (Report.Items is nil). Items run in any
// order, and a slow item never holds back the others; fn receives each
// item's index in seq.
//
// seq is read from the calling goroutine, so a sequence that must not move
// between goroutines is safe. Once the batch stops (see [Map] for what
// stops it), EachSeq reads no further item: an item read after the stop is
// Skipped, and the rest of seq is never read. Skipped therefore counts the
// items read but not started, not the rest of seq.
//
// Panics in fn become failed items, as in Map. A panic in seq itself cancels
// the running items' context, waits for them, and goes on unwinding.
//
// The error is as for Map: nil if and only if every item read succeeded,
// else the reason for an early stop followed by one *[ItemError] per failed
// item, in index order. The failed items' errors are kept until EachSeq
// returns, so memory grows with failures (not with items); [MaxErrors]
// bounds both. An invalid option is returned as the error before seq is
// read.
//
// EachSeq panics if fn is nil.
func EachSeq[In any](ctx context.Context, seq iter.Seq[In], fn func(ctx context.Context, i int, in In) error, opts ...Option) (Report[struct{}], error) {
	if fn == nil {
		panic("batch: EachSeq with a nil fn")
	}
	cfg := newConfig(opts)
	if cfg.err != nil {
		return Report[struct{}]{}, cfg.err
	}
	b := newBatch(ctx, cfg, discard(fn), -1)
	defer b.cancel(errDone)
	f := newFeed(b, unordered)
	f.runSeq(seq, nil)
	rep := f.rep
	rep.Failed = len(f.errs)
	head, _ := b.stopCause()
	b.finalProgress(rep.Succeeded, rep.Failed, rep.Skipped)
	return rep, joinErrors(head, f.errs)
}

// MapSeq calls fn for every item of seq, at most [Workers] at once, and
// yields each item's index and outcome in the order of seq. It is [Map] for
// inputs too large to hold in memory: it holds at most max(256, 4*Workers)
// items (rounded up to a power of two) at a time, read from seq and not yet
// yielded, so memory stays bounded however long seq is. It reads seq only as
// fast as the loop over its result takes outcomes: a slow loop body slows
// the batch down instead of piling results up. Since outcomes come out in
// order, an item that takes long holds back the outcomes after it and, once
// the window is full, the reading of seq.
//
//	for i, o := range batch.MapSeq(ctx, rows, lookup, batch.Workers(16)) {
//		if o.Err != nil { ... }
//	}
//
// Nothing runs until the loop begins; every loop over the result runs the
// batch anew, reading seq again. seq is read from the goroutine that runs
// the loop, between outcomes: an outcome that is ready waits for seq's next
// item to arrive (or for seq to end) before it is yielded.
//
// Stops are as for Map. After a stop MapSeq reads no further item: the
// items read and not started are yielded as Skipped (their Err wraps
// [ErrSkipped] and says why the batch stopped), and the rest of seq is never
// read. Breaking out of the loop stops the batch too: the running items'
// context is cancelled, and the loop statement returns only after they have
// returned, so no goroutine outlives it. A panic in seq or in the loop body
// does the same on its way out. Panics in fn become Failed outcomes.
//
// MapSeq has no error result: a failure is in its outcome's Err. With an
// invalid option, the loop yields seq's first item as Skipped, with the
// option's error in Err, and ends.
//
// MapSeq panics if fn is nil.
func MapSeq[In, Out any](ctx context.Context, seq iter.Seq[In], fn func(ctx context.Context, i int, in In) (Out, error), opts ...Option) iter.Seq2[int, Outcome[Out]] {
	if fn == nil {
		panic("batch: MapSeq with a nil fn")
	}
	cfg := newConfig(opts)
	return func(yield func(int, Outcome[Out]) bool) {
		if cfg.err != nil {
			for range seq {
				yield(0, Outcome[Out]{Err: &skipError{cfg.err}})
				return
			}
			return
		}
		b := newBatch(ctx, cfg, fn, -1)
		defer b.cancel(errDone)
		f := newFeed(b, ordered)
		f.runSeq(seq, yield)
		b.finalProgress(f.rep.Succeeded, f.rep.Failed, f.rep.Skipped)
	}
}
