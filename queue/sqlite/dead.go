package sqlite

import (
	"context"
	"database/sql/driver"
	"fmt"
	"strconv"
	"time"

	"github.com/crewgo/crew/queue"
)

// DeadMessage is a dead-lettered message, why it was given up and when. It
// is the type every crew backend lists dead letters with.
type DeadMessage = queue.DeadMessage

// Dead returns the queue's dead letters, oldest first.
func (q *Queue) Dead(ctx context.Context) ([]DeadMessage, error) {
	if err := q.check(); err != nil {
		return nil, err
	}
	var out []DeadMessage
	err := q.db.r.read(ctx, func(c *conn) error {
		return c.query(sqlDead, []any{q.name}, func(vals []driver.Value) error {
			if err := ctx.Err(); err != nil {
				return context.Cause(ctx) // a long listing stops when ctx ends
			}
			m := &queue.Message{
				ID:            strconv.FormatInt(int64Value(vals[0]), 10),
				Body:          bytesValue(vals[1]),
				Attributes:    decodeAttributes(bytesValue(vals[2])),
				Attempt:       int(int64Value(vals[3])),
				FirstReceived: receivedAt(int64Value(vals[6])),
			}
			if m.Body == nil {
				m.Body = []byte{}
			}
			reason, _ := vals[4].(string)
			out = append(out, DeadMessage{Message: m, Reason: reason, At: time.UnixMilli(int64Value(vals[5]))})
			return nil
		})
	})
	if err != nil {
		return nil, q.wrap(err, "list dead letters")
	}
	return out, nil
}

// Redrive puts the dead letters with the given IDs (all of the queue's dead
// letters if none is given) back in the queue, ready at once, with their
// attempts reset to zero, and returns how many it moved. IDs that name no
// dead letter of this queue are skipped; an ID that is not a message ID at
// all is an error, and then nothing is moved. Redrive wakes this DB's
// waiting Receives.
//
// A redriven message keeps its ID and priority, so among ready messages of
// its priority it comes before those published after it.
func (q *Queue) Redrive(ctx context.Context, ids ...string) (int, error) {
	if err := q.check(); err != nil {
		return 0, err
	}
	rowIDs := make([]int64, len(ids))
	for i, s := range ids {
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("sqlite: queue %q: redrive: %q is not a message ID", q.name, s)
		}
		rowIDs[i] = id
	}
	var moved int64
	err := q.db.write(ctx, func(w *writer) error {
		qid, err := q.rowID(w, false)
		if err != nil || qid == 0 {
			return err
		}
		if len(rowIDs) == 0 {
			moved, err = redrive(w, "", qid)
			return err
		}
		for _, id := range rowIDs {
			n, err := redrive(w, sqlOneID, qid, id)
			if err != nil {
				return err
			}
			moved += n
		}
		return nil
	})
	if err != nil {
		return 0, q.wrap(err, "redrive")
	}
	if moved > 0 {
		q.notify()
	}
	return int(moved), nil
}

// redrive moves the queue's dead letters, those that cond (with ?2 in
// args) selects, to ready, and returns how many it moved.
func redrive(w *writer, cond string, args ...any) (int64, error) {
	n, err := w.exec(sqlRedrive+cond, args...)
	if err == nil && n > 0 {
		_, err = w.exec(sqlRedriven+cond, args...)
	}
	return n, err
}

// Purge deletes every dead letter of the queue and returns how many it
// deleted.
func (q *Queue) Purge(ctx context.Context) (int, error) {
	if err := q.check(); err != nil {
		return 0, err
	}
	var n int64
	err := q.db.write(ctx, func(w *writer) error {
		qid, err := q.rowID(w, false)
		if err != nil || qid == 0 {
			return err
		}
		n, err = w.exec(sqlPurge, qid)
		return err
	})
	if err != nil {
		return 0, q.wrap(err, "purge")
	}
	return int(n), nil
}

// Stats counts the queue's messages in each state. It is the type every
// crew backend counts with.
type Stats = queue.Depth

// Stats counts the queue's messages by state, as of one consistent
// snapshot. It does not block writers.
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	if err := q.check(); err != nil {
		return Stats{}, err
	}
	var s Stats
	err := q.db.r.read(ctx, func(c *conn) error {
		return c.query(sqlStats, []any{now(), q.name}, func(vals []driver.Value) error {
			n := make([]int, len(vals))
			for i, v := range vals {
				n[i] = int(int64Value(v))
			}
			// Ready and leased rows, delayed ones, delayed ones whose
			// time has come (and rows of a version 1 process: see
			// sqlDue), rows such a process holds leased, dead letters.
			s = Stats{Ready: n[0] + n[3], Leased: n[1] + n[4], Delayed: n[2], Dead: n[5]}
			return errStop
		})
	})
	if err != nil {
		return Stats{}, q.wrap(err, "stats")
	}
	return s, nil
}
