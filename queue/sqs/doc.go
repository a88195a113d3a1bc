// Package sqs runs crew's queue consumer on Amazon SQS: the worker whose
// jobs take up to an hour, that stops receiving on a deploy, finishes what
// it holds and exits, and loses nothing.
//
// A [Queue] is one SQS queue, as a queue.Source for a queue.Consumer and as
// a queue.Publisher. Make one from an SQS client and the queue's URL with
// [New], or from a URL such as sqs://sqs.eu-west-1.amazonaws.com/123456789012/emails
// and the default AWS configuration with [Open]:
//
//	q := sqs.New(sqsClient, queueURL)
//	defer q.Close()
//	c := &queue.Consumer{Source: q, Handler: sendEmail, Concurrency: 8, Lease: time.Minute}
//	err := c.Run(ctx) // ctx ends on SIGTERM: drain, then return
//
// What the consumer gets right on SQS, where hand-written consumers
// usually do not:
//
//   - Long jobs keep their messages: the consumer extends each message's
//     visibility (ChangeMessageVisibility) every third of its lease for as
//     long as the handler runs, up to SQS's limit of 12 hours after the
//     receive. Past that limit the lease is reported lost with
//     [ErrVisibilityLimit], once, rather than retried in a loop.
//   - Acknowledgements are batched, ten to a DeleteMessageBatch, and every
//     entry SQS reports in Failed is looked at: an invalid receipt is
//     queue.ErrLeaseLost for that message, any other failure is retried and
//     then reported. None is ignored.
//   - A stop does not strand messages. When the consumer stops during a long
//     poll, the poll is left to finish in the background and whatever SQS
//     hands it is made visible again at once; [Queue.Close] waits for it.
//     Messages received but not started are released the same way, and
//     running handlers have the drain timeout to finish.
//   - A deploy does not burn attempts: messages given back at a stop become
//     visible at once, and their handlers were never run.
//   - Dead letters go to the queue's dead-letter queue (from its
//     RedrivePolicy, or [DeadLetterQueue]) with the reason in the message
//     attribute "crew.dead", and are then deleted from the queue;
//     [Queue.Dead], [Queue.Redrive] and [Queue.Purge] manage them.
//
// # Receipts and what crew guarantees
//
// SQS does not reliably refuse a stale receipt handle: a delete with one
// "succeeds, but the message might not be deleted", or deletes the copy that
// another consumer now holds. A Queue therefore fences receipts itself. It
// knows when each lease it holds ends (counting from before the request that
// took or extended it), and once that time is near, or once the copy has
// been acknowledged, released, retried or dead-lettered, every call with the
// receipt returns queue.ErrLeaseLost without asking SQS. So a consumer never
// acknowledges a message whose lease it knows has ended. Delivery remains at
// least once: a handler can run again after a crash, or after SQS lost an
// acknowledgement; use the message ID to make handlers idempotent.
//
// # What differs from other backends
//
// SQS has no priorities: queue.Priority is ignored, and a standard queue
// keeps no order; use one queue per priority. Delays are whole seconds up to
// 15 minutes, leases whole seconds. Message.Attempt is SQS's
// ApproximateReceiveCount, and Message.FirstReceived its
// ApproximateFirstReceiveTimestamp (whole milliseconds). On a FIFO queue (a URL ending in .fifo), publish
// with [MessageGroup] and [DeduplicationID]; a Receive holds at most one
// message per group, so a group's messages are handled one at a time, in
// order, and a failing message holds its group back until it succeeds or is
// dead-lettered.
//
// # Requests and throughput
//
// SQS bills every request and returns at most ten messages to one. A
// consumer receives for its free handler slots, so without a prefetch quick
// handlers would make it ask for a few messages at a time. A Queue is a
// queue.PrefetchLimiter: a Consumer whose Prefetch is zero lets its
// adaptive prefetch grow up to nine messages per handler (at most 90) while
// its handlers finish faster than a Receive, so that each Receive asks for
// several tens and the Queue makes one request per ten at once: about 0.2
// to 0.3 requests per message (a receive and a batched delete per ten).
// Slow handlers keep the prefetch at none, so long jobs never hold messages
// they cannot start. The benchmarks module measures this against a
// hand-written consumer.
//
// A queue that does not exist, and credentials or permissions that SQS
// refuses, are errors wrapping crew.ErrPermanent: a Consumer stops on them
// instead of retrying. Everything else (throttling, a network failure) is
// retried.
//
// Every method of a Queue is safe for concurrent use. Those that make
// requests return when their context ends, with its error; only a long
// poll's requests outlive it, as described above. No method calls code of
// yours, so none panics on your behalf.
//
// Package sqstest starts a local SQS emulator for tests of code that uses
// this package.
package sqs
