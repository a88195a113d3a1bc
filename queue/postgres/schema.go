package postgres

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Where messages live.
//
// Every message of every queue of a schema is a row of one table,
// messages. A message that can be received, or is leased, or waits out a
// delay, is in state 0; ready_at says when it can be received: at once, at
// the end of its delay, or at the end of its current lease. A lease
// therefore changes only ready_at, receipt and attempts, columns that no
// index holds, so PostgreSQL updates the row in place (a HOT update) and
// no index grows. Dead letters are in state 2, with their reason and time.
//
// Receive walks messages_ready, in the order it takes messages (highest
// priority, then oldest), skipping rows whose ready_at is still ahead and
// rows that other receivers have locked.

// migrations are the schema's versions: migrations[i] takes the schema from
// version i to version i+1. {schema} stands for the quoted schema name.
// Never edit a released migration; append a new one.
var migrations = []string{
	// 1: the messages table. IDs come from an identity column, so they are
	// never reused: a stale holder, a log line or a dead-letter listing
	// never names a different message.
	`CREATE TABLE {schema}.messages (
		id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		queue       text        NOT NULL,
		state       smallint    NOT NULL DEFAULT 0 CHECK (state IN (0, 2)),
		priority    integer     NOT NULL DEFAULT 0,
		ready_at    timestamptz NOT NULL DEFAULT now(), -- when it can be received: after its delay or its lease
		receipt     bigint,                             -- the current lease's token; NULL when none is valid
		attempts    integer     NOT NULL DEFAULT 0,     -- deliveries so far
		body        bytea       NOT NULL,
		attributes  jsonb,                              -- a JSON object of strings, or NULL
		dead_at     timestamptz,
		dead_reason text
	) WITH (fillfactor = 90); -- room on each page for the updates of leases
	CREATE INDEX messages_ready ON {schema}.messages (queue, priority DESC, id) WHERE state = 0;
	CREATE INDEX messages_dead ON {schema}.messages (queue, dead_at, id) WHERE state = 2;`,

	// 2: when each message was first received (its first lease began);
	// NULL until then, and for a message already received when the
	// column was added. No index holds it, so leases stay HOT updates.
	`ALTER TABLE {schema}.messages ADD COLUMN first_received timestamptz;`,
}

// migrate creates the schema or brings it up to date. It holds a
// transaction-scoped advisory lock, so that processes that start together
// neither fail nor migrate twice.
func (db *DB) migrate(ctx context.Context) error {
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('crew.migrate.' || $1, 0))`, db.opts.schema); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, db.opts.schema).Scan(&exists); err != nil {
			return err
		}
		if !exists && db.opts.mustExist {
			return ErrNoSchema
		}
		schema := pgx.Identifier{db.opts.schema}.Sanitize()
		_, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+schema+`;
			CREATE TABLE IF NOT EXISTS `+schema+`.migrations (
				version    integer     PRIMARY KEY,
				applied_at timestamptz NOT NULL DEFAULT now()
			)`)
		if err != nil {
			return err
		}
		var version int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM `+schema+`.migrations`).Scan(&version); err != nil {
			return err
		}
		if version > len(migrations) {
			return fmt.Errorf("the schema's version is %d, but this version of crew's queue/postgres knows only up to %d: upgrade it", version, len(migrations))
		}
		for v := version; v < len(migrations); v++ {
			if _, err := tx.Exec(ctx, strings.ReplaceAll(migrations[v], "{schema}", schema)); err != nil {
				return fmt.Errorf("migrate from version %d to %d: %w", v, v+1, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO `+schema+`.migrations (version) VALUES ($1)`, v+1); err != nil {
				return err
			}
		}
		return nil
	})
}

// statements are the SQL of a DB's schema. Parameters: $1 is the queue's
// name unless said otherwise; lease and delay durations are microseconds.
type statements struct {
	channel string // the notification channel of the schema's publishes

	publish, notify                  string
	receivePlan, receive             string
	ack, extend, nack, deadLetter    string
	stats, dead, redrive, redriveIDs string
	purge, queues                    string
}

// channel returns the notification channel of a schema's queues. It is
// derived from a hash of the name because channel names are identifiers,
// limited to 63 bytes, and schema names may be as long.
func channel(schema string) string {
	h := fnv.New64a()
	h.Write([]byte(schema))
	return fmt.Sprintf("crew_%016x", h.Sum64())
}

func newStatements(schema string) statements {
	t := pgx.Identifier{schema, "messages"}.Sanitize()
	const us = ` * interval '1 microsecond'`
	// Leases, extensions and releases commit without waiting for the
	// write-ahead log to reach the disk (see "Durability" in the package
	// documentation): losing one to a crash of the server only makes the
	// message ready sooner, and the old receipt fences off its holder.
	const async = `set_config('synchronous_commit', 'off', true)`
	return statements{
		channel: channel(schema),
		// $2 priority, $3 delay, $4 bodies, $5 attributes.
		publish: `INSERT INTO ` + t + ` (queue, priority, ready_at, body, attributes)
			SELECT $1, $2, now() + $3::bigint` + us + `, b, $5 FROM unnest($4::bytea[]) AS b
			RETURNING id`,
		// $1 channel, $2 queue.
		notify: `SELECT pg_notify($1, $2)`,
		// Run before receive, in its transaction (see Queue.lease).
		receivePlan: `SELECT set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true),
			set_config('enable_sort', 'off', true), ` + async,
		// $2 max, $3 lease, $4 receipt. The subquery locks the rows, in
		// the order they are taken, skipping those that other receivers
		// are leasing; the update leases them, finding them by their
		// primary key (joined with the subquery instead, the generic plan
		// that PostgreSQL settles on reads the whole table).
		// A message's first lease records when it began.
		receive: `UPDATE ` + t + ` m SET ready_at = now() + $3::bigint` + us + `, receipt = $4, attempts = m.attempts + 1,
				first_received = CASE WHEN m.attempts = 0 THEN now() ELSE m.first_received END
			WHERE m.id = ANY (ARRAY (SELECT id FROM ` + t + `
				WHERE queue = $1 AND state = 0 AND ready_at <= now()
				ORDER BY priority DESC, id LIMIT $2
				FOR UPDATE SKIP LOCKED))
			RETURNING m.id, m.priority, m.attempts, m.body, m.attributes, m.first_received`,
		// Settling statements: the fence is id and receipt. $1 ids and
		// $2 receipts (arrays) for ack, else $1 id and $2 receipt.
		ack: `DELETE FROM ` + t + ` m USING unnest($1::bigint[], $2::bigint[]) AS a (id, receipt)
			WHERE m.id = a.id AND m.receipt = a.receipt
			RETURNING m.id`,
		// $3 lease.
		extend: `UPDATE ` + t + ` SET ready_at = now() + $3::bigint` + us + `
			FROM (SELECT ` + async + `) AS async WHERE id = $1 AND receipt = $2`,
		// $3 delay.
		nack: `UPDATE ` + t + ` SET ready_at = now() + $3::bigint` + us + `, receipt = NULL
			FROM (SELECT ` + async + `) AS async WHERE id = $1 AND receipt = $2`,
		// $3 reason.
		deadLetter: `UPDATE ` + t + ` SET state = 2, receipt = NULL, dead_at = now(), dead_reason = $3
			WHERE id = $1 AND receipt = $2`,

		stats: `SELECT
				count(*) FILTER (WHERE state = 0 AND ready_at <= now()),
				count(*) FILTER (WHERE state = 0 AND ready_at > now() AND receipt IS NOT NULL),
				count(*) FILTER (WHERE state = 0 AND ready_at > now() AND receipt IS NULL),
				count(*) FILTER (WHERE state = 2)
			FROM ` + t + ` WHERE queue = $1`,
		dead: `SELECT id, body, attributes, attempts, coalesce(dead_reason, ''), dead_at, first_received FROM ` + t + `
			WHERE queue = $1 AND state = 2 ORDER BY dead_at, id`,
		redrive: `UPDATE ` + t + ` SET state = 0, attempts = 0, first_received = NULL, ready_at = now(), dead_at = NULL, dead_reason = NULL
			WHERE queue = $1 AND state = 2`,
		// $2 ids.
		redriveIDs: `UPDATE ` + t + ` SET state = 0, attempts = 0, first_received = NULL, ready_at = now(), dead_at = NULL, dead_reason = NULL
			WHERE queue = $1 AND state = 2 AND id = ANY($2::bigint[])`,
		purge:  `DELETE FROM ` + t + ` WHERE queue = $1 AND state = 2`,
		queues: `SELECT DISTINCT queue FROM ` + t + ` ORDER BY queue`,
	}
}
