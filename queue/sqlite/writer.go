package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"sync"

	msqlite "modernc.org/sqlite"
)

// writer is the DB's one write connection. SQLite admits one writer at a
// time per file, so the process queues its writes here instead of letting
// them contend for the file lock; other processes are waited for with the
// busy timeout.
//
// Writes that queue up while another runs are committed together: the
// goroutine whose write finds the connection free becomes the leader, runs
// its own write, every write queued by then and every write that queues
// while they run in one transaction (group commit, up to maxGroup writes),
// and hands the connection to the next queued writer. A busy consumer's
// Receive, Ack and Extend calls thus share transactions, and so the
// locking, the page writes and, with synchronous=FULL, the flush of each
// commit. If a write of a group fails, the group is rolled back and its
// writes run again one by one, so that one failure does not fail the
// others.
//
// The writer drives the modernc.org/sqlite connection directly rather than
// through database/sql: the queue's statements are short, and database/sql's
// per-transaction goroutine and the driver's per-statement cancellation
// watcher cost as much as the statements themselves. A write therefore runs
// to completion once started (a wait for another process's lock is bounded
// by the busy timeout); its context is honoured while it waits its turn.
type writer struct {
	conn  driver.Conn
	stmts map[string]driver.Stmt // prepared on first use
	args  []driver.NamedValue
	inTx  bool // a group transaction is open

	// rollbacks counts the transactions rolled back, so that what a write
	// learned in a transaction can be known to have been undone since.
	rollbacks uint64

	mu     sync.Mutex
	busy   bool          // a leader holds the connection
	idle   chan struct{} // closed when busy becomes false
	queue  []*request
	closed bool
}

// request is one queued write.
type request struct {
	ctx    context.Context
	fn     func(w *writer) error
	err    error
	leader bool          // set instead of err: the request must lead
	taken  bool          // a leader has taken it; it can no longer be withdrawn
	done   chan struct{} // closed when err or leader is set
}

// maxGroup bounds the writes committed together.
const maxGroup = 64

func openWriter(dsn string) (*writer, error) {
	c, err := (&msqlite.Driver{}).Open(dsn)
	if err != nil {
		return nil, err
	}
	return &writer{conn: c, stmts: make(map[string]driver.Stmt)}, nil
}

// do runs fn with the connection, alone or in a group transaction, and
// returns its error. fn may run more than once (after its group rolled
// back), so it must reset whatever it reports before it starts. do returns
// ctx's cause if ctx ends before fn starts, and ErrClosed after close.
func (w *writer) do(ctx context.Context, fn func(w *writer) error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	req := &request{ctx: ctx, fn: fn}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	if !w.busy {
		w.busy = true
		w.idle = make(chan struct{})
		req.taken = true
		w.mu.Unlock()
		return w.lead(req)
	}
	req.done = make(chan struct{})
	w.queue = append(w.queue, req)
	w.mu.Unlock()

	select {
	case <-req.done:
	case <-ctx.Done():
		w.mu.Lock()
		if !req.taken {
			for i, r := range w.queue {
				if r == req {
					w.queue = append(w.queue[:i], w.queue[i+1:]...)
					break
				}
			}
			w.mu.Unlock()
			return context.Cause(ctx)
		}
		w.mu.Unlock()
		<-req.done
	}
	if req.leader {
		return w.lead(req)
	}
	return req.err
}

// lead runs own and the writes queued by now, and those that queue up
// while they run, as one group; then it hands the connection to the next
// queued write, if any, and returns own's error.
func (w *writer) lead(own *request) error {
	group := w.run(append([]*request{own}, w.take(maxGroup-1)...))

	w.mu.Lock()
	if len(w.queue) > 0 {
		next := w.queue[0]
		w.queue = w.queue[1:]
		next.taken = true
		next.leader = true
		close(next.done)
	} else {
		w.busy = false
		close(w.idle)
	}
	w.mu.Unlock()

	for _, r := range group {
		if r != own {
			close(r.done)
		}
	}
	return own.err
}

// take takes up to n queued writes.
func (w *writer) take(n int) []*request {
	w.mu.Lock()
	defer w.mu.Unlock()
	n = min(len(w.queue), n)
	taken := make([]*request, n, n+1)
	copy(taken, w.queue)
	for _, r := range taken {
		r.taken = true
	}
	w.queue = append(w.queue[:0], w.queue[n:]...)
	return taken
}

// run runs a group of writes, and the writes that queue up meanwhile (up
// to maxGroup in all), sets each one's err, and returns them all. A write
// whose context ended while it waited is not started. (Once taken into a
// group, a write can no longer be withdrawn by its own goroutine.)
func (w *writer) run(group []*request) []*request {
	var running []*request
	start := func(rs []*request) {
		for _, r := range rs {
			if r.ctx.Err() != nil {
				r.err = context.Cause(r.ctx)
			} else {
				running = append(running, r)
			}
		}
	}
	start(group)
	if len(running) == 0 {
		return group
	}
	failed := false // a write failed, rather than BEGIN or COMMIT
	err := w.tx(func() error {
		for i := 0; ; i++ {
			for i == len(running) { // until one of those taken has not ended
				if len(group) >= maxGroup {
					return nil
				}
				more := w.take(maxGroup - len(group))
				if len(more) == 0 {
					return nil
				}
				group = append(group, more...)
				start(more)
			}
			if err := running[i].fn(w); err != nil {
				failed = true
				return err
			}
		}
	})
	switch {
	case err == nil:
	case failed && len(running) == 1:
		running[0].err = err
	case failed:
		// The group rolled back: run each write alone, in a transaction
		// of its own, so that the failure is reported to its own caller
		// only and leaves nothing behind.
		for _, r := range running {
			r.err = w.tx(func() error { return r.fn(w) })
		}
	default:
		for _, r := range running {
			r.err = err
		}
	}
	return group
}

// close waits for the writes in progress and queued, then closes the
// connection. Writes after close fail with ErrClosed.
func (w *writer) close() error {
	w.mu.Lock()
	w.closed = true
	var idle chan struct{}
	if w.busy {
		idle = w.idle
	}
	w.mu.Unlock()
	if idle != nil {
		<-idle
	}
	var errs []error
	for _, st := range w.stmts {
		errs = append(errs, st.Close())
	}
	errs = append(errs, w.conn.Close())
	return errors.Join(errs...)
}

func (w *writer) stmt(query string) (driver.Stmt, error) {
	if st, ok := w.stmts[query]; ok {
		return st, nil
	}
	st, err := w.conn.(driver.ConnPrepareContext).PrepareContext(context.Background(), query)
	if err != nil {
		return nil, err
	}
	w.stmts[query] = st
	return st, nil
}

func (w *writer) bind(args []any) []driver.NamedValue {
	w.args = w.args[:0]
	for i, a := range args {
		if n, ok := a.(int); ok {
			a = int64(n) // the driver takes int64 only
		}
		w.args = append(w.args, driver.NamedValue{Ordinal: i + 1, Value: a})
	}
	return w.args
}

// exec runs a statement that returns no rows and reports how many rows it
// changed and the last row ID it inserted.
func (w *writer) exec(query string, args ...any) (changed, lastID int64, err error) {
	st, err := w.stmt(query)
	if err != nil {
		return 0, 0, err
	}
	res, err := st.(driver.StmtExecContext).ExecContext(context.Background(), w.bind(args))
	if err != nil {
		return 0, 0, err
	}
	if changed, err = res.RowsAffected(); err != nil {
		return 0, 0, err
	}
	if lastID, err = res.LastInsertId(); err != nil {
		return 0, 0, err
	}
	return changed, lastID, nil
}

// query runs a statement and calls row for each row it returns. The values
// are valid only during the call, apart from []byte values, which row may
// keep.
func (w *writer) query(query string, args []any, row func(vals []driver.Value) error) error {
	st, err := w.stmt(query)
	if err != nil {
		return err
	}
	rows, err := st.(driver.StmtQueryContext).QueryContext(context.Background(), w.bind(args))
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
			return err
		}
	}
	return rows.Close()
}

// tx runs fn in a write transaction, or as part of the group transaction
// that is open. BEGIN IMMEDIATE takes the write lock at once, so that the
// transaction never has to upgrade a read lock, which fails with SQLITE_BUSY
// whatever the busy timeout when another process wrote meanwhile. The
// transaction commits if fn returns nil and rolls back otherwise.
func (w *writer) tx(fn func() error) error {
	if w.inTx {
		return fn()
	}
	if _, _, err := w.exec("BEGIN IMMEDIATE"); err != nil {
		return err
	}
	w.inTx = true
	defer func() { w.inTx = false }()
	if err := fn(); err != nil {
		w.rollbacks++
		if _, _, rerr := w.exec("ROLLBACK"); rerr != nil {
			return errors.Join(err, fmt.Errorf("rollback: %w", rerr))
		}
		return err
	}
	if _, _, err := w.exec("COMMIT"); err != nil {
		// A failed COMMIT (say, SQLITE_BUSY) may leave the transaction
		// open.
		w.rollbacks++
		_, _, _ = w.exec("ROLLBACK")
		return err
	}
	return nil
}

// dataVersion returns the file's PRAGMA data_version as this connection
// sees it: a number that changes when another connection, in this process
// or another, commits a change, and only then.
func (w *writer) dataVersion() (int64, error) {
	var v int64
	err := w.query("PRAGMA data_version", nil, func(vals []driver.Value) error {
		v = int64Value(vals[0])
		return nil
	})
	return v, err
}

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
