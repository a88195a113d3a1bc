// Package postgres is crew's queue on the PostgreSQL database your service
// already runs: named queues with leases, receipts, delays, priorities,
// attempts and dead letters, behind the same queue.Source and
// queue.Publisher interfaces as package memqueue and the embedded SQLite
// queue, for workers on any number of machines.
//
//	db, err := postgres.Open(ctx, os.Getenv("DATABASE_URL"))
//	if err != nil {
//		return err
//	}
//	defer db.Close()
//	q := db.Queue("emails")
//
//	c := &queue.Consumer{Source: q, Concurrency: 8, Handler: send}
//	err = c.Run(ctx) // drains on SIGTERM; see package queue
//
// # Enqueue in your own transaction
//
// The reason to queue work in the database is to enqueue it in the same
// transaction as the data it is about: [Queue.PublishTx] adds a message as
// part of a pgx.Tx of yours, so the message exists if and only if the
// transaction commits. A rolled-back order never sends its e-mail, and a
// committed one always does, with no outbox table to poll.
//
//	tx, err := pool.Begin(ctx)
//	...
//	_, err = tx.Exec(ctx, `INSERT INTO orders ...`)
//	_, err = q.PublishTx(ctx, tx, body)
//	err = tx.Commit(ctx)
//
// # Semantics
//
// A [Queue] behaves as the other crew queues do and passes the same
// conformance suite (package queuetest). Receive leases up to max ready
// messages, highest priority first, then oldest, with one UPDATE whose
// subquery locks them FOR UPDATE SKIP LOCKED: concurrent receivers, in any
// process, never wait for each other and never share a message. Each lease
// carries a new random token; Ack, Nack, Extend and DeadLetter match the
// message's ID and token, so a worker whose lease has passed on (the
// message was received again elsewhere after the lease ran out) changes
// nothing and gets queue.ErrLeaseLost. Ack deletes a whole batch with one
// statement. Dead letters stay in the table, with their reason and time,
// until [Queue.Redrive] or [Queue.Purge]. Lease and delay times are read
// from the database server's clock, so the workers' clocks do not matter.
// So is Message.FirstReceived, which the first lease of a message records
// and every later delivery repeats.
//
// Message IDs are decimal numbers, unique within the schema and never
// reused. Queues need no creating: a queue exists while it holds a message
// ([DB.Queues] lists them).
//
// A waiting Receive is woken by PostgreSQL's LISTEN/NOTIFY: every publish
// (once its transaction commits), Nack without delay, and Redrive notifies
// the schema's channel, and each DB keeps one connection listening to it,
// however many receivers wait. Notifications sent while that connection is
// down are missed, so waiters also look again every [PollInterval], which
// is also when they find messages whose delay or lease has run out.
//
// A lost connection or a restarting server is a transient error: the
// operation fails, a queue.Consumer retries it with backoff, and the pool
// connects again. Errors that retrying cannot fix (bad credentials, a
// missing database, a missing privilege, a read-only server) wrap
// crew.ErrPermanent, so a consumer stops on them.
//
// # Durability
//
// Publish, PublishTx (with its transaction), Ack and DeadLetter wait until
// the server has flushed their commit, as PostgreSQL does by default: once
// they return, they survive a crash of the server. Receive, Extend and Nack
// commit without waiting for that flush (synchronous_commit off for their
// own transaction only). A crash of the server can therefore forget a
// lease that was just taken: the message is then ready again, and received
// again, while its first holder may still run it; that holder's Ack fails
// with queue.ErrLeaseLost. Delivery is at least once either way; leasing
// without a flush is what lets a consumer take small batches quickly.
//
// # Schema
//
// Everything lives in one schema (DefaultSchema, "crew"; see [Schema]): a
// migrations table and one messages table of every queue, with an index
// for Receive and one for dead letters. Open and New create the schema or
// bring it up to date, under an advisory lock so that processes that start
// together neither fail nor migrate twice, and refuse a schema written by
// a newer version of this package. Nothing else runs DDL. Version 2 adds
// the time each message was first received; messages that an older
// version had already delivered have none (their FirstReceived is zero).
//
// # Comparisons
//
// River (riverqueue/river) is a full job system on PostgreSQL: unique
// jobs, periodic jobs, workflows and a web UI. Prefer it when you need
// those. This package is a queue for crew's consumer: lease extension for
// long jobs, a graceful drain on SIGTERM, fenced settlements, and, in the
// benchmark of the repository's benchmarks module (BenchmarkQueuePostgres),
// several times River's throughput on the same server. Amazon SQS and NATS
// JetStream (crew's queue/sqs and queue/jetstream) need no database; prefer
// them where there is no PostgreSQL to share, or where the messages would
// be a large share of its load.
package postgres
