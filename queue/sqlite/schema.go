package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// Message states, as stored in messages.state. A delayed message is one
// published with a delay or nacked with one; a leased one has been received
// and its lease has not been given up. Both have a visible_at, after which
// the next Receive makes them ready again (promotes them): a leased message
// keeps its receipt until then, so its holder may still settle it.
const (
	stateReady   = 0
	stateLeased  = 1
	stateDelayed = 2
	stateDead    = 3
)

// migrations are the schema's versions: migrations[i] takes the schema from
// version i to version i+1, and the file's PRAGMA user_version says which
// version it has. Never edit a released migration; append a new one.
var migrations = []string{
	// 1: the messages table. Times are Unix milliseconds. IDs come from
	// AUTOINCREMENT so that an ID is never reused, even after the newest
	// message is deleted: a stale holder, a log line or a dead-letter
	// listing can never name a different message.
	`CREATE TABLE messages (
		id          INTEGER PRIMARY KEY AUTOINCREMENT,
		queue       TEXT    NOT NULL,
		state       INTEGER NOT NULL,
		priority    INTEGER NOT NULL DEFAULT 0,
		visible_at  INTEGER NOT NULL,
		attempts    INTEGER NOT NULL DEFAULT 0,
		receipt     INTEGER,
		body        BLOB    NOT NULL,
		attributes  TEXT,
		created_at  INTEGER NOT NULL,
		dead_reason TEXT,
		dead_at     INTEGER
	) STRICT;
	-- Receive takes ready messages in this order; Stats, Dead, Redrive,
	-- Purge and Queues use its (queue, state) prefix.
	CREATE INDEX messages_by_priority ON messages (queue, state, priority DESC, id);
	-- Leased and delayed messages by the time they become ready again.
	CREATE INDEX messages_by_time ON messages (queue, state, visible_at) WHERE state IN (1, 2);`,
}

// migrate brings the schema of the file behind w up to date, in one
// transaction, so that processes opening a new file at once neither fail
// nor migrate twice.
func migrate(ctx context.Context, w *sql.DB) error {
	tx, err := w.BeginTx(ctx, nil) // BEGIN IMMEDIATE: holds the write lock
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	var version int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("migrate: read the schema version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("the file's schema version is %d, but this version of crew's queue/sqlite knows only up to %d: upgrade it", version, len(migrations))
	}
	if version == len(migrations) {
		return nil
	}
	for v := version; v < len(migrations); v++ {
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("migrate the schema from version %d to %d: %w", v, v+1, err)
		}
	}
	// PRAGMA takes no parameters; the version is a number we control.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations))); err != nil {
		return fmt.Errorf("migrate: set the schema version: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

// statements are the writer's prepared statements. Parameters are numbered
// so that each can be read next to its query.
type statements struct {
	publish, promote, lease, nextVisible *sql.Stmt
	ack, nack, extend, deadLetter        *sql.Stmt
	all                                  []*sql.Stmt
}

func (s *statements) prepare(ctx context.Context, w *sql.DB) error {
	for _, p := range []struct {
		stmt  **sql.Stmt
		query string
	}{
		{&s.publish, `INSERT INTO messages (queue, state, priority, visible_at, body, attributes, created_at)
			VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)`},
		// ?1 queue, ?2 now: make ready every leased and delayed message
		// whose time has come.
		{&s.promote, `UPDATE messages SET state = 0
			WHERE queue = ?1 AND state IN (1, 2) AND visible_at <= ?2`},
		// ?1 queue, ?2 max, ?3 receipt, ?4 lease end. RETURNING gives no
		// order: Receive sorts the batch itself.
		{&s.lease, `UPDATE messages SET state = 1, attempts = attempts + 1, receipt = ?3, visible_at = ?4
			WHERE id IN (SELECT id FROM messages WHERE queue = ?1 AND state = 0 ORDER BY priority DESC, id LIMIT ?2)
			RETURNING id, priority, attempts, body, attributes`},
		// ?1 queue: when the next leased or delayed message becomes ready.
		{&s.nextVisible, `SELECT min(t) FROM (
			SELECT min(visible_at) AS t FROM messages WHERE queue = ?1 AND state = 1
			UNION ALL
			SELECT min(visible_at) FROM messages WHERE queue = ?1 AND state = 2)`},
		// ?1 id, ?2 queue, ?3 receipt: the fence of every settling statement.
		{&s.ack, `DELETE FROM messages WHERE id = ?1 AND queue = ?2 AND receipt = ?3`},
		// ?4 state (ready or delayed), ?5 visible_at.
		{&s.nack, `UPDATE messages SET state = ?4, receipt = NULL, visible_at = ?5
			WHERE id = ?1 AND queue = ?2 AND receipt = ?3`},
		// ?4 lease end.
		{&s.extend, `UPDATE messages SET state = 1, visible_at = ?4
			WHERE id = ?1 AND queue = ?2 AND receipt = ?3`},
		// ?4 reason, ?5 now.
		{&s.deadLetter, `UPDATE messages SET state = 3, receipt = NULL, dead_reason = ?4, dead_at = ?5, visible_at = ?5
			WHERE id = ?1 AND queue = ?2 AND receipt = ?3`},
	} {
		st, err := w.PrepareContext(ctx, p.query)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", p.query, err)
		}
		*p.stmt = st
		s.all = append(s.all, st)
	}
	return nil
}

func (s *statements) close() {
	for _, st := range s.all {
		st.Close()
	}
	s.all = nil
}
