package sqlite

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
// commit. Each write runs in a savepoint of its own: one that fails is
// rolled back alone and reports its error to its own caller, and the
// others commit.
//
// A write runs to completion once started (a wait for another process's
// lock is bounded by the busy timeout); its context is honoured while it
// waits its turn.
type writer struct {
	*conn

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
	c, err := openConn(dsn)
	if err != nil {
		return nil, err
	}
	return &writer{conn: c}, nil
}

// do runs fn once with the connection, in a transaction it may share with
// other writes, and returns its error, or the error of the transaction's
// BEGIN or COMMIT. If fn fails, what it wrote is rolled back and the
// other writes of its transaction are unaffected. do returns ctx's cause if
// ctx ends before fn starts, and ErrClosed after close.
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
		if w.withdraw(req) {
			return context.Cause(ctx)
		}
		<-req.done
	}
	if req.leader {
		return w.lead(req)
	}
	return req.err
}

// withdraw takes req out of the queue and reports whether it was still
// there: a leader may have taken it already.
func (w *writer) withdraw(req *request) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if req.taken {
		return false
	}
	for i, r := range w.queue {
		if r == req {
			w.queue = append(w.queue[:i], w.queue[i+1:]...)
			break
		}
	}
	return true
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

// run runs a group of writes in one transaction, taking the writes that
// queue up meanwhile (up to maxGroup in all), sets each one's err, and
// returns them all. A write whose context ended while it waited is not
// started. (Once taken into a group, a write can no longer be withdrawn by
// its own goroutine.)
func (w *writer) run(group []*request) []*request {
	var ran []*request // the writes that ran and succeeded
	var txErr error    // an error that undid the whole transaction
	open := false
	for i := 0; ; i++ {
		if i == len(group) {
			if len(group) >= maxGroup {
				break
			}
			more := w.take(maxGroup - len(group))
			if len(more) == 0 {
				break
			}
			group = append(group, more...)
		}
		r := group[i]
		switch {
		case r.ctx.Err() != nil:
			r.err = context.Cause(r.ctx)
			continue
		case txErr != nil:
			r.err = txErr
			continue
		case !open:
			if _, txErr = w.exec("BEGIN IMMEDIATE"); txErr != nil {
				r.err = txErr
				continue
			}
			open = true
		}
		if r.err, txErr = w.member(r.fn); r.err == nil && txErr == nil {
			ran = append(ran, r)
		}
	}
	if open {
		txErr = w.end(txErr)
	}
	if txErr != nil {
		for _, r := range ran {
			r.err = txErr
		}
	}
	return group
}

// member runs fn in a savepoint of the open transaction, and rolls back
// to the savepoint if fn fails. It returns fn's error, and, if the
// savepoint could not be released or rolled back (the transaction is then
// of no use), that failure as txErr.
func (w *writer) member(fn func(w *writer) error) (err, txErr error) {
	if _, txErr = w.exec("SAVEPOINT member"); txErr != nil {
		return txErr, txErr
	}
	if err = fn(w); err != nil {
		if _, txErr = w.exec("ROLLBACK TO member"); txErr != nil {
			return err, fmt.Errorf("roll back a failed write: %w", txErr)
		}
	}
	if _, txErr = w.exec("RELEASE member"); txErr != nil {
		return err, txErr
	}
	return err, nil
}

// end commits the open transaction, or rolls it back if txErr is set, and
// returns the error that undid it, if any.
func (w *writer) end(txErr error) error {
	if txErr == nil {
		if _, txErr = w.exec("COMMIT"); txErr == nil {
			return nil
		}
		// A failed COMMIT (say, SQLITE_BUSY) may leave the transaction
		// open.
	}
	if _, err := w.exec("ROLLBACK"); err != nil {
		return errors.Join(txErr, fmt.Errorf("rollback: %w", err))
	}
	return txErr
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
	return w.conn.close()
}
