// Package work holds what every crew package agrees on about a piece of
// work: how it fails, and how long it may take to finish once it has been
// asked to stop.
//
// A panic in a pool task, a batch item, a wait attempt, a queue handler or a
// supervised worker is recovered into a *[PanicError] that carries the
// panicking goroutine's stack, so that one errors.As finds a panic wherever
// crew ran the code. [Catch] is that recovery, for code of your own that runs
// other people's functions.
//
// Wrap [ErrPermanent] in an error to say that trying again cannot help: a
// message whose handler returns it is dead-lettered at once, a batch item is
// not retried, and a supervised worker is not restarted.
//
// When a supervisor stops, it cancels its workers' contexts but grants the
// work they have in progress a drain: time to finish what was started, such
// as the request being served or the message being handled. [DrainContext]
// returns a context that ends with that drain instead of with the
// cancellation; [WithDrain] is how a supervisor attaches its drain to the
// contexts it hands out.
//
// This package depends on the standard library alone, and in particular on
// neither net/http nor os/signal, so that pool, batch, wait and queue can
// share these names without pulling in the supervisor. Package crew
// re-exports them: crew.PanicError is the same type as work.PanicError, and
// crew.ErrPermanent the same error as work.ErrPermanent.
package work
