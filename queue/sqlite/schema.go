package sqlite

import (
	"context"
	"database/sql/driver"
	"fmt"
	"strconv"
	"strings"
)

// Where messages live.
//
// A ready message, leased or not, is a row of its lane: a table of its own
// for each queue and priority (lane_<id>, listed in the lanes table), whose
// rows are in the order Receive takes them, by ID. lease_until says until
// when the current lease lasts, and a Receive takes a message only once
// that time has passed; leasing it changes nothing but its own row, and an
// Ack deletes just that row. No index has to be kept up to date on the
// path every message takes, which keeps Receive and Ack near the cost of a
// minimal lease-and-delete loop (benchmarks/README.md has the numbers).
//
// Messages that wait (a delayed publish, a Nack with a delay) and dead
// letters are rows of the messages table, in stateDelayed until ready_at
// (a Receive then moves them to their lane), or in stateDead until
// redriven or purged.
const (
	stateDelayed = 1
	stateDead    = 2
)

// migrations are the schema's versions: migrations[i] takes the schema from
// version i to version i+1, and the file's PRAGMA user_version says which
// version it has. Never edit a released migration; append a new one.
var migrations = []migration{
	// 1: the queues and messages tables. Times are Unix milliseconds.
	// Messages name their queue by its row ID, which keeps the indexes
	// small and their comparisons cheap. IDs come from AUTOINCREMENT so
	// that an ID is never reused, even after the newest message is
	// deleted: a stale holder, a log line or a dead-letter listing never
	// names a different message. (Its comments tell of version 1, where
	// ready messages were rows of messages, in state 0 = stateReady.)
	{sql: `CREATE TABLE queues (
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
	CREATE INDEX messages_delayed ON messages (queue, ready_at) WHERE state = 1;`},

	// 2: ready messages move to lanes (see above). IDs are still taken
	// from the messages table's AUTOINCREMENT counter, now by sqlNextIDs,
	// so that they stay unique across the messages table and the lanes,
	// even with a process of version 1 still inserting into messages.
	{sql: `CREATE TABLE lanes (
		id       INTEGER PRIMARY KEY,
		queue    INTEGER NOT NULL REFERENCES queues (id),
		priority INTEGER NOT NULL,
		UNIQUE (queue, priority)
	) STRICT;
	INSERT INTO sqlite_sequence (name, seq) SELECT 'messages', 0
		WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'messages');`,
		then: moveReadyToLanes},
}

// A migration runs its SQL, then its then function, if any.
type migration struct {
	sql  string
	then func(w *writer) error
}

// moveReadyToLanes moves the ready messages of a version 1 file to their
// lanes, leases and receipts included.
func moveReadyToLanes(w *writer) error {
	type key struct{ queue, priority int64 }
	var keys []key
	err := w.query(`SELECT DISTINCT queue, priority FROM messages WHERE state = 0`, nil, func(vals []driver.Value) error {
		keys = append(keys, key{int64Value(vals[0]), int64Value(vals[1])})
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		l, err := createLane(w, k.queue, k.priority)
		if err != nil {
			return err
		}
		_, _, err = w.exec(l.sql(`INSERT INTO {lane} (id, lease_until, receipt, attempts, body, attributes, created_at)
			SELECT id, lease_until, coalesce(receipt, `+noReceipt+`), attempts, body, attributes, created_at
			FROM messages WHERE queue = ?1 AND state = 0 AND priority = ?2`), k.queue, k.priority)
		if err != nil {
			return err
		}
	}
	_, _, err = w.exec(`DELETE FROM messages WHERE state = 0`)
	return err
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
			m := migrations[v]
			_, err := w.conn.(driver.ExecerContext).ExecContext(context.Background(), m.sql, nil)
			if err == nil && m.then != nil {
				err = m.then(w)
			}
			if err != nil {
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

// lane is one queue's table of ready messages of one priority.
type lane struct {
	id       int64
	priority int64
	table    string // lane_<id>
}

func newLane(id, priority int64) lane {
	return lane{id: id, priority: priority, table: "lane_" + strconv.FormatInt(id, 10)}
}

// sql returns query with {lane} replaced by the lane's table.
func (l lane) sql(query string) string { return strings.ReplaceAll(query, "{lane}", l.table) }

// createLane returns the lane of queue and priority, creating it if there
// is none. It runs in a write transaction.
func createLane(w *writer, queue, priority int64) (lane, error) {
	var id int64
	err := w.query(sqlLaneID, []any{queue, priority}, func(vals []driver.Value) error {
		id = int64Value(vals[0])
		return nil
	})
	if err != nil || id != 0 {
		return newLane(id, priority), err
	}
	if _, id, err = w.exec(`INSERT INTO lanes (queue, priority) VALUES (?1, ?2)`, queue, priority); err != nil {
		return lane{}, err
	}
	l := newLane(id, priority)
	// The hot columns come first, so that SQLite finds them without
	// reading past the body.
	_, _, err = w.exec(l.sql(`CREATE TABLE {lane} (
		id          INTEGER PRIMARY KEY, -- the message's ID
		lease_until INTEGER NOT NULL,    -- when the current lease ends; notLeased if none
		receipt     INTEGER NOT NULL,    -- the current delivery's receipt; noReceipt if none
		attempts    INTEGER NOT NULL,    -- deliveries so far
		body        BLOB    NOT NULL,
		attributes  TEXT,                -- a JSON object, or NULL when there are none
		created_at  INTEGER NOT NULL
	) STRICT`))
	return l, err
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
// {lane} stands for a lane's table (see lane.sql).
const (
	// ?1 queue name.
	sqlCreateQueue = `INSERT INTO queues (name) VALUES (?1) ON CONFLICT (name) DO NOTHING`
	sqlQueueID     = `SELECT id FROM queues WHERE name = ?1`

	// ?1 queue, ?2 priority.
	sqlLaneID = `SELECT id FROM lanes WHERE queue = ?1 AND priority = ?2`
	// The queue's lanes in the order Receive takes from them.
	sqlLanes = `SELECT id, priority FROM lanes WHERE queue = ?1 ORDER BY priority DESC`
	// ?1 how many IDs to take: returns the last of them.
	sqlNextIDs = `UPDATE sqlite_sequence SET seq = seq + ?1 WHERE name = 'messages' RETURNING seq`

	// ?1 id, ?2 body, ?3 attributes, ?4 now.
	sqlPublishReady = `INSERT INTO {lane} (id, lease_until, receipt, attempts, body, attributes, created_at)
		VALUES (?1, ` + notLeased + `, ` + noReceipt + `, 0, ?2, ?3, ?4)`
	// ?1 queue, ?2 id, ?3 priority, ?4 ready_at, ?5 body, ?6 attributes, ?7 now.
	sqlPublishDelayed = `INSERT INTO messages (queue, id, priority, ready_at, body, attributes, created_at, state, lease_until, receipt)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ` + notLeased + `, ` + noReceipt + `)`

	// ?1 queue, ?2 now: the priorities of the delayed messages whose time
	// has come; sqlPromote moves those of priority ?3 to their lane, then
	// sqlPromoted deletes them all from messages. Ready messages that a
	// process of version 1 still running on a migrated file published or
	// released (state 0) go with them, once no lease holds them.
	sqlDuePriorities = `SELECT priority FROM messages WHERE queue = ?1 AND state = 1 AND ready_at <= ?2
		UNION SELECT priority FROM messages WHERE queue = ?1 AND state = 0 AND lease_until <= ?2`
	sqlDue     = `queue = ?1 AND (state = 1 AND ready_at <= ?2 OR state = 0 AND lease_until <= ?2)`
	sqlPromote = `INSERT INTO {lane} (id, lease_until, receipt, attempts, body, attributes, created_at)
		SELECT id, ` + notLeased + `, ` + noReceipt + `, attempts, body, attributes, created_at FROM messages
		WHERE ` + sqlDue + ` AND priority = ?3`
	sqlPromoted = `DELETE FROM messages WHERE ` + sqlDue

	// When the next delayed message becomes ready; ?1 queue.
	sqlNextDelayed = `SELECT min(ready_at) FROM messages WHERE queue = ?1 AND state = 1`
	// When the next lease of a lane ends; ?1 now. Nothing is ready when
	// this runs, so it reads leased messages only.
	sqlNextLeaseEnd = `SELECT min(lease_until) FROM {lane} WHERE lease_until > ?1`

	// Settling statements: ?1 id and ?2 receipt are the fence.
	// Nack without a delay.
	sqlRelease = `UPDATE {lane} SET lease_until = ` + notLeased + `, receipt = ` + noReceipt + `
		WHERE id = ?1 AND receipt = ?2`
	// Extend: ?3 lease end.
	sqlExtend = `UPDATE {lane} SET lease_until = ?3 WHERE id = ?1 AND receipt = ?2`
	// Nack with a delay, and DeadLetter: move the message from its lane
	// to messages, then sqlLeaveLane deletes it from the lane. ?3 queue,
	// ?4 priority, ?5 state, ?6 ready_at, ?7 dead_reason.
	sqlSetAside = `INSERT INTO messages (id, queue, priority, state, ready_at, dead_reason, lease_until, receipt, attempts, body, attributes, created_at)
		SELECT id, ?3, ?4, ?5, ?6, ?7, ` + notLeased + `, ` + noReceipt + `, attempts, body, attributes, created_at
		FROM {lane} WHERE id = ?1 AND receipt = ?2`
	sqlLeaveLane = `DELETE FROM {lane} WHERE id = ?1`

	// Redrive: ?1 queue, and ?2 id for one message. sqlRedrive moves the
	// dead letters of priority ?3 to their lane, with no attempts.
	sqlDeadPriorities = `SELECT DISTINCT priority FROM messages WHERE queue = ?1 AND state = 2`
	sqlRedrive        = `INSERT INTO {lane} (id, lease_until, receipt, attempts, body, attributes, created_at)
		SELECT id, ` + notLeased + `, ` + noReceipt + `, 0, body, attributes, created_at FROM messages
		WHERE queue = ?1 AND state = 2 AND priority = ?3`
	sqlRedriven = `DELETE FROM messages WHERE queue = ?1 AND state = 2`
	sqlOneID    = ` AND id = ?2`
	sqlPurge    = `DELETE FROM messages WHERE queue = ?1 AND state = 2`
)

// sqlLease returns the statement that finds up to limit ready messages of
// a lane, in the order Receive takes them: ?1 now, and if after is set, ?2
// the ID after which to start. The limit is part of the text because
// SQLite recompiles a statement whose LIMIT parameter is bound to a new
// value, which costs more than the statement itself. Within the write
// transaction, reading the rows and then updating them by ID costs less
// than one UPDATE … RETURNING, which SQLite runs through two temporary
// tables.
func sqlLease(limit int, after bool) string {
	cond := ""
	if after {
		cond = " AND id > ?2"
	}
	return `SELECT id, attempts, body, attributes FROM {lane}
		WHERE lease_until <= ?1` + cond + ` ORDER BY id LIMIT ` + strconv.Itoa(limit)
}

// leaseChunk is the most messages one sqlMarkLeased statement updates.
const leaseChunk = 32

// sqlMarkLeased[n] leases n messages of a lane found by sqlLease: ?1
// lease end, ?2 receipt, then their IDs.
var sqlMarkLeased = bySize(leaseChunk, 3, func(ids string) string {
	return `UPDATE {lane} SET lease_until = ?1, attempts = attempts + 1, receipt = ?2 WHERE id IN (` + ids + `)`
})

// bySize returns, at index n from 1 to max, the statement build makes for
// n IDs given as the parameters ?first to ?(first+n-1). Binding unused
// parameters costs more than preparing a statement per size.
func bySize(max, first int, build func(ids string) string) []string {
	s := make([]string, max+1)
	var ids strings.Builder
	for n := 1; n <= max; n++ {
		if n > 1 {
			ids.WriteString(", ")
		}
		fmt.Fprintf(&ids, "?%d", first+n-1)
		s[n] = build(ids.String())
	}
	return s
}

// maxReceive is the most messages one Receive returns.
const maxReceive = 1000

// ackBatch is the most messages one Ack statement deletes.
const ackBatch = 32

// sqlAcks[n] deletes n messages of one delivery from their lane, fenced by
// its receipt: ?1 receipt, then their IDs. Ack appends " RETURNING id"
// when it must learn which rows it deleted.
var sqlAcks = bySize(ackBatch, 2, func(ids string) string {
	return `DELETE FROM {lane} WHERE receipt = ?1 AND id IN (` + ids + `)`
})
