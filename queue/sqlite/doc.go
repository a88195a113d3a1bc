// Package sqlite is crew's embedded durable queue, and its default
// backend: named queues in one SQLite file, with leases, receipts, delays,
// priorities, attempts and dead letters, behind the same queue.Source and
// queue.Publisher interfaces as package memqueue. It is pure Go
// (modernc.org/sqlite, no cgo) and needs no server.
//
//	db, err := sqlite.Open("crew.db")
//	if err != nil {
//		return err
//	}
//	defer db.Close()
//	q := db.Queue("emails")
//	_, err = q.Publish(ctx, body, queue.Delay(time.Minute))
//
//	c := &queue.Consumer{Source: q, Concurrency: 8, Handler: send}
//	err = c.Run(ctx) // drains on SIGTERM; see package queue
//
// # Semantics
//
// A [Queue] behaves as package memqueue does, and passes the same
// conformance suite (package queuetest). Receive leases up to max ready
// messages for the lease given, highest priority first, then oldest, in
// one transaction, and counts a delivery attempt on each. Every delivery
// carries a new random receipt; Ack, Nack, Extend and DeadLetter name it,
// so a worker whose lease has passed on (the message was received again,
// in this process or another) changes nothing and gets queue.ErrLeaseLost.
// A lease that has run out keeps its receipt valid until the message is
// received again. Ack deletes a whole batch in one transaction. Dead
// letters stay in the file, with their reason, until [Queue.Redrive] or
// [Queue.Purge].
//
// Message IDs are decimal numbers, unique within the file and never
// reused. Queues need no creating: a queue exists while it holds a
// message ([DB.Queues] lists them).
//
// # Several processes
//
// Any number of processes may open the same file, each with its own [DB]:
// the file is in WAL mode, so readers never block, and every write
// transaction begins with BEGIN IMMEDIATE, so that writers queue for the
// file's lock (up to the [BusyTimeout]) instead of failing on a lock
// upgrade. Updates are never lost: a lease, and every fenced settlement,
// checks and changes the rows in one transaction that holds that lock.
//
// A waiting Receive is woken at once by a publish (or Nack, or Redrive)
// through the same DB. Messages published by other processes, and leases
// that run out, are seen within the [PollInterval]; a delayed message is
// waited for until its time, however long the interval.
//
// The file must be on a local disk: SQLite's locking does not work on
// network file systems. Times (delays, leases) are read from each
// process's wall clock, so the processes sharing a file should share a
// clock, as they do on one machine.
//
// # Durability
//
// [Synchronous] chooses what a commit promises. With "FULL", the default,
// every commit is flushed to the disk before Publish, Receive or Ack
// returns: once Publish has returned, the message survives a crash of the
// process and of the machine. With "NORMAL", a commit reaches the operating
// system but is flushed only at checkpoints: a crash of the process loses
// nothing either, but a power cut or kernel crash may lose the last
// commits, so that a message that was published vanishes or one that was
// acknowledged is delivered again. The file is never corrupted in either
// mode. NORMAL is worth it where flushes are slow and the work can be
// replayed; FULL is the safe choice.
//
// # Performance
//
// The process's writes go through one connection, and writes that queue up
// behind each other are committed in one transaction (group commit), so a
// busy consumer's Receive, Ack and Extend calls share commits and flushes.
// Each write has a savepoint of its own within that transaction, so one
// that fails is undone alone. Ready messages are kept in one table in the
// order Receive takes them, highest priority first and then oldest, with
// no index beside it to keep up to date: a Receive reads its queue's
// messages in that order, a lease rewrites just the message's row, and Ack
// deletes the rows of each Receive with one statement. Priorities are any
// int; each costs nothing until used.
//
// Each Receive is a transaction, so the size of the batches sets how many
// messages share a commit: a queue.Consumer of quick handlers receives
// more at a time with some Prefetch, and acknowledges more at a time with
// a larger AckBatch. BenchmarkQueueSQLite, in the repository's benchmarks module,
// compares this queue, consumed through queue.Consumer, with River on
// SQLite and with a minimal lease-and-delete loop, in one run.
//
// # Schema
//
// The file holds three tables: queues, the names of the queues; ready, the
// ready and leased messages of every queue, keyed by queue, priority and
// ID; and messages, the delayed messages and dead letters. The schema is
// versioned with SQLite's user_version: Open applies the migrations the
// file lacks, in one transaction, and refuses a file whose version is newer
// than this package knows. Nothing else creates or drops a table. Files
// written by earlier versions, which kept ready messages in the messages
// table (version 1) or in a table per queue and priority (version 2), are
// migrated with their messages, leases and receipts. Version 4 records
// when each message was first received (Message.FirstReceived); a message
// that a file of an earlier version had already delivered has no such
// time, and its FirstReceived stays zero. Stop the processes of
// version 2 before a later one opens their file: their statements name
// tables that the migration drops, and fail.
//
// # Comparisons
//
// River (riverqueue/river) is a full job system: unique jobs, periodic
// jobs, workflows, a web UI, and transactional enqueueing with your own
// Postgres data. Prefer it when you run Postgres and need those; its SQLite
// driver is young and, in our benchmark, many times slower than this
// package. goqite is a smaller SQLite queue with an SQS-like API, and a
// good choice for a few lines of code without a consumer runtime; it
// deletes messages by ID alone, so a worker whose timeout passed can delete
// a message that another worker now holds, which receipts here prevent.
// asynq runs on Redis, with scheduling, retries and a dashboard; prefer it
// when you already run Redis, or consume from many machines: a SQLite file
// serves the processes of one machine only. This package is for a service, or
// a few processes on one machine, that want durable work without running
// anything else.
package sqlite
