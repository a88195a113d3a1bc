package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"time"

	"github.com/crewgo/crew/queue"
)

// DeadMessage is a dead-lettered message, why it was given up and when.
type DeadMessage struct {
	// Message is the message as it was last delivered: its ID, body,
	// attributes and attempt count. Its Receipt is nil.
	Message *queue.Message
	Reason  string    // the text of the error given to DeadLetter
	At      time.Time // when it was dead-lettered
}

// Dead returns the queue's dead letters, oldest first.
func (q *Queue) Dead(ctx context.Context) ([]DeadMessage, error) {
	if err := q.check(); err != nil {
		return nil, err
	}
	rows, err := q.db.r.QueryContext(ctx, `
		SELECT m.id, body, attributes, attempts, dead_reason, ready_at FROM messages m, queues q
		WHERE q.name = ?1 AND m.queue = q.id AND state = 2 ORDER BY ready_at, m.id`, q.name)
	if err != nil {
		return nil, q.wrap(err, "list dead letters")
	}
	defer rows.Close()
	var out []DeadMessage
	for rows.Next() {
		var (
			id     int64
			attrs  sql.NullString
			reason sql.NullString
			at     int64
			m      = &queue.Message{}
		)
		if err := rows.Scan(&id, &m.Body, &attrs, &m.Attempt, &reason, &at); err != nil {
			return nil, q.wrap(err, "list dead letters")
		}
		m.ID = strconv.FormatInt(id, 10)
		if attrs.Valid {
			m.Attributes = decodeAttributes([]byte(attrs.String))
		}
		out = append(out, DeadMessage{Message: m, Reason: reason.String, At: time.UnixMilli(at)})
	}
	if err := rows.Err(); err != nil {
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
		moved = 0
		qid, err := q.rowID(w, false)
		if err != nil || qid == 0 {
			return err
		}
		if len(rowIDs) == 0 {
			n, err := q.toLanes(w, sqlDeadPriorities, sqlRedrive, sqlRedriven, qid)
			moved = n
			return err
		}
		for _, id := range rowIDs {
			n, err := q.toLanes(w, sqlDeadPriorities+sqlOneID, sqlRedrive+sqlOneID, sqlRedriven+sqlOneID, qid, id)
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

// Purge deletes every dead letter of the queue and returns how many it
// deleted.
func (q *Queue) Purge(ctx context.Context) (int, error) {
	if err := q.check(); err != nil {
		return 0, err
	}
	var n int64
	err := q.db.write(ctx, func(w *writer) error {
		n = 0
		qid, err := q.rowID(w, false)
		if err != nil || qid == 0 {
			return err
		}
		n, _, err = w.exec(sqlPurge, qid)
		return err
	})
	if err != nil {
		return 0, q.wrap(err, "purge")
	}
	return int(n), nil
}
