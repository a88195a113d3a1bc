package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
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
// closed, and with ctx's error if ctx ends before the database answers; such
// a failure changes nothing.
type Queue struct {
	db   *DB
	name string

	mu      sync.Mutex
	changed chan struct{} // closed when a message may have become ready; nil when nobody waits
}

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
	state, visible := stateReady, t
	if o.Delay > 0 {
		state, visible = stateDelayed, t+o.Delay.Milliseconds()
		if o.Delay%time.Millisecond != 0 {
			visible++ // never earlier than asked
		}
	}
	ids := make([]string, len(bodies))
	err := q.db.write(ctx, func(tx *sql.Tx) error {
		st := tx.StmtContext(ctx, q.db.st.publish)
		for i, body := range bodies {
			if body == nil {
				body = []byte{}
			}
			res, err := st.ExecContext(ctx, q.name, state, o.Priority, visible, body, attrs, t)
			if err != nil {
				return err
			}
			id, err := res.LastInsertId()
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
	q.notify()
	return ids, nil
}

// Receive waits until at least one message is ready, then leases up to max
// ready messages for lease, in one transaction, and returns them: highest
// priority first, then oldest. Each delivery counts as an attempt and gets a
// new receipt, which fences off every earlier holder of the message.
//
// While nothing is ready, Receive waits for a publish or Nack through this
// DB (which wakes it at once), for the next leased or delayed message to
// become ready, or for PollInterval to pass, whichever comes first, and
// looks again. It returns ctx's cause (and no messages) if ctx ends while it
// waits, an error wrapping ErrClosed if the DB is closed, and an error
// naming the bad argument if max < 1 or lease <= 0. Messages whose lease
// was committed are returned even if ctx ends meanwhile.
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

// lease promotes what has become ready and leases up to max ready messages,
// in one transaction. If there are none, it returns when the next leased or
// delayed message becomes ready (Unix milliseconds), or 0 if none will.
func (q *Queue) lease(ctx context.Context, max int, lease time.Duration) (msgs []*queue.Message, next int64, err error) {
	t := now()
	r := receipt(rand.Int64())
	leaseEnd := t + lease.Milliseconds()
	if lease%time.Millisecond != 0 {
		leaseEnd++
	}
	type row struct {
		m        *queue.Message
		priority int
		id       int64
	}
	var rows []row
	err = q.db.write(ctx, func(tx *sql.Tx) error {
		rows = rows[:0]
		if _, err := tx.StmtContext(ctx, q.db.st.promote).ExecContext(ctx, q.name, t); err != nil {
			return err
		}
		rs, err := tx.StmtContext(ctx, q.db.st.lease).QueryContext(ctx, q.name, max, int64(r), leaseEnd)
		if err != nil {
			return err
		}
		defer rs.Close()
		for rs.Next() {
			var (
				rw    row
				attrs sql.NullString
				m     = &queue.Message{Receipt: r}
			)
			if err := rs.Scan(&rw.id, &rw.priority, &m.Attempt, &m.Body, &attrs); err != nil {
				return err
			}
			if attrs.Valid {
				if err := json.Unmarshal([]byte(attrs.String), &m.Attributes); err != nil {
					return fmt.Errorf("message %d: decode the attributes: %w", rw.id, err)
				}
			}
			m.ID = strconv.FormatInt(rw.id, 10)
			rw.m = m
			rows = append(rows, rw)
		}
		if err := rs.Err(); err != nil {
			return err
		}
		if len(rows) > 0 {
			return nil
		}
		var nv sql.NullInt64
		if err := tx.StmtContext(ctx, q.db.st.nextVisible).QueryRowContext(ctx, q.name).Scan(&nv); err != nil {
			return err
		}
		next = nv.Int64
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	slices.SortFunc(rows, func(a, b row) int {
		if c := cmp.Compare(b.priority, a.priority); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	msgs = make([]*queue.Message, len(rows))
	for i, rw := range rows {
		msgs[i] = rw.m
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
	var lost []error
	err := q.db.write(ctx, func(tx *sql.Tx) error {
		lost = lost[:0]
		st := tx.StmtContext(ctx, q.db.st.ack)
		for _, m := range msgs {
			id, r, err := q.fence(m)
			if err != nil {
				lost = append(lost, err)
				continue
			}
			n, err := execCount(ctx, st, id, q.name, int64(r))
			if err != nil {
				return fmt.Errorf("message %s: %w", m.ID, err)
			}
			if n == 0 {
				lost = append(lost, q.leaseLost(m))
			}
		}
		return nil
	})
	if err != nil {
		return q.wrap(err, "ack")
	}
	return errors.Join(lost...)
}

// Nack gives up m's lease: m becomes ready again after delay (at once for
// zero or less), keeps its attempt count, and m's receipt is no longer
// valid. It fails with an error wrapping queue.ErrLeaseLost, and changes
// nothing, if m's lease has passed on.
func (q *Queue) Nack(ctx context.Context, m *queue.Message, delay time.Duration) error {
	state, visible := stateReady, now()
	if delay > 0 {
		state = stateDelayed
		visible += delay.Milliseconds()
		if delay%time.Millisecond != 0 {
			visible++
		}
	}
	err := q.settle(ctx, m, "nack", q.db.st.nack, state, visible)
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
	end := now() + lease.Milliseconds()
	if lease%time.Millisecond != 0 {
		end++
	}
	return q.settle(ctx, m, "extend", q.db.st.extend, end)
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
	return q.settle(ctx, m, "dead-letter", q.db.st.deadLetter, text, now())
}

// settle runs one fenced statement on m: the statement's first three
// parameters are m's row ID, the queue and m's receipt, then args.
func (q *Queue) settle(ctx context.Context, m *queue.Message, op string, st *sql.Stmt, args ...any) error {
	if err := q.check(); err != nil {
		return err
	}
	id, r, err := q.fence(m)
	if err != nil {
		return err
	}
	var n int64
	err = q.db.write(ctx, func(tx *sql.Tx) error {
		var err error
		n, err = execCount(ctx, tx.StmtContext(ctx, st), append([]any{id, q.name, int64(r)}, args...)...)
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

func execCount(ctx context.Context, st *sql.Stmt, args ...any) (int64, error) {
	res, err := st.ExecContext(ctx, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// write runs fn in a write transaction (BEGIN IMMEDIATE, so that it never
// has to upgrade a read lock, which could fail with SQLITE_BUSY whatever
// the busy timeout) and commits it if fn returns nil.
func (db *DB) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
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
	var due int // leased or delayed, and their time has come
	err := q.db.r.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM messages WHERE queue = ?1 AND state = 0),
		(SELECT count(*) FROM messages WHERE queue = ?1 AND state = 1 AND visible_at > ?2),
		(SELECT count(*) FROM messages WHERE queue = ?1 AND state = 2 AND visible_at > ?2),
		(SELECT count(*) FROM messages WHERE queue = ?1 AND state IN (1, 2) AND visible_at <= ?2),
		(SELECT count(*) FROM messages WHERE queue = ?1 AND state = 3)`,
		q.name, now()).Scan(&s.Ready, &s.Leased, &s.Delayed, &due, &s.Dead)
	if err != nil {
		return Stats{}, q.wrap(err, "stats")
	}
	s.Ready += due
	return s, nil
}
