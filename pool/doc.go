// Package pool runs work that arrives over time on a bounded number of
// goroutines.
//
// A [Pool] runs at most limit tasks at once and queues a bounded number more.
// [Pool.Go] submits a task and blocks while the pool is full, which is the
// backpressure a producer needs; [Pool.TryGo] never blocks. [Pool.Wait]
// waits for every task and returns all their errors, joined; a panic in a
// task is recovered with its stack and reported the same way, never crashing
// the process.
//
//	p := pool.New(8)
//	for job := range jobs {
//		if err := p.Go(ctx, func(ctx context.Context) error { return handle(ctx, job) }); err != nil {
//			break // ctx ended, or the pool was closed
//		}
//	}
//	p.Close()
//	err := p.Wait()
//
// # Stopping
//
// [Pool.Close] stops intake: from then on Go returns [ErrClosed], including
// in a producer blocked in Go, so a callback that feeds the pool can never
// send on a closed channel or panic. Tasks already accepted still run. After
// Close and Wait, every goroutine the pool started has exited.
// [Pool.Shutdown] is Close and Wait with a deadline: when its context ends,
// the pool's context is cancelled, so that running tasks can stop, and
// queued tasks are skipped.
//
// Tasks receive the pool's context. It ends when the context given to
// [WithContext] ends, when Shutdown gives up, or, with [CancelOnError], at
// the first failure. A task that has not started by then never starts: it
// is counted in [Stats].Skipped, and never runs with a dead context.
//
// # Deadlocks
//
// A task may submit more tasks to its own pool. If every running task blocks
// in Go waiting for room that only running tasks can make, the pool
// deadlocks, as any bounded queue would. Submit from tasks with TryGo, or
// give the pool a [Queue] large enough for what tasks submit.
//
// # Performance
//
// The pool starts goroutines only as tasks need them and reuses them while
// tasks keep coming; a goroutine that finds no task waiting exits, so an
// idle pool holds no goroutine. Submitting a task allocates nothing, and
// neither does starting a goroutine once the runtime has one to reuse.
// benchmarks/README.md in the repository compares the pool with ants,
// pond, conc, errgroup and a channel semaphore on five workloads.
//
// # Comparisons
//
// errgroup.Group with SetLimit is the simplest choice when a single function
// starts a handful of goroutines and wants the first error; it starts one
// goroutine per task, keeps starting queued tasks after its context is
// cancelled, and returns one error only. For a known slice of items, package
// batch is the better fit: it keeps each item's result and error in order.
package pool
