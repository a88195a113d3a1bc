package sqlite

import (
	"cmp"
	"context"
	"database/sql"
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
	lanes      []lane   // the queue's lanes, highest priority first
	seen       snapshot // when lanes was last known to be complete
	from       position // where the next Receive may start looking
}

// snapshot is a state of the file as this DB's writer saw it.
type snapshot struct {
	valid       bool
	rollbacks   uint64 // the writer's rollbacks (see writer.rollbacks)
	dataVersion int64  // the file's data version (see writer.dataVersion)
}

// position is a place in the order in which Receive takes messages: a
// priority, and an ID of that priority's lane. While it is valid, no
// message before it is ready except one whose lease has run out since:
// Receive finds those by scanning from the start at least every
// promoteEvery, and whenever nothing after the position is ready. It is
// forgotten by every write of this process that may make an earlier
// message ready (a Nack, a Redrive, a Publish of a higher priority), and
// when the lanes are reloaded because of a rollback or another
// connection's commit. A Receive that starts from it skips the messages
// that this process holds leased, which otherwise lead their lane and
// would be read again by every Receive: with a hundred handlers, that
// costs more than the lease itself.
type position struct {
	valid    bool
	priority int64
	id       int64
}

// refresh reloads the queue's lanes, and forgets the position, unless
// nothing has changed them since they were loaded: no rollback of this
// DB's writer and no commit by another connection. It runs with the
// writer, in the Receive's transaction.
func (q *Queue) refresh(w *writer, qid int64) error {
	v, err := w.dataVersion()
	if err != nil {
		return err
	}
	now := snapshot{valid: true, rollbacks: w.rollbacks, dataVersion: v}
	if q.seen == now {
		return nil
	}
	q.forget()
	q.seen = snapshot{}
	q.lanes = q.lanes[:0]
	err = w.query(sqlLanes, []any{qid}, func(vals []driver.Value) error {
		q.lanes = append(q.lanes, newLane(int64Value(vals[0]), int64Value(vals[1])))
		return nil
	})
	if err == nil {
		q.seen = now
	}
	return err
}

// lane returns the queue's lane of priority, creating it if it has none.
// It runs with the writer.
func (q *Queue) lane(w *writer, qid, priority int64) (lane, error) {
	current := q.seen.valid && q.seen.rollbacks == w.rollbacks
	if current {
		for _, l := range q.lanes {
			if l.priority == priority {
				return l, nil
			}
		}
	}
	l, err := createLane(w, qid, priority)
	if err != nil {
		return lane{}, err
	}
	if current {
		// The lane exists now, committed or in this transaction; if this
		// one rolls back, so does the knowledge of it (see refresh).
		i, _ := slices.BinarySearchFunc(q.lanes, priority, func(l lane, p int64) int { return cmp.Compare(p, l.priority) })
		q.lanes = slices.Insert(q.lanes, i, l)
	}
	return l, nil
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

// receipt identifies one delivery: the lane and the queue that it came
// from, and a token. The token is random, so that a holder from an earlier
// delivery (in any process) cannot settle a later one.
type receipt struct {
	token int64
	lane  lane
	queue int64 // the queue's row ID
}

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
	priority := int64(o.Priority)
	ids := make([]string, len(bodies))
	var qid int64
	err := q.db.write(ctx, func(w *writer) error {
		var err error
		if qid, err = q.rowID(w, true); err != nil {
			return err
		}
		var last int64
		err = w.query(sqlNextIDs, []any{int64(len(bodies))}, func(vals []driver.Value) error {
			last = int64Value(vals[0])
			return nil
		})
		if err == nil && last == 0 {
			err = errors.New("the file has no ID counter for messages (its sqlite_sequence row is missing)")
		}
		if err != nil {
			return err
		}
		id := last - int64(len(bodies))
		insert := func(body []byte) error {
			_, _, err := w.exec(sqlPublishDelayed, qid, id, priority, after(t, o.Delay), body, attrs, t)
			return err
		}
		if o.Delay <= 0 {
			l, err := q.lane(w, qid, priority)
			if err != nil {
				return err
			}
			if priority > q.from.priority {
				q.forget() // they go before where Receive would start
			}
			query := l.sql(sqlPublishReady)
			insert = func(body []byte) error {
				_, _, err := w.exec(query, id, body, attrs, t)
				return err
			}
		}
		for i, body := range bodies {
			if body == nil {
				body = []byte{}
			}
			id++
			if err := insert(body); err != nil {
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
	lane         lane
	id, attempts int64
	body, attrs  []byte
}

// find appends to rows up to limit ready messages, in the order Receive
// takes them, from the start of the queue or after p.
func (q *Queue) find(w *writer, rows []leased, limit int, t int64, p *position) ([]leased, error) {
	for _, l := range q.lanes {
		if len(rows) == limit {
			break
		}
		if p != nil && l.priority > p.priority {
			continue
		}
		query, args := sqlLease(limit-len(rows), false), []any{t}
		if p != nil && l.priority == p.priority {
			query, args = sqlLease(limit-len(rows), true), []any{t, p.id}
		}
		err := w.query(l.sql(query), args, func(vals []driver.Value) error {
			rows = append(rows, leased{
				lane:     l,
				id:       int64Value(vals[0]),
				attempts: int64Value(vals[1]) + 1,
				body:     bytesValue(vals[2]),
				attrs:    bytesValue(vals[3]),
			})
			return nil
		})
		if err != nil {
			return rows, err
		}
	}
	return rows, nil
}

// markLeased leases the rows until leaseEnd with token, counting one more
// attempt, lane by lane, in statements of up to leaseChunk rows.
func markLeased(w *writer, rows []leased, token, leaseEnd int64) error {
	args := make([]any, 0, 2+leaseChunk)
	for len(rows) > 0 {
		n := 1
		for n < len(rows) && n < leaseChunk && rows[n].lane == rows[0].lane {
			n++
		}
		args = append(args[:0], leaseEnd, token)
		for _, rw := range rows[:n] {
			args = append(args, rw.id)
		}
		changed, _, err := w.exec(rows[0].lane.sql(sqlMarkLeased[n]), args...)
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
// messages whose time has come, and for leases that ran out before its
// position. An idle one looks before every wait.
var promoteEvery = 10 * time.Millisecond // a variable for tests

// promote moves the delayed messages whose time has come to their lanes.
func (q *Queue) promote(w *writer, qid, t int64) error {
	q.promotedAt = t
	_, err := q.toLanes(w, sqlDuePriorities, sqlPromote, sqlPromoted, qid, t)
	return err
}

// toLanes moves rows of the messages table to their lanes, and returns how
// many it moved. priorities lists the priorities of the rows to move,
// insert moves those of the priority ?3 to its lane, and remove deletes
// them all from messages; ?1 is the queue's row ID and ?2, if given, the
// same in all three.
func (q *Queue) toLanes(w *writer, priorities, insert, remove string, qid int64, arg2 ...any) (int64, error) {
	args := append([]any{qid}, arg2...)
	var ps []int64
	err := w.query(priorities, args, func(vals []driver.Value) error {
		ps = append(ps, int64Value(vals[0]))
		return nil
	})
	if err != nil || len(ps) == 0 {
		return 0, err
	}
	second := any(nil) // ?2, which insert may not use
	if len(arg2) > 0 {
		second = arg2[0]
	}
	var moved int64
	for _, p := range ps {
		l, err := q.lane(w, qid, p)
		if err != nil {
			return 0, err
		}
		n, _, err := w.exec(l.sql(insert), qid, second, p)
		if err != nil {
			return 0, err
		}
		moved += n
	}
	q.forget() // they may go before where Receive would start
	_, _, err = w.exec(remove, args...)
	return moved, err
}

// lease leases up to max ready messages. Before that, at most every
// promoteEvery and always when nothing is ready, it makes ready the delayed
// messages whose time has come: a statement that would otherwise add a
// third to the cost of a busy Receive. If nothing is ready, lease returns
// when the next delayed message becomes ready or lease ends (Unix
// milliseconds), or 0 if nothing will.
func (q *Queue) lease(ctx context.Context, max int, lease time.Duration) (msgs []*queue.Message, next int64, err error) {
	token := rand.Int64()
	var rows []leased
	var qid int64
	err = q.db.write(ctx, func(w *writer) error {
		rows, next = rows[:0], 0
		var err error
		if qid, err = q.rowID(w, false); err != nil || qid == 0 {
			return err // no row: nothing was ever published
		}
		if err := q.refresh(w, qid); err != nil {
			return err
		}
		t := now()
		promoted := false
		if t-q.promotedAt >= promoteEvery.Milliseconds() || t < q.promotedAt {
			if err := q.promote(w, qid, t); err != nil {
				return err
			}
			promoted = true
		}
		limit := min(max, maxReceive)
		if p := q.from; p.valid && !promoted {
			if rows, err = q.find(w, rows, limit, t, &p); err != nil {
				return err
			}
		}
		for len(rows) == 0 {
			if rows, err = q.find(w, rows, limit, t, nil); err != nil {
				return err
			}
			if len(rows) > 0 || promoted {
				break
			}
			if err := q.promote(w, qid, t); err != nil {
				return err
			}
			promoted = true
		}
		if len(rows) > 0 {
			last := rows[len(rows)-1]
			q.from = position{valid: true, priority: last.lane.priority, id: last.id}
			return markLeased(w, rows, token, after(t, lease))
		}
		return q.nextDue(w, qid, t, &next)
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
			Receipt:    receipt{token: token, lane: rw.lane, queue: qid},
		}
		if m.Body == nil {
			m.Body = []byte{}
		}
		msgs[i] = m
	}
	return msgs, next, nil
}

// nextDue sets next to when the next delayed message of the queue becomes
// ready or the next of its leases ends, whichever is first, or to 0 if
// neither will.
func (q *Queue) nextDue(w *writer, qid, t int64, next *int64) error {
	earliest := func(vals []driver.Value) error {
		if d := int64Value(vals[0]); d > 0 && (*next == 0 || d < *next) {
			*next = d
		}
		return nil
	}
	if err := w.query(sqlNextDelayed, []any{qid}, earliest); err != nil {
		return err
	}
	for _, l := range q.lanes {
		if err := w.query(l.sql(sqlNextLeaseEnd), []any{t}, earliest); err != nil {
			return err
		}
	}
	return nil
}

// fence returns the key of m's current delivery: its row ID and receipt. A
// message that this queue did not deliver has none, and settling it fails
// with queue.ErrLeaseLost. (Whether the receipt is of this queue is known
// only with the writer: see ours.)
func (q *Queue) fence(m *queue.Message) (id int64, r receipt, err error) {
	r, ok := m.Receipt.(receipt)
	id, perr := strconv.ParseInt(m.ID, 10, 64)
	if !ok || perr != nil {
		return 0, receipt{}, fmt.Errorf("sqlite: queue %q: message %s was not received from this queue: %w", q.name, m.ID, queue.ErrLeaseLost)
	}
	return id, r, nil
}

// ours reports whether r is a receipt of this queue, whose row ID is qid
// (0 if it has none). It runs with the writer.
func (r receipt) ours(qid int64) bool { return qid != 0 && r.queue == qid }

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
			if !c.r.ours(qid) {
				continue
			}
			if err := c.delete(w, precise); err != nil {
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
func (c *ackChunk) delete(w *writer, precise bool) error {
	args := make([]any, 1, 1+len(c.ids))
	args[0] = c.r.token
	for _, id := range c.ids {
		args = append(args, id)
	}
	query := c.r.lane.sql(sqlAcks[len(c.ids)])
	if precise {
		return w.query(query+" RETURNING id", args, func(vals []driver.Value) error {
			c.deleted[int64Value(vals[0])] = true
			return nil
		})
	}
	n, _, err := w.exec(query, args...)
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
	err := q.settle(ctx, m, "nack", func(w *writer, id int64, r receipt) (bool, error) {
		if delay > 0 {
			return q.setAside(w, id, r, stateDelayed, after(t, delay), nil)
		}
		n, _, err := w.exec(r.lane.sql(sqlRelease), id, r.token)
		if n > 0 && r.lane.priority >= q.from.priority {
			q.forget() // m is ready again, perhaps before where Receive would start
		}
		return n > 0, err
	})
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
	end := after(now(), lease)
	return q.settle(ctx, m, "extend", func(w *writer, id int64, r receipt) (bool, error) {
		n, _, err := w.exec(r.lane.sql(sqlExtend), id, r.token, end)
		return n > 0, err
	})
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
	t := now()
	return q.settle(ctx, m, "dead-letter", func(w *writer, id int64, r receipt) (bool, error) {
		return q.setAside(w, id, r, stateDead, t, text)
	})
}

// setAside moves message id, if it still carries r, from its lane to the
// messages table, in state with readyAt and reason (see the schema), and
// reports whether it did.
func (q *Queue) setAside(w *writer, id int64, r receipt, state, readyAt int64, reason any) (bool, error) {
	n, _, err := w.exec(r.lane.sql(sqlSetAside), id, r.token, r.queue, r.lane.priority, state, readyAt, reason)
	if err != nil || n == 0 {
		return false, err
	}
	_, _, err = w.exec(r.lane.sql(sqlLeaveLane), id)
	return true, err
}

// settle runs op on m with the writer, given m's row ID and receipt once
// they are known to be of this queue; op reports whether m still carried
// the receipt, and so was settled.
func (q *Queue) settle(ctx context.Context, m *queue.Message, name string, op func(w *writer, id int64, r receipt) (bool, error)) error {
	if err := q.check(); err != nil {
		return err
	}
	id, r, err := q.fence(m)
	if err != nil {
		return err
	}
	var settled bool
	err = q.db.write(ctx, func(w *writer) error {
		settled = false
		qid, err := q.rowID(w, false)
		if err != nil || !r.ours(qid) {
			return err
		}
		settled, err = op(w, id, r)
		return err
	})
	if err != nil {
		return q.wrap(err, name+" message "+m.ID)
	}
	if !settled {
		return q.leaseLost(m)
	}
	return nil
}

// read runs fn in a read transaction, which sees one snapshot of the file
// and does not block writers.
func (db *DB) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback() // it only read
	return fn(tx)
}

// readLanes returns the lanes of the queue whose row ID is qid.
func readLanes(ctx context.Context, tx *sql.Tx, qid int64) ([]lane, error) {
	rows, err := tx.QueryContext(ctx, sqlLanes, qid)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var lanes []lane
	for rows.Next() {
		var id, priority int64
		if err := rows.Scan(&id, &priority); err != nil {
			return nil, err
		}
		lanes = append(lanes, newLane(id, priority))
	}
	return lanes, rows.Err()
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
	t := now()
	err := q.db.read(ctx, func(tx *sql.Tx) error {
		var qid int64
		err := tx.QueryRowContext(ctx, sqlQueueID, q.name).Scan(&qid)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // it has never held a message
		}
		if err != nil {
			return err
		}
		lanes, err := readLanes(ctx, tx, qid)
		if err != nil {
			return err
		}
		for _, l := range lanes {
			var ready, leased int
			err := tx.QueryRowContext(ctx, l.sql(`SELECT count(*) FILTER (WHERE lease_until <= ?1), count(*) FILTER (WHERE lease_until > ?1) FROM {lane}`), t).Scan(&ready, &leased)
			if err != nil {
				return err
			}
			s.Ready += ready
			s.Leased += leased
		}
		// State 0: see sqlDuePriorities.
		var ready, leased int
		err = tx.QueryRowContext(ctx, `SELECT
			(SELECT count(*) FROM messages WHERE queue = ?1 AND state = 1 AND ready_at > ?2),
			(SELECT count(*) FROM messages WHERE queue = ?1 AND state = 1 AND ready_at <= ?2),
			(SELECT count(*) FROM messages WHERE queue = ?1 AND state = 2),
			(SELECT count(*) FROM messages WHERE queue = ?1 AND state = 0 AND lease_until <= ?2),
			(SELECT count(*) FROM messages WHERE queue = ?1 AND state = 0 AND lease_until > ?2)`,
			qid, t).Scan(&s.Delayed, &due, &s.Dead, &ready, &leased)
		s.Ready += ready
		s.Leased += leased
		return err
	})
	if err != nil {
		return Stats{}, q.wrap(err, "stats")
	}
	s.Ready += due
	return s, nil
}
