package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

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
	rows, _ := q.db.pool.Query(ctx, q.db.sql.dead, q.name)
	dead, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (DeadMessage, error) {
		var id int64
		var first *time.Time
		d := DeadMessage{Message: &queue.Message{}}
		err := r.Scan(&id, &d.Message.Body, &d.Message.Attributes, &d.Message.Attempt, &d.Reason, &d.At, &first)
		d.Message.ID = strconv.FormatInt(id, 10)
		if first != nil {
			d.Message.FirstReceived = *first
		}
		return d, err
	})
	if err != nil {
		return nil, q.wrap(err, "list dead letters")
	}
	return dead, nil
}

// Redrive puts the dead letters with the given IDs (all of the queue's dead
// letters if none is given) back in the queue, ready at once, with their
// attempts reset to zero, and returns how many it moved. IDs that name no
// dead letter of this queue are skipped; an ID that is not a message ID at
// all is an error, and then nothing is moved. Redrive wakes waiting
// Receives in every process.
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
			return 0, fmt.Errorf("postgres: queue %q: redrive: %q is not a message ID", q.name, s)
		}
		rowIDs[i] = id
	}
	var batch pgx.Batch
	if len(ids) == 0 {
		batch.Queue(q.db.sql.redrive, q.name)
	} else {
		batch.Queue(q.db.sql.redriveIDs, q.name, rowIDs)
	}
	batch.Queue(q.db.sql.notify, q.db.sql.channel, q.name)
	br := q.db.pool.SendBatch(ctx, &batch)
	tag, err := br.Exec()
	if err == nil {
		_, err = br.Exec()
	}
	if err = errors.Join(err, br.Close()); err != nil {
		return 0, q.wrap(err, "redrive")
	}
	return int(tag.RowsAffected()), nil
}

// Purge deletes every dead letter of the queue and returns how many it
// deleted.
func (q *Queue) Purge(ctx context.Context) (int, error) {
	if err := q.check(); err != nil {
		return 0, err
	}
	tag, err := q.db.pool.Exec(ctx, q.db.sql.purge, q.name)
	if err != nil {
		return 0, q.wrap(err, "purge")
	}
	return int(tag.RowsAffected()), nil
}
