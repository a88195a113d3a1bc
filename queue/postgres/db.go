package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crewgo/crew"
)

// ErrClosed is returned by every operation on a DB, or on one of its queues,
// after [DB.Close], and by a Receive that was waiting when Close was called.
// It wraps crew.ErrPermanent, so a queue.Consumer whose Receive fails with it
// stops instead of retrying.
var ErrClosed = fmt.Errorf("postgres: queue database closed: %w", crew.ErrPermanent)

// ErrNoSchema is returned by Open and New with [MustExist] when the schema
// has not been created. It wraps crew.ErrPermanent.
var ErrNoSchema = fmt.Errorf("postgres: the queue schema does not exist: %w", crew.ErrPermanent)

// Defaults for the options of Open and New.
const (
	DefaultSchema       = "crew"
	DefaultPollInterval = 250 * time.Millisecond
)

// Option configures Open and New.
type Option func(*options)

type options struct {
	schema       string
	pollInterval time.Duration
	mustExist    bool
	errs         []error
}

// Schema sets the PostgreSQL schema that holds the queue's tables
// (DefaultSchema, "crew"). Open and New create it if it does not exist,
// unless [MustExist] is given. Processes that share queues must use the
// same schema; different schemas are independent sets of queues. The name
// must not be empty; otherwise Open fails.
func Schema(name string) Option {
	return func(o *options) {
		if name == "" {
			o.errs = append(o.errs, errors.New("postgres: Schema: the name must not be empty"))
			return
		}
		o.schema = name
	}
}

// PollInterval sets how often a waiting Receive looks for messages that it
// was not told about (DefaultPollInterval): messages whose delay or lease
// has just run out, and publishes whose notification was lost while the
// listening connection was down. Publishes, Nack(0) and Redrive wake waiting
// Receives at once, in every process, whatever the interval. It must be
// positive; otherwise Open fails.
func PollInterval(d time.Duration) Option {
	return func(o *options) {
		if d <= 0 {
			o.errs = append(o.errs, fmt.Errorf("postgres: PollInterval(%v): must be positive", d))
			return
		}
		o.pollInterval = d
	}
}

// MustExist makes Open and New fail with an error wrapping [ErrNoSchema],
// creating nothing, when the schema does not exist yet. Tools that only
// inspect queues use it so that a mistyped URL does not leave an empty
// schema behind.
func MustExist() Option {
	return func(o *options) { o.mustExist = true }
}

// DB is a set of named queues in one schema of a PostgreSQL database. Get a
// queue with [DB.Queue]. A DB is safe for concurrent use, and any number of
// DBs, in any number of processes on any number of machines, may share a
// schema.
type DB struct {
	pool     *pgxpool.Pool
	ownsPool bool // Open made the pool, so Close closes it
	opts     options
	sql      statements
	listen   *listener

	closeOnce sync.Once
	closed    chan struct{}

	mu     sync.Mutex
	queues map[string]*Queue
}

// Open connects to the database that connString names (a URL such as
// postgres://user@host:5432/db, or a keyword/value string, as pgxpool
// takes them; PGPASSWORD and the other PG* variables fill in what it
// leaves out), creates the schema or brings it up to date, and returns the
// DB. Close it when done: that closes its connections.
//
// Open fails if an option is invalid, if the database cannot be reached
// within ctx, or if the schema was written by a newer version of this
// package. Errors that will never clear by retrying (bad credentials, a
// database that does not exist) wrap crew.ErrPermanent.
func Open(ctx context.Context, connString string, opts ...Option) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("postgres: Open: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: Open: %w", err)
	}
	db, err := newDB(ctx, pool, true, opts)
	if err != nil {
		pool.Close()
		return nil, err
	}
	return db, nil
}

// New returns a DB on a pool of the caller's, creating the schema or
// bringing it up to date. Close the DB when done; the pool stays the
// caller's, and must stay open until the DB is closed. Besides the pool's
// connections, the DB keeps one connection of its own, made with the
// pool's configuration, that listens for notifications of new messages.
//
// New fails as Open does; it waits for the database as long as the pool's
// connect timeout allows.
func New(pool *pgxpool.Pool, opts ...Option) (*DB, error) {
	if pool == nil {
		return nil, errors.New("postgres: New: nil pool")
	}
	return newDB(context.Background(), pool, false, opts)
}

func newDB(ctx context.Context, pool *pgxpool.Pool, owns bool, opts []Option) (*DB, error) {
	o := options{schema: DefaultSchema, pollInterval: DefaultPollInterval}
	for _, opt := range opts {
		opt(&o)
	}
	if err := errors.Join(o.errs...); err != nil {
		return nil, err
	}
	db := &DB{
		pool:     pool,
		ownsPool: owns,
		opts:     o,
		sql:      newStatements(o.schema),
		closed:   make(chan struct{}),
		queues:   make(map[string]*Queue),
	}
	if err := db.migrate(ctx); err != nil {
		return nil, fmt.Errorf("postgres: schema %q: %w", o.schema, permanent(err))
	}
	db.listen = newListener(pool.Config().ConnConfig, db.sql.channel)
	return db, nil
}

// Close stops listening for notifications, wakes every waiting Receive
// (which returns an error wrapping [ErrClosed]), and, for a DB made by
// Open, closes its connections once the operations in progress have
// finished. Operations after Close fail with ErrClosed. Stop the consumers
// of the DB's queues before closing it: their acknowledgements would fail,
// and the messages would be delivered again. Only the first call does
// anything.
func (db *DB) Close() {
	db.closeOnce.Do(func() {
		close(db.closed)
		db.listen.close()
		if db.ownsPool {
			db.pool.Close()
		}
	})
}

func (db *DB) isClosed() bool {
	select {
	case <-db.closed:
		return true
	default:
		return false
	}
}

// Queue returns the queue called name. Queues need no creating: a queue
// exists while it holds a message. Every call with the same name returns
// the same *Queue.
//
// The name must not be empty. Queue("") does not panic, but every operation
// on the queue it returns fails with an error that wraps crew.ErrPermanent,
// so that a queue.Consumer on it stops at once instead of retrying.
func (db *DB) Queue(name string) *Queue {
	db.mu.Lock()
	defer db.mu.Unlock()
	q := db.queues[name]
	if q == nil {
		q = &Queue{db: db, name: name}
		db.queues[name] = q
	}
	return q
}

// Queues returns the names of the queues that hold any message, in any
// state (dead letters included), sorted.
func (db *DB) Queues(ctx context.Context) ([]string, error) {
	if db.isClosed() {
		return nil, ErrClosed
	}
	rows, err := db.pool.Query(ctx, db.sql.queues)
	if err != nil {
		return nil, db.wrap(err, "list queues")
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, db.wrap(err, "list queues")
	}
	return names, nil
}

// wrap names the operation, turns errors after Close into ErrClosed, and
// marks errors that will never clear as permanent.
func (db *DB) wrap(err error, op string) error {
	if db.isClosed() {
		err = ErrClosed
	}
	return fmt.Errorf("postgres: %s: %w", op, permanent(err))
}

// permanent wraps crew.ErrPermanent around err if retrying cannot help:
// the server refused the credentials, the database or the queue's tables do
// not exist, the user lacks a privilege, or the database is read-only.
// Every other error, a lost connection or a restarting server among them,
// is transient.
func permanent(err error) error {
	var pgErr *pgconn.PgError
	if errors.Is(err, crew.ErrPermanent) || !errors.As(err, &pgErr) {
		return err
	}
	switch {
	case pgErr.Code[:2] == "28", // invalid authorization
		pgErr.Code == "3D000", // invalid catalog name: no such database
		pgErr.Code == "3F000", // invalid schema name
		pgErr.Code == "42P01", // undefined table: the schema was dropped
		pgErr.Code == "42501", // insufficient privilege
		pgErr.Code == "25006": // read-only transaction
		return fmt.Errorf("%w (%w)", err, crew.ErrPermanent)
	}
	return err
}
