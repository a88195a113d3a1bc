// Package batch runs a function over a known set of items, a bounded number
// at a time, and says what became of every item.
//
// A nightly job that checks a thousand payments against a slow third-party
// API needs the same few things every time: no more than N requests at once,
// and maybe no more than R a second; a timeout on each request and a retry
// when it fails for a passing reason; every failure reported, not just the
// first; and, because the job runs under a deadline (a Kubernetes CronJob's
// activeDeadlineSeconds), to stop starting requests while there is still
// time to finish the ones in flight and record what was done. Written by
// hand with a buffered channel as a semaphore and a sync.WaitGroup, each of
// these is a few more lines that are easy to get subtly wrong; with batch
// they are options:
//
//	rep, err := batch.Each(ctx, payments, func(ctx context.Context, i int, p Payment) error {
//		return reconcile(ctx, p)
//	},
//		batch.Workers(10),
//		batch.Rate(50, 10),
//		batch.ItemTimeout(5*time.Second),
//		batch.Retry(3, nil, isTransient),
//		batch.Margin(30*time.Second),
//	)
//
// [Map] is the same for work with a result: Report.Items[i] holds the
// outcome of items[i], whatever order the items finished in. [MapSeq] and
// [EachSeq] take an iter.Seq instead of a slice, for inputs too large to
// hold (rows of a query, lines of a file): their memory stays bounded
// however long the sequence is, and MapSeq yields its outcomes in input
// order as they become ready.
//
// # Outcomes and errors
//
// Every item ends in one of three states ([Status]): Succeeded, Failed
// (after its retries), or Skipped, which means it never started because the
// batch stopped first. Skipped is not a failure and is never counted as one,
// but a skipped item's Err is not nil either: it wraps [ErrSkipped] and the
// reason for the stop, so that code which checks only Err never takes a
// skipped item's zero Value for a result. A job that reconciles payments
// marks the failed ones as failed, and leaves the skipped ones for the next
// run.
//
// The error that Map and Each return is nil only when every item
// succeeded. Otherwise it is an errors.Join of the reason the batch stopped
// early, if it did and no failure explains it (the context's cause, or an
// error wrapping context.DeadlineExceeded when the deadline was too near),
// and then one *[ItemError] per failed item, in index order, so that
// errors.Is and errors.As see every item's error and each printed line
// names its item.
//
// # Stopping
//
// A batch stops starting items when its context ends, when [StopOnError]
// or [MaxErrors] fires, when the deadline is nearer than the [Margin], or
// when a [Rate] wait would end past the deadline (it is not waited out:
// every later item would wait longer still). After a stop nothing new
// starts, neither an item nor a retry, so fn is never handed a context that
// has already ended; the items not started are Skipped. The calls already
// running go on, with their context cancelled only if the parent context
// ended or for StopOnError and MaxErrors. Map and Each return only when every
// call they started has returned: no goroutine outlives them. A panic in fn
// fails its item with a *[work.PanicError], which carries the stack, and the
// batch goes on.
//
// # Cost
//
// A batch starts its workers once (never a goroutine per item) and hands
// them items one at a time, so that no item ever waits behind a slow one
// while a worker is free. The overhead is a few hundred nanoseconds per item
// and no allocation beyond the Outcome itself; see BenchmarkEach. Against
// calls that take milliseconds it does not show.
//
// # Comparisons
//
// golang.org/x/sync/errgroup with SetLimit is the usual tool, and it remains
// the better choice for a handful of calls inside one request, where the
// first error is all that matters. For a batch it falls short in ways this
// package exists to fix: Go keeps starting functions after the group's
// context is cancelled, each of which must notice by itself
// (golang/go#61611); Wait returns the first error only (golang/go#57534); and
// there is no rate limit, retry, deadline margin or per-item outcome.
//
// github.com/sourcegraph/conc/iter maps over a slice with bounded
// parallelism and is pleasant to use. Its context-taking variants cancel on
// the first error and return that error only; MapErr joins every error but
// takes no context. It has no notion of a skipped item, of rates, retries or
// deadlines, and panics are propagated to the caller rather than reported
// per item. If all you need is a parallel map over data in memory, it or a
// plain errgroup is simpler than this package.
//
// For work that arrives over time rather than as a set known up front, use
// crew's pool package instead.
package batch
