// Package crew supervises the long-running workers of a Go service (HTTP
// servers, queue consumers, periodic jobs) so that they start together, stop
// together, and stop gracefully.
//
// A [Group] holds named workers. [Group.Run] starts them and returns when all
// of them have returned. The group stops when its context ends (for example
// on SIGTERM, through [Main]), when [Group.Stop] is called, or when any worker
// returns: a failure anywhere stops the rest, and Run reports every worker's
// error, by name, in one *[Error]. It never returns while a worker is still
// running, except for the workers that ignore their context past
// StopTimeout: those are named as stragglers, so that a hung worker cannot
// hang the process.
//
//	var g crew.Group
//	g.Add("http", crew.HTTPServer(&http.Server{Addr: ":8080", Handler: mux}))
//	g.Add("refresh", crew.Every(time.Minute, refreshCache))
//	crew.Main(&g) // SIGINT/SIGTERM drain; a second signal exits at once
//
// # Order, readiness and restarts
//
// Options given to [Group.Add] shape each worker's life. [After] orders
// start-up (a consumer starts once its database pool is ready) and reverses
// that order at stop (the consumer stops first). [WaitReady] lets a worker say
// when it serves, through [MarkReady]; [Group.ReadyHandler] turns readiness
// into a Kubernetes readiness probe, and Group.DrainDelay keeps the probe
// failing for a while before anything stops, so that no request is routed to
// a server that has closed its listener. [OneShot] is for work that finishes,
// such as a migration that other workers come after. [Restart] restarts a
// worker with backoff and gives up, stopping the group, when it fails too
// often. [Every] makes a worker of periodic work, such as refreshing a cache:
// its runs never overlap, and a run in progress at the stop finishes within
// the drain.
//
// # Stopping
//
// The stop cancels each worker's context with a cause that says why
// ([context.Cause]): a *[SignalError], the cause given to Stop, or the
// *[WorkerError] that began it. Group.StopTimeout is one budget for the whole
// stop, and [DrainContext] hands its deadline to the code that drains, such
// as http.Server.Shutdown, so that nothing outlives it. [HTTPServer] does all
// of this for an *http.Server.
//
// A panic in a worker is recovered into a *[PanicError] carrying the stack,
// and stops the group like any failure, unless [PassPanics] is given.
// PanicError, [ErrPermanent] and [DrainContext] come from package
// [github.com/crewgo/crew/work], which the other crew packages share without
// depending on this one.
//
// A *Group is itself a [Worker]: add one group to another to build a
// supervision tree, where the inner group stops as one worker of the outer.
//
// # Comparisons
//
// golang.org/x/sync/errgroup runs functions until the first error and
// returns that error only; it has no names, no stop timeout, no ordering and
// no readiness. It remains the better choice for a handful of goroutines
// inside one request. github.com/oklog/run is a minimal actor group with the
// same first-error semantics and interrupt functions instead of contexts.
// Erlang-style supervisors such as github.com/thejerf/suture restart workers
// for ever in a tree; crew's Group restarts only on request, within limits,
// and treats stopping gracefully as its main job.
//
// The subpackages cover the other shapes of concurrent work: pool for work
// that arrives over time, batch for a known set of items, wait for the first
// of several attempts, and queue for consuming a message queue without losing
// a message across deploys.
package crew
