package sqlite

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crewgo/crew"
	"github.com/crewgo/crew/queue"
)

// Queue is one named queue of a DB: a queue.Source that a queue.Consumer
// receives from, and a queue.Publisher. Get one with [DB.Queue]. A Queue is
// safe for concurrent use, by any number of consumers and publishers in any
// number of processes.
//
// Every method fails with an error wrapping [ErrClosed] once the DB is
// closed, and with ctx's error if ctx ends before the operation starts; such
// a failure changes nothing. A write that has started (they queue for the
// DB's one write connection) runs to completion: that takes milliseconds,
// or up to the BusyTimeout while another process holds the file's lock.
type Queue struct {
	db   *DB
	name string

	id atomic.Int64 // the queue's row in the queues table, once known

	mu      sync.Mutex
	changed chan struct{} // closed when a message may have become ready; nil when nobody waits

	promotedAt int64 // when delayed messages were last promoted; guarded by the writer
}

var (
	_ queue.Source    = (*Queue)(nil)
	_ queue.Publisher = (*Queue)(nil)
)

// errNoName is what every operation on Queue("") returns.
var errNoName = fmt.Errorf("sqlite: the queue name is empty: %w", crew.ErrPermanent)

// receipt identifies one delivery: the queue and the priority of the
// message (which, with its ID, are its key in the ready table), and a
// token. The token is random, so that a holder from an earlier delivery (in
// any process) cannot settle a later one.
type receipt struct {
	token    int64
	queue    int64 // the queue's row ID
	priority int64
}

// newToken returns a receipt token: at least 2^62, so that every token
// takes as many bytes in a row as noReceipt.
func newToken() int64 { return 1<<62 | rand.Int64N(1<<62) }

// Name returns the queue's name.
func (q *Queue) Name() string { return q.name }

// rowID returns the queue's row ID in the queues table, looking it up (and
// creating the row, if create) when it is not known yet. It returns 0 if
// the queue has no row and create is false: it has never held a message.
// It runs with the writer; callers remember the ID once their write
// commits, since a rolled-back write may have created the row.
func (q *Queue) rowID(w *writer, create bool) (int64, error) {
	if id := q.id.Load(); id != 0 {
		return id, nil
	}
	if create {
		if _, err := w.exec(sqlCreateQueue, q.name); err != nil {
			return 0, err
		}
	}
	return w.int64(sqlQueueID, q.name)
}

// remember caches the queue's row ID once a write that used it committed.
func (q *Queue) remember(id int64) {
	if id != 0 {
		q.id.Store(id)
	}
}

// check returns the error that every operation reports before it starts.
func (q *Queue) check() error {
	if q.name == "" {
		return errNoName
	}
	if q.db.isClosed() {
		return ErrClosed
	}
	return nil
}

func (q *Queue) wrap(err error, op string) error {
	if q.db.isClosed() {
		err = ErrClosed
	}
	return fmt.Errorf("sqlite: queue %q: %s: %w", q.name, op, q.db.classify(err))
}

// watch returns a channel that is closed at the next notify.
func (q *Queue) watch() <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.changed == nil {
		q.changed = make(chan struct{})
	}
	return q.changed
}

// notify wakes the Receives of this process that wait on the queue.
func (q *Queue) notify() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.changed != nil {
		close(q.changed)
		q.changed = nil
	}
}

func now() int64 { return time.Now().UnixMilli() }

// receivedAt reads the first_received column: the zero Time for
// notReceived.
func receivedAt(ms int64) time.Time {
	if ms == notReceived {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// decodeAttributes reads the attributes column. Publish writes it as a
// JSON object; a value that does not decode (something else wrote it)
// reads as no attributes rather than failing the Receive, which, as the
// lease has been taken, would fail every later Receive the same way.
func decodeAttributes(b []byte) map[string]string {
	if b == nil {
		return nil
	}
	var m map[string]string
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	return m
}

// Publish adds a message with body to the queue and returns its ID, once
// the message is committed (see [Synchronous] for what that promises).
// Options set a delay, a priority and attributes; see queue.PublishOption.
// Publish wakes this DB's waiting Receives at once; other processes see the
// message within their PollInterval.
func (q *Queue) Publish(ctx context.Context, body []byte, opts ...queue.PublishOption) (string, error) {
	ids, err := q.publish(ctx, [][]byte{body}, opts)
	if err != nil {
		return "", err
	}
	return ids[0], nil
}

// PublishBatch adds one message per body, all with the same options, in one
// transaction: either all of them are published or none is. It returns
// their IDs in the order of bodies. Publishing many messages this way is
// much faster than calling Publish for each.
func (q *Queue) PublishBatch(ctx context.Context, bodies [][]byte, opts ...queue.PublishOption) ([]string, error) {
	if len(bodies) == 0 {
		if err := q.check(); err != nil {
			return nil, err
		}
		return nil, nil
	}
	return q.publish(ctx, bodies, opts)
}

func (q *Queue) publish(ctx context.Context, bodies [][]byte, opts []queue.PublishOption) ([]string, error) {
	if err := q.check(); err != nil {
		return nil, err
	}
	o := queue.NewPublishOptions(opts...)
	var attrs any // NULL when there are none
	if len(o.Attributes) > 0 {
		b, err := json.Marshal(o.Attributes)
		if err != nil {
			return nil, q.wrap(err, "publish: encode the attributes")
		}
		attrs = string(b)
	}
	t := now()
	query, args := sqlPublishReady, []any{0, int64(o.Priority), 0, nil, attrs, t}
	if o.Delay > 0 {
		query, args = sqlPublishDelayed, append(args, after(t, o.Delay))
	}
	ids := make([]string, len(bodies))
	var qid int64
	err := q.db.write(ctx, func(w *writer) error {
		var err error
		if qid, err = q.rowID(w, true); err != nil {
			return err
		}
		id, err := nextIDs(w, len(bodies))
		if err != nil {
			return err
		}
		args[0] = qid
		for i, body := range bodies {
			if body == nil {
				body = []byte{}
			}
			args[2], args[3] = id, body
			if _, err := w.exec(query, args...); err != nil {
				return err
			}
			ids[i] = strconv.FormatInt(id, 10)
			id++
		}
		return nil
	})
	if err != nil {
		return nil, q.wrap(err, "publish")
	}
	q.remember(qid)
	q.notify()
	return ids, nil
}

// nextIDs takes n message IDs from the file's counter and returns the
// first; the others follow it.
func nextIDs(w *writer, n int) (int64, error) {
	last, err := w.int64(sqlNextIDs, n)
	if err == nil && last == 0 {
		err = errors.New("the file has no ID counter for messages (its sqlite_sequence row is missing)")
	}
	return last - int64(n) + 1, err
}

// after returns the Unix millisecond d after t, rounded up, so that nothing
// becomes ready earlier than asked.
func after(t int64, d time.Duration) int64 {
	ms := d.Milliseconds()
	if d%time.Millisecond != 0 {
		ms++
	}
	return t + ms
}

// Receive waits until at least one message is ready, then leases up to max
// ready messages (at most 1000) for lease, in one transaction, and returns
// them: highest priority first, then oldest. Each delivery counts as an
// attempt and gets a new receipt, which fences off every earlier holder of
// the message. A message whose lease has run out takes its place in that
// order again.
//
// While nothing is ready, Receive waits for a publish, Nack or Redrive
// through this DB (which wakes it at once), for the next delayed message to
// become ready or lease to end, or for PollInterval to pass, whichever comes
// first, and looks again. It returns ctx's cause (and no messages) if ctx
// ends while it waits, an error wrapping ErrClosed if the DB is closed, and
// an error naming the bad argument if max < 1 or lease <= 0. A lease that
// has begun is committed and returned even if ctx ends meanwhile.
func (q *Queue) Receive(ctx context.Context, max int, lease time.Duration) ([]*queue.Message, error) {
	if err := q.check(); err != nil {
		return nil, err
	}
	if max < 1 {
		return nil, fmt.Errorf("sqlite: queue %q: Receive(max=%d): max must be at least 1", q.name, max)
	}
	if lease <= 0 {
		return nil, fmt.Errorf("sqlite: queue %q: Receive(lease=%v): lease must be positive", q.name, lease)
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		changed := q.watch() // before looking, so that no publish is missed
		msgs, next, err := q.lease(ctx, max, lease)
		if err != nil {
			if ctx.Err() != nil {
				return nil, context.Cause(ctx)
			}
			return nil, q.wrap(err, "receive")
		}
		if len(msgs) > 0 {
			return msgs, nil
		}
		wait := q.db.opts.pollInterval
		if next > 0 {
			wait = min(wait, time.Duration(next-now())*time.Millisecond)
		}
		if wait < time.Millisecond {
			wait = time.Millisecond
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case <-changed:
		case <-timer.C:
		case <-ctx.Done():
		case <-q.db.closed:
			return nil, q.wrap(ErrClosed, "receive")
		}
	}
}

// leased is one row that lease took, in the order Receive returns them.
type leased struct {
	priority, id, attempts int64
	firstReceived          int64 // Unix milliseconds, or notReceived
	body, attrs            []byte
}

// find reads up to limit ready messages, in the order Receive takes them,
// as a lease at t would leave them.
func find(w *writer, qid, t int64, limit int) ([]leased, error) {
	var rows []leased
	err := w.query(sqlReady, []any{qid, t}, func(vals []driver.Value) error {
		rw := leased{
			priority:      int64Value(vals[0]),
			id:            int64Value(vals[1]),
			attempts:      int64Value(vals[2]) + 1,
			body:          bytesValue(vals[3]),
			attrs:         bytesValue(vals[4]),
			firstReceived: int64Value(vals[5]),
		}
		if rw.attempts == 1 {
			rw.firstReceived = t
		}
		rows = append(rows, rw)
		if len(rows) == limit {
			return errStop
		}
		return nil
	})
	return rows, err
}

// markLeased leases the rows at t until leaseEnd with token, counting one
// more attempt, in statements of one priority each (see sqlMarkLeased).
func markLeased(w *writer, qid int64, rows []leased, token, t, leaseEnd int64) error {
	args := make([]any, 0, 5+maxLeaseList)
	for len(rows) > 0 {
		same := 1
		for same < len(rows) && rows[same].priority == rows[0].priority {
			same++
		}
		n := leaseListLen(same)
		args = append(args[:0], qid, rows[0].priority, leaseEnd, token, t)
		for _, rw := range rows[:n] {
			args = append(args, rw.id)
		}
		changed, err := w.exec(sqlMarkLeased[n], args...)
		if err != nil {
			return err
		}
		if changed != int64(n) {
			// The rows were read in this transaction, under the write lock.
			return fmt.Errorf("leased %d of %d messages", changed, n)
		}
		rows = rows[n:]
	}
	return nil
}

// promoteEvery is how often, at most, a busy Queue looks for delayed
// messages whose time has come. An idle one looks before every wait.
var promoteEvery = 10 * time.Millisecond // a variable for tests

// promote moves the delayed messages whose time has come to ready.
func (q *Queue) promote(w *writer, qid, t int64) error {
	q.promotedAt = t
	n, err := w.exec(sqlPromote, qid, t)
	if err == nil && n > 0 {
		_, err = w.exec(sqlPromoted, qid, t)
	}
	return err
}

// lease leases up to max ready messages. Before that, at most every
// promoteEvery and always when nothing is ready, it makes ready the delayed
// messages whose time has come: a statement that would otherwise add a
// third to the cost of a busy Receive. If nothing is ready, lease returns
// when the next delayed message becomes ready or lease ends (Unix
// milliseconds), or 0 if nothing will.
func (q *Queue) lease(ctx context.Context, max int, lease time.Duration) (msgs []*queue.Message, next int64, err error) {
	token := newToken()
	var rows []leased
	var qid int64
	err = q.db.write(ctx, func(w *writer) error {
		var err error
		if qid, err = q.rowID(w, false); err != nil || qid == 0 {
			return err // no row: nothing was ever published
		}
		t := now()
		promoted := t-q.promotedAt >= promoteEvery.Milliseconds() || t < q.promotedAt
		if promoted {
			if err := q.promote(w, qid, t); err != nil {
				return err
			}
		}
		limit := min(max, maxReceive)
		rows, err = find(w, qid, t, limit)
		if err == nil && len(rows) == 0 && !promoted {
			if err = q.promote(w, qid, t); err == nil {
				rows, err = find(w, qid, t, limit)
			}
		}
		switch {
		case err != nil:
			return err
		case len(rows) > 0:
			return markLeased(w, qid, rows, token, t, after(t, lease))
		}
		next, err = nextDue(w, qid, t)
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	q.remember(qid)
	msgs = make([]*queue.Message, len(rows))
	for i, rw := range rows {
		m := &queue.Message{
			ID:            strconv.FormatInt(rw.id, 10),
			Attempt:       int(rw.attempts),
			FirstReceived: receivedAt(rw.firstReceived),
			Body:          rw.body,
			Attributes:    decodeAttributes(rw.attrs),
			Receipt:       receipt{token: token, queue: qid, priority: rw.priority},
		}
		if m.Body == nil {
			m.Body = []byte{}
		}
		msgs[i] = m
	}
	return msgs, next, nil
}

// nextDue returns when the next delayed message of the queue becomes ready
// or the next of its leases ends, whichever is first, or 0 if neither will.
func nextDue(w *writer, qid, t int64) (int64, error) {
	delayed, err := w.int64(sqlNextDelayed, qid)
	if err != nil {
		return 0, err
	}
	leaseEnd, err := w.int64(sqlNextLeaseEnd, qid, t)
	if err != nil {
		return 0, err
	}
	if delayed == 0 || leaseEnd != 0 && leaseEnd < delayed {
		return leaseEnd, nil
	}
	return delayed, nil
}

// write runs fn once with the writer connection, in a transaction that it
// may share with other writes; see writer.
func (db *DB) write(ctx context.Context, fn func(w *writer) error) error {
	return db.w.do(ctx, fn)
}
