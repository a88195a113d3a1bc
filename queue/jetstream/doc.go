// Package jetstream runs crew's queue consumer on NATS JetStream, for teams
// that already run NATS and want their workers spread over many machines.
//
// A queue is a subject of a work-queue stream, consumed through one durable
// pull consumer that every worker process shares. [New] opens one on a
// JetStream handle and [Open] from a URL; either creates the stream and the
// consumer on first use. A [*Queue] is a queue.Source and a
// queue.Publisher, so a queue.Consumer runs on it as on any other backend:
//
//	q, err := jetstream.Open(ctx, "nats://127.0.0.1:4222?queue=emails")
//	...
//	c := &queue.Consumer{Source: q, Concurrency: 8, Handler: sendEmail}
//	err = c.Run(ctx)
//
// # What crew does about JetStream's traps
//
// JetStream's own consumers pre-buffer messages (Consume and Messages pull
// ahead), so a message's AckWait starts before its handler does, and a long
// job can run twice. Receive pulls only as many messages as the consumer
// has free handlers, and waits for one message at a time when the queue is
// empty, so no message is leased to a process that did not ask for it.
//
// A plain Ack, Nak or InProgress is fire-and-forget. Every acknowledgement
// this package sends is confirmed by the server (DoubleAck for an Ack, the
// same request-reply for the others), so a lost one is an error that the
// consumer retries instead of a silent redelivery later. A failed message
// waits out the consumer's backoff (a Nak with delay) instead of coming
// back at once. The consumer is created with MaxDeliver -1 and
// MaxAckPending -1: crew counts attempts itself, and JetStream has no dead
// letters of its own (MaxDeliver only stops redelivering, leaving the
// message in the stream), so a message over queue.Consumer.MaxAttempts, or
// failed with crew.ErrPermanent, is copied to the subject <subject>.dead
// with its reason and attempts as headers, then terminated. [Queue.Dead],
// [Queue.Redrive] and [Queue.Purge] look after them.
//
// # Leases and fencing
//
// The lease is the consumer's AckWait (30 seconds unless [AckWait] says
// otherwise). A Receive or Extend with another lease sends one confirmed
// Nak with that delay per message, which JetStream applies to the
// redelivery timer of the message as delivered; it is best to set the
// consumer's Lease and the AckWait alike. Message.Attempt is JetStream's
// delivery count.
//
// JetStream keeps no time of a message's first delivery: a delivered
// message tells how many times it was delivered and when it was stored,
// not when it was first delivered. So Message.FirstReceived is set on a
// first delivery only, to the moment it arrived, and is zero on every
// redelivery and in the dead letters; a handler that needs the time across
// retries can publish it as an attribute.
//
// JetStream accepts an acknowledgement sent for an earlier delivery of a
// message: it does not fence a worker whose lease ran out. crew does, on
// the client: each delivery gets a receipt with the time by which the
// server may redeliver it (counted from before the request that fetched
// it, or before the last confirmed extension), and a Queue refuses, with
// queue.ErrLeaseLost, to acknowledge, give back or extend a delivery past
// that time or after it received the same message again. What remains is
// the network delay of a last-moment acknowledgement, which can reach the
// server after it redelivered the message; a queue.Consumer extends leases
// every third of the lease, so that takes a process stalled for most of a
// lease. Delivery is at least once, as with every crew backend: handlers
// should be idempotent.
//
// # What JetStream cannot do
//
// A consumer delivers in stream order: there are no priorities, and a
// Publish with queue.Priority other than 0 fails with [ErrNoPriority]. A
// Publish with queue.Delay uses JetStream's message schedules (NATS 2.12
// or later, a stream with AllowMsgSchedules): the message waits on a
// subject of its own under <subject>.delayed. until the server publishes it
// to the queue. On a stream that cannot schedule, it fails with
// [ErrNoSchedules] rather than deliver at once.
//
// # Servers that restart
//
// A lost connection or a restarting server makes Receive, Publish and the
// acknowledgements fail with errors that clear once the client
// reconnects; the consumer retries them. Nothing is lost: a message
// whose acknowledgement did not reach the server is delivered again when
// its lease ends. A deleted stream or consumer, or a permission error, is
// an error that wraps crew.ErrPermanent, and the consumer stops.
package jetstream
