package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/crewgo/crew"
	"github.com/crewgo/crew/queue"
)

// Queue is one named queue of a DB. It is a queue.Source and a
// queue.Publisher, safe for concurrent use.
type Queue struct {
	db   *DB
	name string
}

var (
	_ queue.Source    = (*Queue)(nil)
	_ queue.Publisher = (*Queue)(nil)
)

var errNoName = fmt.Errorf("postgres: the queue name is empty: %w", crew.ErrPermanent)

// receipt is what a message's Receipt holds: the queue that leased it and
// the lease's token. One Receive gives one token to all it leases; with the
// message's ID it names one lease.
type receipt struct {
	q     *Queue
	token int64
}

// Name returns the queue's name.
func (q *Queue) Name() string { return q.name }

func (q *Queue) check() error {
	if q.db.isClosed() {
		return ErrClosed
	}
	if q.name == "" {
		return errNoName
	}
	return nil
}

func (q *Queue) wrap(err error, op string) error {
	return q.db.wrap(err, fmt.Sprintf("queue %q: %s", q.name, op))
}

// micros returns d in whole microseconds, PostgreSQL's resolution,
// rounding up so that a lease or delay never ends early; negative
// durations count as zero.
func micros(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Microsecond - 1) / time.Microsecond)
}

// Publish adds a message with body to the queue and returns its ID, a
// decimal number. It returns once the message is committed: with the
// server's default durability, it then survives a crash of the server.
// Receives waiting for the queue, in every process, wake at once (unless
// the message is delayed). It fails with ctx's error if ctx ends first,
// and then the message may or may not have been added.
func (q *Queue) Publish(ctx context.Context, body []byte, opts ...queue.PublishOption) (string, error) {
	ids, err := q.PublishBatch(ctx, [][]byte{body}, opts...)
	if err != nil {
		return "", err
	}
	return ids[0], nil
}

// PublishBatch adds a message for each of bodies, with the same options,
// in one statement and one commit, and returns their IDs in the order of
// bodies. Either all are added or none is.
func (q *Queue) PublishBatch(ctx context.Context, bodies [][]byte, opts ...queue.PublishOption) ([]string, error) {
	return q.publish(ctx, q.db.pool, bodies, opts)
}

// PublishTx adds a message with body as part of tx, and returns its ID: the
// message exists if and only if tx commits, and no receiver sees it before
// then. Use it to enqueue work in the same transaction as the data it is
// about, so that a rolled-back order never sends its e-mail. Receives
// waiting for the queue wake when tx commits.
//
// tx may come from any connection to the database (pgx.Conn or
// pgxpool.Pool), not only the DB's own. If PublishTx fails, roll tx back:
// after an error from the server, PostgreSQL has aborted it.
func (q *Queue) PublishTx(ctx context.Context, tx pgx.Tx, body []byte, opts ...queue.PublishOption) (string, error) {
	ids, err := q.PublishBatchTx(ctx, tx, [][]byte{body}, opts...)
	if err != nil {
		return "", err
	}
	return ids[0], nil
}

// PublishBatchTx is PublishBatch as part of tx: the messages exist if and
// only if tx commits. See PublishTx.
func (q *Queue) PublishBatchTx(ctx context.Context, tx pgx.Tx, bodies [][]byte, opts ...queue.PublishOption) ([]string, error) {
	if tx == nil {
		return nil, errors.New("postgres: PublishTx: nil transaction")
	}
	return q.publish(ctx, tx, bodies, opts)
}

// sender is what publish needs of a pool, a connection or a transaction.
type sender interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// publish inserts the messages and, unless they are delayed, notifies the
// listeners of the schema, in one round trip. Outside a transaction the
// two statements form one implicit transaction; in tx, PostgreSQL delivers
// the notification only when tx commits.
func (q *Queue) publish(ctx context.Context, s sender, bodies [][]byte, opts []queue.PublishOption) ([]string, error) {
	if err := q.check(); err != nil {
		return nil, err
	}
	if len(bodies) == 0 {
		return nil, nil
	}
	o := queue.NewPublishOptions(opts...)
	var attrs any // SQL NULL when there are none
	if len(o.Attributes) > 0 {
		attrs = o.Attributes
	}
	if slices.ContainsFunc(bodies, func(b []byte) bool { return b == nil }) {
		// The column is NOT NULL, and pgx sends a nil slice as NULL: an
		// absent body is an empty one.
		bodies = slices.Clone(bodies)
		for i, b := range bodies {
			if b == nil {
				bodies[i] = []byte{}
			}
		}
	}
	var batch pgx.Batch
	batch.Queue(q.db.sql.publish, q.name, o.Priority, micros(o.Delay), bodies, attrs)
	if o.Delay <= 0 {
		batch.Queue(q.db.sql.notify, q.db.sql.channel, q.name)
	}
	br := s.SendBatch(ctx, &batch)
	rows, _ := br.Query()
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err == nil && o.Delay <= 0 {
		_, err = br.Exec()
	}
	if err = errors.Join(err, br.Close()); err != nil {
		return nil, q.wrap(err, "publish")
	}
	// One statement takes its IDs from the identity sequence in the order
	// of its rows, so sorted IDs are in the order of bodies.
	slices.Sort(ids)
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = strconv.FormatInt(id, 10)
	}
	return out, nil
}

// Receive waits until at least one message is ready, or ctx ends, and
// leases up to max ready messages for lease, highest priority first, then
// oldest, in one statement. Each delivery counts an attempt and carries a
// new receipt. It returns ctx's error if ctx ends while it waits, and an
// error wrapping ErrClosed if the DB is closed meanwhile.
//
// A waiting Receive wakes at once for a publish, a Nack without delay or a
// Redrive on the queue in any process (PostgreSQL's LISTEN/NOTIFY, on one
// connection per DB), and looks again every PollInterval for messages whose
// delay or lease has run out. A failure to reach the server is returned
// as it is, to be retried: the pool reconnects.
func (q *Queue) Receive(ctx context.Context, n int, lease time.Duration) ([]*queue.Message, error) {
	if err := q.check(); err != nil {
		return nil, err
	}
	n = min(max(n, 1), maxReceive)
	var poll *time.Timer
	for {
		// Watch before looking, so that a publish between the look and
		// the wait still wakes the wait.
		wake := q.db.listen.watch(q.name)
		msgs, err := q.lease(ctx, n, lease)
		if err != nil || len(msgs) > 0 {
			return msgs, err
		}
		if poll == nil {
			poll = time.NewTimer(q.db.opts.pollInterval)
			defer poll.Stop()
		} else {
			poll.Reset(q.db.opts.pollInterval)
		}
		select {
		case <-wake:
		case <-poll.C:
		case <-q.db.closed:
			return nil, ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// maxReceive is the most messages one Receive leases.
const maxReceive = 1000

// lease runs the receive statement once, in one transaction and one round
// trip with receivePlan, which commits it without waiting for the disk and
// makes PostgreSQL walk messages_ready in order. Without that, a table
// filled faster than autovacuum analyses it looks empty to the planner,
// which then sorts every ready message of the queue to take a few.
func (q *Queue) lease(ctx context.Context, n int, lease time.Duration) ([]*queue.Message, error) {
	token := rand.Int64() // a fresh one for every lease
	var batch pgx.Batch
	batch.Queue(q.db.sql.receivePlan)
	batch.Queue(q.db.sql.receive, q.name, n, micros(lease), token)
	br := q.db.pool.SendBatch(ctx, &batch)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return nil, q.leaseFailed(ctx, err)
	}
	rows, _ := br.Query()
	type row struct {
		id, priority int64
		m            *queue.Message
	}
	leased, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		x := row{m: &queue.Message{Receipt: receipt{q: q, token: token}}}
		var first *time.Time // NULL for a message received before the schema recorded it
		err := r.Scan(&x.id, &x.priority, &x.m.Attempt, &x.m.Body, &x.m.Attributes, &first)
		x.m.ID = strconv.FormatInt(x.id, 10)
		if first != nil {
			x.m.FirstReceived = *first
		}
		return x, err
	})
	if err == nil {
		err = br.Close()
	}
	if err != nil {
		return nil, q.leaseFailed(ctx, err)
	}
	// RETURNING follows no order: put the batch in the order it was taken.
	slices.SortFunc(leased, func(a, b row) int {
		return cmp.Or(cmp.Compare(b.priority, a.priority), cmp.Compare(a.id, b.id))
	})
	msgs := make([]*queue.Message, len(leased))
	for i, x := range leased {
		msgs[i] = x.m
	}
	return msgs, nil
}

func (q *Queue) leaseFailed(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return q.wrap(err, "receive")
}

// fence returns the ID and lease token of m, or ErrLeaseLost if m was not
// received from this queue.
func (q *Queue) fence(m *queue.Message) (int64, int64, error) {
	r, ok := m.Receipt.(receipt)
	id, err := strconv.ParseInt(m.ID, 10, 64)
	if !ok || r.q != q || err != nil {
		return 0, 0, &queue.LeaseLostError{ID: m.ID, Err: fmt.Errorf("postgres: queue %q: message %s: not received from this queue: %w", q.name, m.ID, queue.ErrLeaseLost)}
	}
	return id, r.token, nil
}

func (q *Queue) leaseLost(m *queue.Message) error {
	return &queue.LeaseLostError{ID: m.ID, Err: fmt.Errorf("postgres: queue %q: message %s: %w", q.name, m.ID, queue.ErrLeaseLost)}
}

// Ack deletes messages that were handled, in one statement. A message
// whose lease has passed on (it was received again, released with Nack,
// or dead-lettered) is left alone and reported in the error, as a
// *queue.LeaseLostError; the others are still deleted. If the error is of
// another kind, none of them may have been deleted, and the ack can be
// retried.
func (q *Queue) Ack(ctx context.Context, msgs ...*queue.Message) error {
	if err := q.check(); err != nil {
		return err
	}
	var lost []error
	ids := make([]int64, 0, len(msgs))
	tokens := make([]int64, 0, len(msgs))
	sent := make(map[int64]*queue.Message, len(msgs))
	for _, m := range msgs {
		id, token, err := q.fence(m)
		if err != nil {
			lost = append(lost, err)
			continue
		}
		ids = append(ids, id)
		tokens = append(tokens, token)
		sent[id] = m
	}
	if len(ids) > 0 {
		rows, _ := q.db.pool.Query(ctx, q.db.sql.ack, ids, tokens)
		deleted, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return q.wrap(err, "ack")
		}
		for _, id := range deleted {
			delete(sent, id)
		}
		for _, id := range ids { // in the order given
			if m, ok := sent[id]; ok {
				lost = append(lost, q.leaseLost(m))
				delete(sent, id)
			}
		}
	}
	return errors.Join(lost...)
}

// Nack gives up the lease on m: it becomes ready again after delay (at
// once for zero, which wakes waiting Receives in every process) and keeps
// its attempt count. It returns an error wrapping queue.ErrLeaseLost, and
// changes nothing, if m's lease has passed on.
func (q *Queue) Nack(ctx context.Context, m *queue.Message, delay time.Duration) error {
	if delay <= 0 {
		return q.settle(ctx, m, "nack", true, q.db.sql.nack, int64(0))
	}
	return q.settle(ctx, m, "nack", false, q.db.sql.nack, micros(delay))
}

// Extend makes m's lease end lease from now (by the server's clock). It
// returns an error wrapping queue.ErrLeaseLost, and changes nothing, if
// m's lease has passed on.
func (q *Queue) Extend(ctx context.Context, m *queue.Message, lease time.Duration) error {
	return q.settle(ctx, m, "extend", false, q.db.sql.extend, micros(lease))
}

// DeadLetter moves m to the queue's dead letters, with reason's text and
// the time, so that it is not received again unless redriven. It returns
// an error wrapping queue.ErrLeaseLost, and changes nothing, if m's lease
// has passed on.
func (q *Queue) DeadLetter(ctx context.Context, m *queue.Message, reason error) error {
	text := "dead-lettered"
	if reason != nil {
		text = reason.Error()
	}
	return q.settle(ctx, m, "dead-letter", false, q.db.sql.deadLetter, text)
}

// settle runs a statement fenced by m's ID and receipt, with arg as $3,
// and notifies waiting receivers if wake is set and it changed a row.
func (q *Queue) settle(ctx context.Context, m *queue.Message, op string, wake bool, sql string, arg any) error {
	if err := q.check(); err != nil {
		return err
	}
	id, token, err := q.fence(m)
	if err != nil {
		return err
	}
	var batch pgx.Batch
	batch.Queue(sql, id, token, arg)
	if wake {
		// Notifying for nothing is harmless: receivers look and wait again.
		batch.Queue(q.db.sql.notify, q.db.sql.channel, q.name)
	}
	br := q.db.pool.SendBatch(ctx, &batch)
	tag, err := br.Exec()
	if err == nil && wake {
		_, err = br.Exec()
	}
	if err = errors.Join(err, br.Close()); err != nil {
		return q.wrap(err, op)
	}
	if tag.RowsAffected() == 0 {
		return q.leaseLost(m)
	}
	return nil
}

// Stats counts the queue's messages in each state. It is the type every
// crew backend counts with.
type Stats = queue.Depth

// Stats counts the queue's messages by state, as of one snapshot, by the
// server's clock. It reads every message of the queue.
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	if err := q.check(); err != nil {
		return s, err
	}
	err := q.db.pool.QueryRow(ctx, q.db.sql.stats, q.name).Scan(&s.Ready, &s.Leased, &s.Delayed, &s.Dead)
	if err != nil {
		return Stats{}, q.wrap(err, "stats")
	}
	return s, nil
}
