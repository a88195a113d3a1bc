// Package queue consumes message queues without losing a message across
// deploys, crashes and slow jobs.
//
// A [Consumer] receives from a [Source] and runs a [Handler] on each message,
// at most Concurrency at once. It is a crew.Worker, so it runs on its own
// with Run or as one worker of a crew.Group next to an HTTP server:
//
//	c := &queue.Consumer{
//		Source:      q, // memqueue.New(), or a durable queue such as queue/sqlite
//		Concurrency: 8,
//		Handler: func(ctx context.Context, m *queue.Message) error {
//			return sendEmail(ctx, m.Body)
//		},
//	}
//	var g crew.Group
//	g.Add("emails", c)
//	crew.Main(&g)
//
// # What the consumer guarantees
//
// It receives only for free handler slots, so it never holds messages that
// it cannot start before their leases run out. While a handler runs, the
// message's lease is extended, so a job may run for an hour with a
// 30-second lease; a failed extension cancels the handler, because the
// message now belongs to someone else. A handler's success acknowledges the
// message, in batches. A failure makes it ready again after a backoff delay
// (never at once), and after MaxAttempts deliveries the message is
// dead-lettered with its last error; a panic is a failure like any other.
//
// Every acknowledgement carries the receipt of the lease it was received
// under: a consumer whose lease expired cannot acknowledge (and so delete)
// a message that another consumer is now handling. Such calls fail with
// [ErrLeaseLost] and change nothing.
//
// # Stopping
//
// When Run's context ends, as on SIGTERM during a deploy, the consumer
// stops receiving at once, gives back (at once, not at lease expiry) the
// messages it holds but has not started, and lets running handlers finish:
// their contexts are not cancelled, and their leases keep being extended.
// Only at the drain deadline are they cancelled; what is still unfinished
// then is given back and named in the *[DrainError] that Run returns. Inside
// a crew.Group, the drain deadline never outlives the group's StopTimeout.
//
// # Throughput
//
// The defaults suit slow jobs and quick ones alike. For quick jobs the
// Source's round trips set the pace, so a Consumer whose Prefetch is zero
// lets its prefetch grow while handlers finish during a Receive: a slot
// that frees up then finds its next message already received, and one
// Receive (on a database, one commit) serves many messages, while
// AckBatch lets one acknowledgement settle up to 64 of them. Handlers
// slower than a Receive keep the prefetch at none. The repository's
// benchmarks/README.md measures the defaults against tuned settings and a
// hand-written loop. Prefetched messages are leased while they wait: set
// Prefetch yourself only to cap it (negative for none) or to hold more for
// a Source whose round trips are long.
//
// # Limits beyond concurrency
//
// RateLimit (a golang.org/x/time/rate Limiter) bounds how many handlers
// start per second, for a downstream API that allows so many calls: the
// consumer receives only what the limiter lets start now, so messages wait
// in the queue, not leased. Key and PerKey bound how many handlers run at
// once for one value of a message attribute, such as a tenant, so that one
// tenant's backlog cannot take every slot: a message whose tenant is busy
// waits, leased, only when it should start within about one handler's run,
// and is otherwise postponed, given back to the queue for about as long as
// the tenant needs to catch up.
//
// # Sources
//
// [Source] is a small interface: Receive with a lease, Ack, Nack, Extend
// and DeadLetter. Package memqueue implements it in memory; the module
// github.com/crewgo/crew/queue/sqlite implements it as an embedded durable
// queue. Package queuetest checks any implementation against the
// semantics the consumer relies on.
//
// # Errors that never clear
//
// A Source says that an error will never clear, such as a corrupt or
// read-only file, a full disk or bad credentials, by wrapping
// crew.ErrPermanent in it. The consumer then stops as if its context had
// ended, releasing what it holds and draining what runs, and Run returns
// that error, so that a worker exits with a message that names the store
// and the cause instead of retrying for ever. Any other error of the Source
// is retried with backoff, so a busy database or a network blip costs a
// delay, not a message.
//
// Success is reported (in Stats, the log and OnResult) only once the
// message's acknowledgement has committed; a message whose acknowledgement
// failed is reported as LeaseLost, since it may be delivered again. When a
// Source's Ack names the messages of a batch whose lease was lost (with
// *[LeaseLostError]), only those are; the rest of the batch succeeded.
package queue
