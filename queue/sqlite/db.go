package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/crewgo/crew"
	msqlite "modernc.org/sqlite" // also registers the "sqlite" database/sql driver
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrClosed is returned by every operation on a DB, or on one of its queues,
// after [DB.Close], and by a Receive that was waiting when Close was called.
// It wraps crew.ErrPermanent, so a queue.Consumer whose Receive fails with it
// stops instead of retrying.
var ErrClosed = fmt.Errorf("sqlite: database closed: %w", crew.ErrPermanent)

// Defaults for the options of Open.
const (
	DefaultBusyTimeout  = 5 * time.Second
	DefaultPollInterval = 100 * time.Millisecond
)

// Option configures Open.
type Option func(*options)

type options struct {
	synchronous  string
	busyTimeout  time.Duration
	pollInterval time.Duration
	mustExist    bool
	errs         []error
}

// Synchronous sets how hard each commit works to reach the disk: "FULL" (the
// default) or "NORMAL", in upper or lower case. Any other mode makes Open
// fail.
//
// With FULL, every commit (a publish, a receive, a batch of acks) is flushed
// to stable storage before it returns: nothing that returned is ever lost,
// even to a power cut. With NORMAL, commits are written to the operating
// system but flushed only at checkpoints: a crash of the process loses
// nothing either, but a crash of the machine or a power cut may roll back
// the last commits, so a published message may vanish or an acknowledged
// one come back. The file is never corrupted in either mode. NORMAL is
// several times faster on disks with slow flushes.
func Synchronous(mode string) Option {
	return func(o *options) {
		switch m := strings.ToUpper(mode); m {
		case "FULL", "NORMAL":
			o.synchronous = m
		default:
			o.errs = append(o.errs, fmt.Errorf("sqlite: Synchronous(%q): the mode must be FULL or NORMAL", mode))
		}
	}
}

// BusyTimeout sets how long an operation waits for another connection (in
// another process) that holds the file's write lock before it fails with
// SQLITE_BUSY (DefaultBusyTimeout). It must be at least a millisecond;
// otherwise Open fails.
func BusyTimeout(d time.Duration) Option {
	return func(o *options) {
		if d < time.Millisecond {
			o.errs = append(o.errs, fmt.Errorf("sqlite: BusyTimeout(%v): must be at least 1ms", d))
			return
		}
		o.busyTimeout = d
	}
}

// PollInterval sets how often a waiting Receive looks for messages that
// another DB (usually another process) has published or made ready
// (DefaultPollInterval). Publishes through the same DB wake waiting
// Receives at once, whatever the interval. It must be positive; otherwise
// Open fails.
func PollInterval(d time.Duration) Option {
	return func(o *options) {
		if d <= 0 {
			o.errs = append(o.errs, fmt.Errorf("sqlite: PollInterval(%v): must be positive", d))
			return
		}
		o.pollInterval = d
	}
}

// MustExist makes Open fail, without creating anything, when the file does
// not exist: for tools that only read or tidy a queue, where a mistyped path
// should be an error rather than a new, empty queue. The error wraps
// fs.ErrNotExist and names the missing file, or the missing directory when
// the file's directory does not exist either.
func MustExist() Option {
	return func(o *options) { o.mustExist = true }
}

// DB is an open queue file. It holds any number of named queues; get one
// with [DB.Queue]. A DB is safe for concurrent use, and several DBs, in one
// process or several, may share a file.
type DB struct {
	path string
	opts options
	w    *writer  // every write, and Receive
	r    *readers // Stats, Dead and Queues

	closeOnce sync.Once
	closed    chan struct{}

	mu     sync.Mutex
	queues map[string]*Queue
}

// Open opens the queue file at path, creating it if it does not exist
// (unless [MustExist]), puts it in WAL mode and brings its schema up to
// date. Close the DB when done.
//
// Open fails if an option is invalid, if the file's directory does not
// exist, if the file cannot be opened or is not a SQLite database, or if it
// was written by a newer version of this package (its schema version is
// higher than this package knows).
//
// Failures that retrying will not clear (a corrupt file, a file that is not
// a database, a read-only file or directory, a full disk), from Open and
// from every operation of the DB and its queues, name the file and wrap
// crew.ErrPermanent as well as SQLite's error: a queue.Consumer stops on
// them instead of retrying. A file busy with another process's write is not
// such a failure.
func Open(path string, opts ...Option) (*DB, error) {
	o := options{synchronous: "FULL", busyTimeout: DefaultBusyTimeout, pollInterval: DefaultPollInterval}
	for _, opt := range opts {
		opt(&o)
	}
	if err := errors.Join(o.errs...); err != nil {
		return nil, err
	}
	if path == "" {
		return nil, errors.New("sqlite: Open: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: Open(%q): %w", path, err)
	}
	if err := checkExists(abs, o.mustExist); err != nil {
		return nil, fmt.Errorf("sqlite: Open(%q): %w", path, err)
	}
	// Putting a new file in WAL mode needs the file to itself, and SQLite
	// reports SQLITE_BUSY at once, busy timeout or not, to a connection
	// that would otherwise deadlock with another doing the same: processes
	// that start together and open a new file would fail. Retry, for as
	// long as the busy timeout.
	deadline := time.Now().Add(o.busyTimeout)
	for wait := time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		db := &DB{path: abs, opts: o, closed: make(chan struct{}), queues: make(map[string]*Queue)}
		err := db.open()
		if err == nil {
			return db, nil
		}
		_ = db.closeHandles()
		if !busy(err) || time.Now().Add(wait).After(deadline) {
			return nil, fmt.Errorf("sqlite: Open(%q): %w", path, db.classify(err))
		}
		time.Sleep(wait)
	}
}

// checkExists returns an error wrapping fs.ErrNotExist that names what is
// missing: the file's directory (which SQLite would report only as "unable
// to open database file"), or, when mustExist, the file itself.
func checkExists(abs string, mustExist bool) error {
	dir := filepath.Dir(abs)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return notExistError("directory " + dir + " does not exist")
	}
	if !mustExist {
		return nil
	}
	if _, err := os.Stat(abs); errors.Is(err, fs.ErrNotExist) {
		return notExistError("queue file " + abs + " does not exist")
	}
	return nil
}

// notExistError is fs.ErrNotExist with a message that says what is missing.
type notExistError string

func (e notExistError) Error() string { return string(e) }
func (e notExistError) Unwrap() error { return fs.ErrNotExist }

// busy reports whether err is SQLite's SQLITE_BUSY or SQLITE_LOCKED.
func busy(err error) bool {
	var e *msqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code() & 0xff { // the primary result code
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return true
	}
	return false
}

// dsn returns the modernc.org/sqlite data source name for the file, with
// the pragmas every connection needs.
func (db *DB) dsn(readOnly bool) string {
	q := url.Values{}
	q.Set("_busy_timeout", strconv.FormatInt(db.opts.busyTimeout.Milliseconds(), 10))
	q.Set("_synchronous", db.opts.synchronous)
	if readOnly {
		q.Set("_query_only", "1")
	} else {
		q.Set("_journal_mode", "WAL")
	}
	if db.opts.mustExist {
		q.Set("mode", "rw") // never create the file, even if it vanished since Open looked
	}
	u := url.URL{Path: db.path}
	return "file:" + u.EscapedPath() + "?" + q.Encode()
}

func (db *DB) open() error {
	var err error
	if db.w, err = openWriter(db.dsn(false)); err != nil {
		return err
	}
	var mode string
	err = db.w.query("PRAGMA journal_mode", nil, func(vals []driver.Value) error {
		mode = string(bytesValue(vals[0]))
		return nil
	})
	if err != nil {
		return err
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("the file could not be put in WAL mode (journal_mode is %q)", mode)
	}
	if err := migrate(db.w.conn); err != nil {
		return err
	}
	db.r = newReaders(db.dsn(true))
	return nil
}

// Close wakes every waiting Receive (which returns an error wrapping
// [ErrClosed]), waits for the operations in progress to finish, and closes
// the file. Operations after Close fail with ErrClosed. Stop the consumers
// of the DB's queues before closing it: their acknowledgements would fail,
// and the messages would be delivered again. Only the first call does
// anything; later ones return nil.
func (db *DB) Close() error {
	err := error(nil)
	db.closeOnce.Do(func() {
		close(db.closed)
		err = db.closeHandles()
	})
	return err
}

func (db *DB) closeHandles() error {
	var errs []error
	if db.w != nil {
		errs = append(errs, db.w.close())
	}
	if db.r != nil {
		errs = append(errs, db.r.close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite: close %q: %w", db.path, err)
	}
	return nil
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
// state (dead letters included), sorted. It fails with ctx's error if ctx
// ends first.
func (db *DB) Queues(ctx context.Context) ([]string, error) {
	if db.isClosed() {
		return nil, ErrClosed
	}
	var names []string
	err := db.r.read(ctx, func(c *conn) error {
		return c.query(sqlQueues, nil, func(vals []driver.Value) error {
			names = append(names, string(bytesValue(vals[0])))
			return nil
		})
	})
	if err != nil {
		return nil, db.wrap(err, "list queues")
	}
	return names, nil
}

// wrap names the operation and turns the errors database/sql returns after
// Close into ErrClosed.
func (db *DB) wrap(err error, op string) error {
	if db.isClosed() {
		err = ErrClosed
	}
	return fmt.Errorf("sqlite: %s: %w", op, db.classify(err))
}

// classify returns err as it is, or, for a failure that retrying will not
// clear, as an error that names the file and wraps crew.ErrPermanent too.
func (db *DB) classify(err error) error {
	if !permanent(err) {
		return err
	}
	return &permanentError{path: db.path, err: err}
}

// permanent reports whether err is a SQLite failure that retrying will not
// clear: a corrupt file, a file that is not a database, one that cannot be
// written or opened, or a full disk. Busy and locked files, and I/O errors
// (which a network file system may recover from), are not.
func permanent(err error) bool {
	var e *msqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code() & 0xff { // the primary result code
	case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_READONLY,
		sqlite3.SQLITE_PERM, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_FULL:
		return true
	}
	return false
}

// permanentError is a failure of the file at path that retrying will not
// clear. It wraps the SQLite error and crew.ErrPermanent, so that a
// queue.Consumer stops on it instead of retrying for ever.
type permanentError struct {
	path string
	err  error
}

func (e *permanentError) Error() string   { return e.path + ": " + e.err.Error() }
func (e *permanentError) Unwrap() []error { return []error{e.err, crew.ErrPermanent} }
