package batch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Status says what became of one item.
type Status uint8

const (
	// Skipped: the item never started (its Attempts is 0), because the batch
	// stopped first. It is the zero Status: an item that was never reached
	// is naturally Skipped.
	Skipped Status = iota
	// Succeeded: an attempt returned a nil error.
	Succeeded
	// Failed: every attempt made returned an error (or panicked).
	Failed
)

// String returns the status in lower case: "skipped", "succeeded" or
// "failed".
func (s Status) String() string {
	switch s {
	case Skipped:
		return "skipped"
	case Succeeded:
		return "succeeded"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("Status(%d)", uint8(s))
}

// Outcome is what became of one item.
type Outcome[T any] struct {
	// Value is what the last attempt returned. It is meaningful when Status
	// is Succeeded; for a failed item it is whatever fn returned with its
	// error (the zero value after a panic), and for a skipped item the zero
	// value.
	Value T
	// Err is nil if and only if the item Succeeded. For a Failed item it is
	// the last attempt's error as fn returned it (a *[work.PanicError] if fn
	// panicked); for a Skipped item it wraps [ErrSkipped] and the reason the
	// batch stopped, so that code which only looks at Err never mistakes a
	// skipped item's zero Value for a result.
	Err error
	// Attempts counts the calls of fn made for the item: 0 when Skipped, 1
	// without retries.
	Attempts int
	// Status says whether the item succeeded, failed or never started.
	Status Status
	// Elapsed runs from the start of the first attempt to the end of the
	// last, waits between retries included (the wait for a [Rate] turn
	// before the first attempt is not). It is 0 for a skipped item.
	Elapsed time.Duration
}

// Report is the result of a batch: one Outcome per item, and counts.
type Report[T any] struct {
	// Items[i] is the outcome of items[i], whatever order the items ran in.
	// It is nil for [EachSeq], which keeps counts only.
	Items []Outcome[T]
	// Succeeded, Failed and Skipped count the items by Status. For a slice
	// they add up to len(items); for a sequence, to the items read from it.
	Succeeded, Failed, Skipped int
}

// Progress is a snapshot of a running batch, passed to the [OnProgress]
// callback.
type Progress struct {
	// Total is the number of items, or -1 for a sequence, whose length is
	// not known.
	Total int
	// Done counts the items finished so far: Succeeded + Failed + Skipped.
	Done                       int
	Succeeded, Failed, Skipped int
	// Elapsed is the time since the batch began.
	Elapsed time.Duration
}

// ErrSkipped is wrapped by the Err of every Skipped item, together with the
// reason the batch stopped: errors.Is(o.Err, batch.ErrSkipped) tells a
// skipped item from a failed one, and errors.Is(o.Err,
// context.DeadlineExceeded) says whether time ran out.
var ErrSkipped = errors.New("batch: item skipped")

// skipError is the Err of a Skipped item. One value serves every item
// skipped for the same reason.
type skipError struct{ cause error }

func (e *skipError) Error() string {
	return ErrSkipped.Error() + ": " + strings.TrimPrefix(e.cause.Error(), "batch: ")
}

func (e *skipError) Unwrap() []error { return []error{ErrSkipped, e.cause} }

// ItemError is one failed item in the error that Map, Each and EachSeq
// return: the item's index and the error of its last attempt.
type ItemError struct {
	Index    int   // the item's index in the slice or sequence
	Attempts int   // the calls of fn made for the item
	Err      error // the last attempt's error, as in [Outcome.Err]
}

// Error returns the index, the number of attempts when there were several,
// and the error.
func (e *ItemError) Error() string {
	if e.Attempts > 1 {
		return fmt.Sprintf("item %d (after %d attempts): %v", e.Index, e.Attempts, e.Err)
	}
	return fmt.Sprintf("item %d: %v", e.Index, e.Err)
}

// Unwrap returns the item's error, so that errors.Is and errors.As on the
// joined error reach every item's error.
func (e *ItemError) Unwrap() error { return e.Err }

// Map calls fn for every item, at most [Workers] at once, and returns when
// every call it started has returned. Workers take the items in index order,
// one at a time as they become free, and items finish in any order;
// Report.Items[i] is always the outcome of items[i], and fn receives i with
// the item.
//
// The batch stops starting items when ctx ends, when [StopOnError] or
// [MaxErrors] fires, when the deadline is within the [Margin], or when a
// [Rate] wait would outlast the deadline. Nothing new starts after a stop,
// neither an item nor a retry, so fn never receives a context that has
// already ended because of the stop: the items not started are Skipped, with
// Attempts 0. The items running at the moment of a stop run to the end;
// their context is cancelled only when ctx itself ends or for
// StopOnError/MaxErrors.
//
// A panic in fn is recovered: the item Fails with a *[work.PanicError] that
// holds the stack, and the batch goes on. No goroutine started by Map
// outlives it.
//
// The error is nil if and only if every item Succeeded. Otherwise it is an
// errors.Join of, first, the reason the batch stopped when that reason is
// not a failed item (context.Cause(ctx), or an error wrapping
// context.DeadlineExceeded for Margin and Rate, so that errors.Is(err,
// context.DeadlineExceeded) says that time ran out), then one *[ItemError]
// per failed item, in index order. Skipped items are counted in the Report,
// not listed in the error. An invalid option is reported as the error, with
// every item Skipped and fn never called.
//
// Map panics if fn is nil.
func Map[In, Out any](ctx context.Context, items []In, fn func(ctx context.Context, i int, in In) (Out, error), opts ...Option) (Report[Out], error) {
	if fn == nil {
		panic("batch: Map with a nil fn")
	}
	rep := Report[Out]{Items: make([]Outcome[Out], len(items))}
	cfg := newConfig(opts)
	if cfg.err != nil {
		skipAll(&rep, cfg.err)
		return rep, cfg.err
	}
	b := newBatch(ctx, cfg, fn, len(items))
	defer b.cancel(errDone)

	newFeed(b, fromSlice).runSlice(items, rep.Items)
	return rep, b.finish(&rep)
}

// Each is [Map] for work without a result: it calls fn for every item, at
// most [Workers] at once, and returns when every call it started has
// returned. Report.Items[i] is the outcome of items[i]. Stops, skips, panics
// and the error are as for Map: the error is nil if and only if every item
// succeeded, and otherwise joins the reason for an early stop with one
// *[ItemError] per failed item.
//
// Each panics if fn is nil.
func Each[In any](ctx context.Context, items []In, fn func(ctx context.Context, i int, in In) error, opts ...Option) (Report[struct{}], error) {
	if fn == nil {
		panic("batch: Each with a nil fn")
	}
	return Map(ctx, items, discard(fn), opts...)
}

// discard adapts an Each function to Map's shape.
func discard[In any](fn func(context.Context, int, In) error) func(context.Context, int, In) (struct{}, error) {
	return func(ctx context.Context, i int, in In) (struct{}, error) {
		return struct{}{}, fn(ctx, i, in)
	}
}

// skipAll marks every item of rep Skipped because of cause.
func skipAll[T any](rep *Report[T], cause error) {
	err := &skipError{cause}
	for i := range rep.Items {
		rep.Items[i].Err = err
	}
	rep.Skipped = len(rep.Items)
}
