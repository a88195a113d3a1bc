package sqlite

import (
	"context"
	"database/sql/driver"
	"fmt"
	"strconv"
	"strings"
)

// Message states, as stored in messages.state.
//
// A message in stateReady is ready, or leased: lease_until says until when
// its current lease lasts, and a Receive takes it only once that time has
// passed. Leasing a message thus changes no indexed column, which keeps
// Receive cheap. A message in stateDelayed waits for ready_at (a delayed
// publish, or a Nack with a delay); the next Receive after that moves it to
// stateReady. Dead letters stay in stateDead until redriven or purged.
const (
	stateReady   = 0
	stateDelayed = 1
	stateDead    = 2
)

// migrations are the schema's versions: migrations[i] takes the schema from
// version i to version i+1, and the file's PRAGMA user_version says which
// version it has. Never edit a released migration; append a new one.
var migrations = []string{
	// 1: the queues and messages tables. Times are Unix milliseconds.
	// Messages name their queue by its row ID, which keeps the indexes
	// small and their comparisons cheap. IDs come from AUTOINCREMENT so
	// that an ID is never reused, even after the newest message is
	// deleted: a stale holder, a log line or a dead-letter listing never
	// names a different message.
	`CREATE TABLE queues (
		id   INTEGER PRIMARY KEY,
		name TEXT    NOT NULL UNIQUE
	) STRICT;
	CREATE TABLE messages (
		id          INTEGER PRIMARY KEY AUTOINCREMENT,
		queue       INTEGER NOT NULL REFERENCES queues (id),
		state       INTEGER NOT NULL,           -- stateReady, stateDelayed or stateDead
		priority    INTEGER NOT NULL,
		ready_at    INTEGER NOT NULL,           -- delayed: when it becomes ready; dead: when it died
		lease_until INTEGER NOT NULL DEFAULT 0, -- ready: when the current lease ends (0: not leased)
		attempts    INTEGER NOT NULL DEFAULT 0, -- deliveries so far
		receipt     INTEGER,                    -- the current delivery's receipt; NULL when none is valid
		body        BLOB    NOT NULL,
		attributes  TEXT,                       -- a JSON object, or NULL when there are none
		created_at  INTEGER NOT NULL,
		dead_reason TEXT
	) STRICT;
	-- Receive takes ready messages in this order; Stats, Dead, Redrive,
	-- Purge and Queues use its (queue, state) prefix.
	CREATE INDEX messages_by_priority ON messages (queue, state, priority DESC, id);
	-- Delayed messages by the time they become ready.
	CREATE INDEX messages_delayed ON messages (queue, ready_at) WHERE state = 1;`,
}

// migrate brings the file's schema up to date in one transaction, so that
// processes that open a new file at the same time neither fail nor migrate
// twice. It runs in Open, before anything else uses w.
func migrate(w *writer) error {
	return w.tx(func() error {
		var version int64
		err := w.query("PRAGMA user_version", nil, func(vals []driver.Value) error {
			version = int64Value(vals[0])
			return nil
		})
		if err != nil {
			return fmt.Errorf("read the schema version: %w", err)
		}
		if version > int64(len(migrations)) {
			return fmt.Errorf("the file's schema version is %d, but this version of crew's queue/sqlite knows only up to %d: upgrade it", version, len(migrations))
		}
		for v := int(version); v < len(migrations); v++ {
			if _, err := w.conn.(driver.ExecerContext).ExecContext(context.Background(), migrations[v], nil); err != nil {
				return fmt.Errorf("migrate the schema from version %d to %d: %w", v, v+1, err)
			}
		}
		if version < int64(len(migrations)) {
			// PRAGMA takes no parameters; the version is a number of ours.
			if _, _, err := w.exec(fmt.Sprintf("PRAGMA user_version = %d", len(migrations))); err != nil {
				return fmt.Errorf("set the schema version: %w", err)
			}
		}
		return nil
	})
}

// What lease_until and receipt hold while a message is not leased, as SQL
// literals. notLeased (2^40) is a moment long past, in 2004, so such a
// message is ready; noReceipt (-2^62) is negative, and receipts never are.
// Both take as many bytes in a row as the values a lease writes (a time in
// Unix milliseconds, a random 63-bit receipt), so that leasing a message
// overwrites its row in place instead of growing it, which can move rows
// between pages. Rows written by earlier versions hold 0 and NULL, which
// mean the same.
const (
	notLeased = "1099511627776"
	noReceipt = "-4611686018427387904"
)

// The writer's statements. Parameters are numbered so that each can be
// read next to its query; ?1 is the queue's row ID unless said otherwise.
const (
	// ?1 queue name.
	sqlCreateQueue = `INSERT INTO queues (name) VALUES (?1) ON CONFLICT (name) DO NOTHING`
	sqlQueueID     = `SELECT id FROM queues WHERE name = ?1`

	// ?1 queue, ?2 state, ?3 priority, ?4 ready_at, ?5 body, ?6 attributes, ?7 now.
	sqlPublish = `INSERT INTO messages (queue, state, priority, ready_at, body, attributes, created_at, lease_until, receipt)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ` + notLeased + `, ` + noReceipt + `)`
	// ?1 queue, ?2 now: make ready the delayed messages whose time has come.
	sqlPromote = `UPDATE messages SET state = 0, lease_until = ` + notLeased + `
		WHERE queue = ?1 AND state = 1 AND ready_at <= ?2`
	// ?1 queue, ?2 now: when the next delayed message becomes ready, and
	// when the next lease ends. Nothing is ready when this runs, so the
	// second scan reads leased messages only.
	sqlNextDue = `SELECT
		(SELECT min(ready_at) FROM messages WHERE queue = ?1 AND state = 1),
		(SELECT min(lease_until) FROM messages WHERE queue = ?1 AND state = 0 AND lease_until > ?2)`
	// Settling statements: ?1 id, ?2 queue, ?3 receipt is the fence.
	// Nack: ?4 state (ready or delayed), ?5 ready_at.
	sqlNack = `UPDATE messages SET state = ?4, ready_at = ?5, lease_until = ` + notLeased + `, receipt = ` + noReceipt + `
		WHERE id = ?1 AND queue = ?2 AND receipt = ?3`
	// Extend: ?4 lease end.
	sqlExtend = `UPDATE messages SET lease_until = ?4
		WHERE id = ?1 AND queue = ?2 AND receipt = ?3`
	// DeadLetter: ?4 reason, ?5 now.
	sqlDeadLetter = `UPDATE messages SET state = 2, ready_at = ?5, lease_until = ` + notLeased + `, receipt = ` + noReceipt + `, dead_reason = ?4
		WHERE id = ?1 AND queue = ?2 AND receipt = ?3`
	// Redrive: ?1 queue, ?2 now, and ?3 id for one message.
	sqlRedriveAll = `UPDATE messages SET state = 0, ready_at = ?2, lease_until = ` + notLeased + `, attempts = 0, receipt = ` + noReceipt + `, dead_reason = NULL
		WHERE queue = ?1 AND state = 2`
	sqlRedriveOne = sqlRedriveAll + ` AND id = ?3`
	sqlPurge      = `DELETE FROM messages WHERE queue = ?1 AND state = 2`
)

// sqlLease returns the statement that finds up to limit messages to lease,
// in the order Receive returns them: ?1 queue, ?2 now, and for the forms
// that start after a position in that order (see Queue.lease), ?3 its
// priority and ?4 its ID. The limit is part of the text because SQLite
// recompiles a statement whose LIMIT parameter is bound to a new value,
// which costs more than the statement itself. Within the write
// transaction, reading the rows and then updating them by ID costs less
// than one UPDATE … RETURNING, which SQLite runs through two temporary
// tables.
func sqlLease(limit int, after leaseFrom) string {
	cond, order := "", "priority DESC, id"
	switch after {
	case fromSamePriority:
		cond, order = " AND priority = ?3 AND id > ?4", "id"
	case fromLowerPriority:
		cond = " AND priority < ?3"
	}
	return `SELECT id, attempts, body, attributes, priority FROM messages
		WHERE queue = ?1 AND state = 0 AND lease_until <= ?2` + cond + `
		ORDER BY ` + order + ` LIMIT ` + strconv.Itoa(limit)
}

// leaseFrom says where a sqlLease statement starts: at the queue's first
// message, or after a position, in two parts: the rest of its priority,
// then the lower priorities.
type leaseFrom int

const (
	fromStart leaseFrom = iota
	fromSamePriority
	fromLowerPriority
)

// leaseChunk is the most messages one sqlMarkLeased statement updates.
const leaseChunk = 32

// sqlMarkLeased[n] leases n messages found by sqlLease: ?1 lease end, ?2
// receipt, then their IDs. Only unindexed columns change.
var sqlMarkLeased = bySize(leaseChunk, func(ids string) string {
	return `UPDATE messages SET lease_until = ?1, attempts = attempts + 1, receipt = ?2 WHERE id IN (` + ids + `)`
})

// bySize returns, at index n from 1 to max, the statement build makes for
// n IDs given as the parameters ?3 to ?(n+2). Binding unused parameters
// costs more than preparing a statement per size.
func bySize(max int, build func(ids string) string) []string {
	s := make([]string, max+1)
	var ids strings.Builder
	for n := 1; n <= max; n++ {
		if n > 1 {
			ids.WriteString(", ")
		}
		fmt.Fprintf(&ids, "?%d", n+2)
		s[n] = build(ids.String())
	}
	return s
}

// maxReceive is the most messages one Receive returns.
const maxReceive = 1000

// ackBatch is the most messages one Ack statement deletes.
const ackBatch = 32

// sqlAcks[n] deletes n messages of one delivery, fenced by its receipt: ?1
// queue, ?2 receipt, then their IDs. Ack appends " RETURNING id" when it
// must learn which rows it deleted. The unary + keeps SQLite from scanning
// the queue's index instead of looking each row up by its ID.
var sqlAcks = bySize(ackBatch, func(ids string) string {
	return `DELETE FROM messages WHERE +queue = ?1 AND receipt = ?2 AND id IN (` + ids + `)`
})
