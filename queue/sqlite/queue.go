package sqlite

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
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

	// Guarded by the writer.
	promotedAt int64    // when delayed messages were last promoted
	from       position // where the next Receive may start looking
}

// position is a place in the order in which Receive takes messages. While
// it holds, no message before it is ready except one whose lease has run
// out since: Receive finds those by scanning from the start at least every
// promoteEvery, and whenever nothing after the position is ready. It is
// forgotten by every write of this process that may make an earlier
// message ready (a Nack, a Redrive, a Publish of a higher priority), and
// it no longer holds after a rollback (see writer.rollbacks) or a commit
// by another connection (see writer.dataVersion). A Receive that starts
// from it skips the messages that this process holds leased, which
// otherwise lead the queue's index and cost a row lookup each on every
// Receive: with a hundred handlers, more than the lease itself.
type position struct {
	valid       bool
	priority    int64
	id          int64
	rollbacks   uint64 // the writer's rollbacks when it was taken
	dataVersion int64  // the file's data version when it was taken
}

// start returns where a Receive may start, if not from the beginning. It
// runs with the writer, in the Receive's transaction.
func (q *Queue) start(w *writer) (position, bool, error) {
	p := q.from
	if !p.valid || p.rollbacks != w.rollbacks {
		return p, false, nil
	}
	v, err := w.dataVersion()
	return p, err == nil && v == p.dataVersion, err
}

// forget makes the next Receive start from the beginning. It runs with the
// writer.
func (q *Queue) forget() { q.from.valid = false }

var (
	_ queue.Source    = (*Queue)(nil)
	_ queue.Publisher = (*Queue)(nil)
)

// errNoName is what every operation on Queue("") returns.
var errNoName = fmt.Errorf("sqlite: the queue name is empty: %w", crew.ErrPermanent)

// receipt is the token of one delivery. It is random, so that a holder from
// an earlier delivery (in any process) cannot settle a later one.
type receipt int64

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
		if _, _, err := w.exec(sqlCreateQueue, q.name); err != nil {
			return 0, err
		}
	}
	var id int64
	err := w.query(sqlQueueID, []any{q.name}, func(vals []driver.Value) error {
		id = int64Value(vals[0])
		return nil
	})
	return id, err
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
	return fmt.Errorf("sqlite: queue %q: %s: %w", q.name, op, err)
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
	state, readyAt := int64(stateReady), t
	if o.Delay > 0 {
		state, readyAt = stateDelayed, after(t, o.Delay)
	}
	ids := make([]string, len(bodies))
	var qid int64
	err := q.db.write(ctx, func(w *writer) error {
		var err error
		if qid, err = q.rowID(w, true); err != nil {
			return err
		}
		if state == stateReady && int64(o.Priority) > q.from.priority {
			q.forget() // they go before where Receive would start
		}
		for i, body := range bodies {
			if body == nil {
				body = []byte{}
			}
			_, id, err := w.exec(sqlPublish, qid, state, int64(o.Priority), readyAt, body, attrs, t)
			if err != nil {
				return err
			}
			ids[i] = strconv.FormatInt(id, 10)
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
// order again within 10ms, and at once when nothing else is ready: a busy
// Receive looks past the messages this DB holds leased.
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
	id, attempts, priority int64
	body, attrs            []byte
}

// find appends to rows up to limit ready messages, in order, from the
// start of the queue or after p.
func find(w *writer, rows []leased, limit int, qid, t int64, p *position) ([]leased, error) {
	row := func(vals []driver.Value) error {
		rows = append(rows, leased{
			id:       int64Value(vals[0]),
			attempts: int64Value(vals[1]) + 1,
			body:     bytesValue(vals[2]),
			attrs:    bytesValue(vals[3]),
			priority: int64Value(vals[4]),
		})
		return nil
	}
	if p == nil {
		return rows, w.query(sqlLease(limit, fromStart), []any{qid, t}, row)
	}
	if err := w.query(sqlLease(limit, fromSamePriority), []any{qid, t, p.priority, p.id}, row); err != nil {
		return rows, err
	}
	if n := len(rows); n < limit {
		return rows, w.query(sqlLease(limit-n, fromLowerPriority), []any{qid, t, p.priority}, row)
	}
	return rows, nil
}

// markLeased leases the rows until leaseEnd under receipt r, counting one
// more attempt, in statements of up to leaseChunk rows.
func markLeased(w *writer, rows []leased, r receipt, leaseEnd int64) error {
	args := make([]any, 0, 2+leaseChunk)
	for chunk := range slices.Chunk(rows, leaseChunk) {
		args = append(args[:0], leaseEnd, int64(r))
		for _, rw := range chunk {
			args = append(args, rw.id)
		}
		n, _, err := w.exec(sqlMarkLeased[len(chunk)], args...)
		if err != nil {
			return err
		}
		if n != int64(len(chunk)) {
			// The rows were read in this transaction, under the write lock.
			return fmt.Errorf("leased %d of %d messages", n, len(chunk))
		}
	}
	return nil
}

// promoteEvery is how often, at most, a busy Queue looks for delayed
// messages whose time has come. An idle one looks before every wait.
var promoteEvery = 10 * time.Millisecond // a variable for tests

// lease leases up to max ready messages. Before that, at most every
// promoteEvery and always when nothing is ready, it makes ready the delayed
// messages whose time has come: a statement that would otherwise add a
// third to the cost of a busy Receive. If nothing is ready,
// lease returns when the next delayed message becomes ready or lease ends
// (Unix milliseconds), or 0 if nothing will.
func (q *Queue) lease(ctx context.Context, max int, lease time.Duration) (msgs []*queue.Message, next int64, err error) {
	r := receipt(rand.Int64())
	var rows []leased
	var qid int64
	err = q.db.write(ctx, func(w *writer) error {
		rows, next = rows[:0], 0
		var err error
		if qid, err = q.rowID(w, false); err != nil || qid == 0 {
			return err // no row: nothing was ever published
		}
		t := now()
		promoted := false
		promote := func() error {
			_, _, err := w.exec(sqlPromote, qid, t)
			promoted = true
			q.promotedAt = t
			return err
		}
		if t-q.promotedAt >= promoteEvery.Milliseconds() || t < q.promotedAt {
			if err := promote(); err != nil {
				return err
			}
		}
		limit := min(max, maxReceive)
		if !promoted {
			p, ok, err := q.start(w)
			if err != nil {
				return err
			}
			if ok {
				if rows, err = find(w, rows, limit, qid, t, &p); err != nil {
					return err
				}
			}
		}
		for len(rows) == 0 {
			if rows, err = find(w, rows, limit, qid, t, nil); err != nil {
				return err
			}
			if len(rows) > 0 || promoted {
				break
			}
			if err := promote(); err != nil {
				return err
			}
		}
		if len(rows) > 0 {
			if err := markLeased(w, rows, r, after(t, lease)); err != nil {
				return err
			}
			v, err := w.dataVersion()
			last := rows[len(rows)-1]
			q.from = position{valid: err == nil, priority: last.priority, id: last.id, rollbacks: w.rollbacks, dataVersion: v}
			return nil
		}
		return w.query(sqlNextDue, []any{qid, t}, func(vals []driver.Value) error {
			for _, v := range vals {
				if d := int64Value(v); d > 0 && (next == 0 || d < next) {
					next = d
				}
			}
			return nil
		})
	})
	if err != nil {
		return nil, 0, err
	}
	q.remember(qid)
	msgs = make([]*queue.Message, len(rows))
	for i, rw := range rows {
		m := &queue.Message{
			ID:         strconv.FormatInt(rw.id, 10),
			Attempt:    int(rw.attempts),
			Body:       rw.body,
			Attributes: decodeAttributes(rw.attrs),
			Receipt:    r,
		}
		if m.Body == nil {
			m.Body = []byte{}
		}
		msgs[i] = m
	}
	return msgs, next, nil
}

// fence returns the key of m's current delivery: its row ID and receipt. A
// message that this queue did not deliver has none, and settling it fails
// with queue.ErrLeaseLost.
func (q *Queue) fence(m *queue.Message) (id int64, r receipt, err error) {
	r, ok := m.Receipt.(receipt)
	id, perr := strconv.ParseInt(m.ID, 10, 64)
	if !ok || perr != nil {
		return 0, 0, fmt.Errorf("sqlite: queue %q: message %s was not received from this queue: %w", q.name, m.ID, queue.ErrLeaseLost)
	}
	return id, r, nil
}

func (q *Queue) leaseLost(m *queue.Message) error {
	return fmt.Errorf("sqlite: queue %q: message %s: %w", q.name, m.ID, queue.ErrLeaseLost)
}

// Ack deletes the messages, in one transaction. A message whose lease has
// passed on (it was received again, nacked, dead-lettered or deleted since
// this copy was received) is left alone and reported, wrapping
// queue.ErrLeaseLost, in the joined error; the others are still deleted.
// If the database fails, nothing is deleted.
func (q *Queue) Ack(ctx context.Context, msgs ...*queue.Message) error {
	if err := q.check(); err != nil {
		return err
	}
	chunks, lost := ackChunks(q, msgs)
	if len(chunks) == 0 {
		return errors.Join(lost...)
	}
	// Every message is normally still ours, and one statement per chunk
	// that only counts the rows it deleted settles them all. When a count
	// falls short, the transaction rolls back and the chunks run again,
	// each statement returning the IDs it deleted, to tell which were not.
	precise := false
	deleteAll := func(w *writer) error {
		qid, err := q.rowID(w, false)
		if err != nil {
			return err
		}
		for i := range chunks {
			c := &chunks[i]
			clear(c.deleted)
			if qid == 0 { // no row: none of them is ours
				continue
			}
			if err := c.delete(w, qid, precise); err != nil {
				return err
			}
			if !precise && len(c.deleted) < len(c.msgs) {
				precise = true
				return errAckShort
			}
		}
		return nil
	}
	err := q.db.write(ctx, deleteAll)
	if errors.Is(err, errAckShort) {
		// Rolled back, and run alone: precise is set now.
		err = q.db.write(ctx, deleteAll)
	}
	if err != nil {
		return q.wrap(err, "ack")
	}
	for _, c := range chunks {
		for i, m := range c.msgs {
			if !c.deleted[c.ids[i]] {
				lost = append(lost, q.leaseLost(m))
			}
		}
	}
	return errors.Join(lost...)
}

// errAckShort rolls back an Ack whose statements deleted fewer rows than
// they were given, so that it can run again and learn which rows those were.
var errAckShort = errors.New("sqlite: ack: a message was not deleted")

// ackChunk is up to ackBatch distinct messages of one delivery (one
// receipt), which one statement deletes.
type ackChunk struct {
	r       receipt
	ids     []int64
	msgs    []*queue.Message
	deleted map[int64]bool // set by delete
}

// ackChunks sorts msgs into chunks by receipt, and returns them with an
// error for each message that this queue did not deliver. A message given
// twice lands in two chunks, so that the second copy is reported lost.
func ackChunks(q *Queue, msgs []*queue.Message) (chunks []ackChunk, lost []error) {
	open := make(map[receipt]int, 2) // receipt → index of its chunk that is not full
	for _, m := range msgs {
		id, r, err := q.fence(m)
		if err != nil {
			lost = append(lost, err)
			continue
		}
		i, ok := open[r]
		if ok && (len(chunks[i].ids) == ackBatch || slices.Contains(chunks[i].ids, id)) {
			ok = false
		}
		if !ok {
			i = len(chunks)
			open[r] = i
			chunks = append(chunks, ackChunk{r: r})
		}
		chunks[i].ids = append(chunks[i].ids, id)
		chunks[i].msgs = append(chunks[i].msgs, m)
	}
	for i := range chunks {
		chunks[i].deleted = make(map[int64]bool, len(chunks[i].ids))
	}
	return chunks, lost
}

// delete deletes the chunk's rows that still carry its receipt, and
// records in c.deleted which ones it deleted: exactly, if precise is set;
// otherwise all of them, or fewer entries than messages if any row was
// not deleted.
func (c *ackChunk) delete(w *writer, qid int64, precise bool) error {
	args := make([]any, 2, 2+len(c.ids))
	args[0], args[1] = qid, int64(c.r)
	for _, id := range c.ids {
		args = append(args, id)
	}
	if precise {
		return w.query(sqlAcks[len(c.ids)]+" RETURNING id", args, func(vals []driver.Value) error {
			c.deleted[int64Value(vals[0])] = true
			return nil
		})
	}
	n, _, err := w.exec(sqlAcks[len(c.ids)], args...)
	if err != nil || n < int64(len(c.ids)) {
		return err
	}
	for _, id := range c.ids {
		c.deleted[id] = true
	}
	return nil
}

// Nack gives up m's lease: m becomes ready again after delay (at once for
// zero or less), keeps its attempt count, and m's receipt is no longer
// valid. It fails with an error wrapping queue.ErrLeaseLost, and changes
// nothing, if m's lease has passed on.
func (q *Queue) Nack(ctx context.Context, m *queue.Message, delay time.Duration) error {
	t := now()
	state, readyAt := int64(stateReady), t
	if delay > 0 {
		state, readyAt = stateDelayed, after(t, delay)
	}
	err := q.settle(ctx, m, "nack", sqlNack, state, readyAt)
	if err == nil {
		q.notify() // a waiting Receive takes it, or waits for its delay
	}
	return err
}

// Extend makes m's lease end lease from now, even if it had run out, as
// long as nobody has received m since. It fails with an error wrapping
// queue.ErrLeaseLost, and changes nothing, if m's lease has passed on.
func (q *Queue) Extend(ctx context.Context, m *queue.Message, lease time.Duration) error {
	if lease <= 0 {
		return fmt.Errorf("sqlite: queue %q: Extend(message %s, lease=%v): lease must be positive", q.name, m.ID, lease)
	}
	return q.settle(ctx, m, "extend", sqlExtend, after(now(), lease))
}

// DeadLetter moves m to the queue's dead letters with reason's text (see
// [Queue.Dead]); it is never received again unless redriven. It fails with
// an error wrapping queue.ErrLeaseLost, and changes nothing, if m's lease
// has passed on.
func (q *Queue) DeadLetter(ctx context.Context, m *queue.Message, reason error) error {
	text := "dead-lettered"
	if reason != nil {
		text = reason.Error()
	}
	return q.settle(ctx, m, "dead-letter", sqlDeadLetter, text, now())
}

// settle runs one fenced statement on m: the statement's first three
// parameters are m's row ID, the queue and m's receipt, then args.
func (q *Queue) settle(ctx context.Context, m *queue.Message, op, query string, args ...any) error {
	if err := q.check(); err != nil {
		return err
	}
	id, r, err := q.fence(m)
	if err != nil {
		return err
	}
	var n int64
	err = q.db.write(ctx, func(w *writer) error {
		n = 0
		qid, err := q.rowID(w, false)
		if err != nil || qid == 0 {
			return err
		}
		n, _, err = w.exec(query, append([]any{id, qid, int64(r)}, args...)...)
		if query == sqlNack && n > 0 {
			q.forget() // m may be ready again before where Receive would start
		}
		return err
	})
	if err != nil {
		return q.wrap(err, op+" message "+m.ID)
	}
	if n == 0 {
		return q.leaseLost(m)
	}
	return nil
}

// write runs fn with the writer connection, in a transaction that it may
// share with other writes; see writer. fn may run more than once, so it
// must reset what it reports before it starts.
func (db *DB) write(ctx context.Context, fn func(w *writer) error) error {
	return db.w.do(ctx, fn)
}

// Stats counts the queue's messages in each state.
type Stats struct {
	Ready   int // can be received now (including messages whose lease ran out)
	Leased  int // received, and the lease is not over
	Delayed int // published or nacked with a delay that has not passed
	Dead    int // dead-lettered
}

// Stats counts the queue's messages by state, as of one consistent
// snapshot. It does not block writers.
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	if err := q.check(); err != nil {
		return s, err
	}
	var due int // delayed, and their time has come
	err := q.db.r.QueryRowContext(ctx, `WITH q(id) AS (SELECT id FROM queues WHERE name = ?1) SELECT
		(SELECT count(*) FROM messages, q WHERE queue = q.id AND state = 0 AND lease_until <= ?2),
		(SELECT count(*) FROM messages, q WHERE queue = q.id AND state = 0 AND lease_until > ?2),
		(SELECT count(*) FROM messages, q WHERE queue = q.id AND state = 1 AND ready_at > ?2),
		(SELECT count(*) FROM messages, q WHERE queue = q.id AND state = 1 AND ready_at <= ?2),
		(SELECT count(*) FROM messages, q WHERE queue = q.id AND state = 2)`,
		q.name, now()).Scan(&s.Ready, &s.Leased, &s.Delayed, &due, &s.Dead)
	if err != nil {
		return Stats{}, q.wrap(err, "stats")
	}
	s.Ready += due
	return s, nil
}
