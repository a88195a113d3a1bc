package sqlite

import (
	"container/list"
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"sync"

	msqlite "modernc.org/sqlite"
)

// conn is one connection to the file, driven directly through the
// modernc.org/sqlite driver rather than database/sql: the queue's
// statements are short, and database/sql's per-transaction goroutine and
// the driver's per-statement cancellation watcher cost as much as the
// statements themselves. A statement therefore runs to completion once
// started; callers honour their context between statements. A conn is not
// safe for concurrent use: the writer and the reader pool hand each one to
// one goroutine at a time.
type conn struct {
	c     driver.Conn
	stmts stmtCache
	args  []driver.NamedValue
}

// maxStmts bounds the prepared statements a connection keeps. The queue's
// SQL is a fixed set of texts, well under this.
const maxStmts = 64

func openConn(dsn string) (*conn, error) {
	c, err := (&msqlite.Driver{}).Open(dsn)
	if err != nil {
		return nil, err
	}
	return &conn{c: c, stmts: newStmtCache(maxStmts)}, nil
}

// close closes the connection and its prepared statements.
func (c *conn) close() error {
	return errors.Join(c.stmts.closeAll(), c.c.Close())
}

func (c *conn) stmt(query string) (driver.Stmt, error) {
	if st := c.stmts.get(query); st != nil {
		return st, nil
	}
	st, err := c.c.(driver.ConnPrepareContext).PrepareContext(context.Background(), query)
	if err != nil {
		return nil, err
	}
	c.stmts.put(query, st)
	return st, nil
}

func (c *conn) bind(args []any) []driver.NamedValue {
	c.args = c.args[:0]
	for i, a := range args {
		if n, ok := a.(int); ok {
			a = int64(n) // the driver takes int64 only
		}
		c.args = append(c.args, driver.NamedValue{Ordinal: i + 1, Value: a})
	}
	return c.args
}

// exec runs a statement that returns no rows and reports how many rows it
// changed.
func (c *conn) exec(query string, args ...any) (changed int64, err error) {
	st, err := c.stmt(query)
	if err != nil {
		return 0, err
	}
	res, err := st.(driver.StmtExecContext).ExecContext(context.Background(), c.bind(args))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// script runs SQL text of several statements, without keeping it prepared:
// for migrations, which run once.
func (c *conn) script(sql string) error {
	_, err := c.c.(driver.ExecerContext).ExecContext(context.Background(), sql, nil)
	return err
}

// errStop, returned by a query's row function, ends the query early
// without an error.
var errStop = errors.New("stop reading rows")

// query runs a statement and calls row for each row it returns, until row
// returns an error (errStop ends the query with none). The values are valid
// only during the call, apart from []byte values, which row may keep.
func (c *conn) query(query string, args []any, row func(vals []driver.Value) error) error {
	st, err := c.stmt(query)
	if err != nil {
		return err
	}
	rows, err := st.(driver.StmtQueryContext).QueryContext(context.Background(), c.bind(args))
	if err != nil {
		return err
	}
	vals := make([]driver.Value, len(rows.Columns()))
	for {
		err := rows.Next(vals)
		if err == io.EOF {
			break
		}
		if err == nil {
			err = row(vals)
		}
		if err != nil {
			_ = rows.Close()
			if err == errStop {
				return nil
			}
			return err
		}
	}
	return rows.Close()
}

// int64 runs a query that returns one integer, and returns it (0 if the
// query returns no row or NULL).
func (c *conn) int64(query string, args ...any) (int64, error) {
	var n int64
	err := c.query(query, args, func(vals []driver.Value) error {
		n = int64Value(vals[0])
		return errStop
	})
	return n, err
}

// tx runs fn in a transaction that begin opens; it commits if fn returns
// nil and rolls back otherwise.
func (c *conn) tx(begin string, fn func() error) error {
	if _, err := c.exec(begin); err != nil {
		return err
	}
	if err := fn(); err != nil {
		if _, rerr := c.exec("ROLLBACK"); rerr != nil {
			return errors.Join(err, fmt.Errorf("rollback: %w", rerr))
		}
		return err
	}
	if _, err := c.exec("COMMIT"); err != nil {
		// A failed COMMIT (say, SQLITE_BUSY) may leave the transaction
		// open.
		_, _ = c.exec("ROLLBACK")
		return err
	}
	return nil
}

// stmtCache keeps up to max prepared statements by SQL text, closing the
// least recently used one to make room.
type stmtCache struct {
	max int
	m   map[string]*list.Element // of *cached
	lru list.List                // most recently used first
}

type cached struct {
	query string
	st    driver.Stmt
}

func newStmtCache(max int) stmtCache {
	return stmtCache{max: max, m: make(map[string]*list.Element)}
}

func (s *stmtCache) get(query string) driver.Stmt {
	e := s.m[query]
	if e == nil {
		return nil
	}
	s.lru.MoveToFront(e)
	return e.Value.(*cached).st
}

// put adds st, closing the least recently used statement if the cache is
// full.
func (s *stmtCache) put(query string, st driver.Stmt) {
	if s.lru.Len() >= s.max {
		old := s.lru.Remove(s.lru.Back()).(*cached)
		delete(s.m, old.query)
		// Finalizing a statement fails only as its last step did, and
		// that step reported it.
		_ = old.st.Close()
	}
	s.m[query] = s.lru.PushFront(&cached{query: query, st: st})
}

func (s *stmtCache) closeAll() error {
	var errs []error
	for e := s.lru.Front(); e != nil; e = e.Next() {
		errs = append(errs, e.Value.(*cached).st.Close())
	}
	s.lru.Init()
	clear(s.m)
	return errors.Join(errs...)
}

// len returns how many statements are prepared.
func (s *stmtCache) len() int { return s.lru.Len() }

// int64Value reads an INTEGER column; NULL reads as zero.
func int64Value(v driver.Value) int64 {
	n, _ := v.(int64)
	return n
}

// bytesValue reads a BLOB or TEXT column; NULL reads as nil.
func bytesValue(v driver.Value) []byte {
	switch v := v.(type) {
	case []byte:
		return v
	case string:
		return []byte(v)
	}
	return nil
}

// readers is a pool of read-only connections, for Stats, Dead and Queues,
// which read in transactions of their own and so never block the writer.
type readers struct {
	dsn  string
	sem  chan struct{} // a token per connection in use
	mu   sync.Mutex
	idle []*conn
	shut bool
}

// maxReaders bounds the read connections a DB opens.
const maxReaders = 4

func newReaders(dsn string) *readers {
	return &readers{dsn: dsn, sem: make(chan struct{}, maxReaders)}
}

// read runs fn in a read transaction on one of the pool's connections,
// which sees one snapshot of the file. It waits for a free connection
// until ctx ends, and returns ctx's cause then.
func (r *readers) read(ctx context.Context, fn func(c *conn) error) error {
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	defer func() { <-r.sem }()
	c, err := r.get()
	if err != nil {
		return err
	}
	err = c.tx("BEGIN", func() error { return fn(c) })
	r.put(c)
	return err
}

func (r *readers) get() (*conn, error) {
	r.mu.Lock()
	if r.shut {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	if n := len(r.idle); n > 0 {
		c := r.idle[n-1]
		r.idle = r.idle[:n-1]
		r.mu.Unlock()
		return c, nil
	}
	r.mu.Unlock()
	return openConn(r.dsn)
}

func (r *readers) put(c *conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.shut {
		_ = c.close() // it only read
		return
	}
	r.idle = append(r.idle, c)
}

// close closes the idle connections; those in use are closed when their
// read ends.
func (r *readers) close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.shut = true
	var errs []error
	for _, c := range r.idle {
		errs = append(errs, c.close())
	}
	r.idle = nil
	return errors.Join(errs...)
}
