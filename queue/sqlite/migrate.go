package sqlite

import (
	"database/sql/driver"
	"fmt"
	"strconv"
)

// migrations are the schema's versions: migrations[i] takes the schema from
// version i to version i+1, and the file's PRAGMA user_version says which
// version it has. Never edit a released migration; append a new one. This
// file is the only place that creates or drops tables.
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

	// 2: ready messages moved to tables of their own, one per queue and
	// priority, listed in lanes. IDs are taken from the messages table's
	// AUTOINCREMENT counter by sqlNextIDs from then on, so that they stay
	// unique across tables, even with a process of version 1 still
	// inserting into messages.
	{sql: `CREATE TABLE lanes (
		id       INTEGER PRIMARY KEY,
		queue    INTEGER NOT NULL REFERENCES queues (id),
		priority INTEGER NOT NULL,
		UNIQUE (queue, priority)
	) STRICT;
	INSERT INTO sqlite_sequence (name, seq) SELECT 'messages', 0
		WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'messages');`,
		then: moveReadyToLanes},

	// 3: ready and leased messages of every queue and priority in one
	// table, ready, in the order Receive takes them (see schema.go); the
	// tables of version 2 go.
	{sql: `CREATE TABLE ready (
		queue       INTEGER NOT NULL REFERENCES queues (id),
		priority    INTEGER NOT NULL,
		id          INTEGER NOT NULL, -- unique in the file: see sqlNextIDs
		lease_until INTEGER NOT NULL, -- when the current lease ends; notLeased if none
		receipt     INTEGER NOT NULL, -- the current delivery's receipt; noReceipt if none
		attempts    INTEGER NOT NULL, -- deliveries so far
		body        BLOB    NOT NULL,
		attributes  TEXT,             -- a JSON object, or NULL when there are none
		created_at  INTEGER NOT NULL,
		PRIMARY KEY (queue, priority DESC, id)
	) STRICT, WITHOUT ROWID;`,
		then: moveLanesToReady},

	// 4: when each message was first received (its first lease began),
	// in Unix milliseconds, or notReceived (2^40, a moment long past)
	// for a message never received, or received before the file had the
	// column. notReceived takes as many bytes in a row as a time, so
	// that the first lease rewrites its row in place (see schema.go).
	{sql: `ALTER TABLE ready ADD COLUMN first_received INTEGER NOT NULL DEFAULT 1099511627776;
	ALTER TABLE messages ADD COLUMN first_received INTEGER NOT NULL DEFAULT 1099511627776;`},
}

// A migration runs its SQL, then its then function, if any.
type migration struct {
	sql  string
	then func(c *conn) error
}

// migrate brings the file's schema up to date in one transaction, so that
// processes that open a new file at the same time neither fail nor migrate
// twice. It runs in Open, before anything else uses c.
func migrate(c *conn) error {
	return c.tx("BEGIN IMMEDIATE", func() error {
		version, err := c.int64("PRAGMA user_version")
		if err != nil {
			return fmt.Errorf("read the schema version: %w", err)
		}
		if version > int64(len(migrations)) {
			return fmt.Errorf("the file's schema version is %d, but this version of crew's queue/sqlite knows only up to %d: upgrade it", version, len(migrations))
		}
		for v := int(version); v < len(migrations); v++ {
			m := migrations[v]
			err := c.script(m.sql)
			if err == nil && m.then != nil {
				err = m.then(c)
			}
			if err != nil {
				return fmt.Errorf("migrate the schema from version %d to %d: %w", v, v+1, err)
			}
		}
		if version < int64(len(migrations)) {
			// PRAGMA takes no parameters; the version is a number of ours.
			if err := c.script(fmt.Sprintf("PRAGMA user_version = %d", len(migrations))); err != nil {
				return fmt.Errorf("set the schema version: %w", err)
			}
		}
		return nil
	})
}

// laneTable returns the name of version 2's table of lane id.
func laneTable(id int64) string { return "lane_" + strconv.FormatInt(id, 10) }

// moveReadyToLanes takes a file from version 1 to 2: it moves the ready
// messages of the messages table to their lanes, leases and receipts
// included.
func moveReadyToLanes(c *conn) error {
	type key struct{ queue, priority int64 }
	var keys []key
	err := c.query(`SELECT DISTINCT queue, priority FROM messages WHERE state = 0`, nil, func(vals []driver.Value) error {
		keys = append(keys, key{int64Value(vals[0]), int64Value(vals[1])})
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		if _, err := c.exec(`INSERT INTO lanes (queue, priority) VALUES (?1, ?2)`, k.queue, k.priority); err != nil {
			return err
		}
		id, err := c.int64(`SELECT id FROM lanes WHERE queue = ?1 AND priority = ?2`, k.queue, k.priority)
		if err != nil {
			return err
		}
		lane := laneTable(id)
		err = c.script(`CREATE TABLE ` + lane + ` (
			id          INTEGER PRIMARY KEY,
			lease_until INTEGER NOT NULL,
			receipt     INTEGER NOT NULL,
			attempts    INTEGER NOT NULL,
			body        BLOB    NOT NULL,
			attributes  TEXT,
			created_at  INTEGER NOT NULL
		) STRICT`)
		if err != nil {
			return err
		}
		_, err = c.exec(`INSERT INTO `+lane+` (id, lease_until, receipt, attempts, body, attributes, created_at)
			SELECT id, lease_until, coalesce(receipt, -4611686018427387904), attempts, body, attributes, created_at
			FROM messages WHERE queue = ?1 AND state = 0 AND priority = ?2`, k.queue, k.priority)
		if err != nil {
			return err
		}
	}
	_, err = c.exec(`DELETE FROM messages WHERE state = 0`)
	return err
}

// moveLanesToReady takes a file from version 2 to 3: it moves every lane's
// messages, leases and receipts included, to the ready table, and drops
// the lanes.
func moveLanesToReady(c *conn) error {
	type lane struct{ id, queue, priority int64 }
	var lanes []lane
	err := c.query(`SELECT id, queue, priority FROM lanes`, nil, func(vals []driver.Value) error {
		lanes = append(lanes, lane{int64Value(vals[0]), int64Value(vals[1]), int64Value(vals[2])})
		return nil
	})
	if err != nil {
		return err
	}
	for _, l := range lanes {
		table := laneTable(l.id)
		// Rows that version 2 moved from version 1 hold lease_until 0
		// when they are not leased.
		_, err := c.exec(`INSERT INTO ready (queue, priority, id, lease_until, receipt, attempts, body, attributes, created_at)
			SELECT ?1, ?2, id, iif(lease_until = 0, `+notLeased+`, lease_until), receipt, attempts, body, attributes, created_at
			FROM `+table, l.queue, l.priority)
		if err == nil {
			err = c.script(`DROP TABLE ` + table)
		}
		if err != nil {
			return err
		}
	}
	return c.script(`DROP TABLE lanes`)
}
