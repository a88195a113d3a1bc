package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/crewgo/crew/queue"
)

// DeadLetter moves m to the queue's dead letters: it publishes a copy to
// the dead-letter subject, with reason and m's attempts as headers, then
// terminates m, each confirmed by the server. A process that dies between
// the two leaves m in the queue, to be delivered and dead-lettered again;
// the copy's Nats-Msg-Id makes the server drop the second copy within the
// stream's duplicate window.
func (q *Queue) DeadLetter(ctx context.Context, m *queue.Message, reason error) error {
	r, err := q.current(m)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(q.dead)
	msg.Data = m.Body
	for k, v := range m.Attributes {
		msg.Header.Set(k, v)
	}
	why := "dead-lettered"
	if reason != nil {
		why = reason.Error()
	}
	msg.Header.Set(hdrID, m.ID)
	msg.Header.Set(hdrReason, strings.NewReplacer("\r", " ", "\n", " ").Replace(why))
	msg.Header.Set(hdrAttempts, strconv.Itoa(m.Attempt))
	dedup := natsjs.WithMsgID("crew-dead-" + strconv.FormatUint(r.seq, 10) + "-" + strconv.Itoa(m.Attempt))
	if _, err := q.js.PublishMsg(ctx, msg, dedup); err != nil {
		return fmt.Errorf("jetstream: dead-letter %s: %w", m.ID, err)
	}
	if err := q.request(ctx, r, []byte("+TERM")); err != nil {
		return fmt.Errorf("jetstream: dead-letter %s: terminate: %w", m.ID, err)
	}
	q.settle(r)
	return nil
}

// DeadMessage is one dead letter: the message as it was last delivered,
// why it was given up, and when. It is the type every crew backend lists
// dead letters with.
type DeadMessage = queue.DeadMessage

// Dead lists the queue's dead letters, oldest first. It reads them one by
// one from the stream, so it is meant for the few that an operator looks
// at.
func (q *Queue) Dead(ctx context.Context) ([]DeadMessage, error) {
	entries, err := q.deadLetters(ctx)
	out := make([]DeadMessage, len(entries))
	for i, e := range entries {
		out[i] = e.DeadMessage
	}
	return out, err
}

// deadEntry is a dead letter and its sequence number in the stream.
type deadEntry struct {
	DeadMessage
	seq uint64
}

// deadLetters reads the queue's dead letters, oldest first.
func (q *Queue) deadLetters(ctx context.Context) ([]deadEntry, error) {
	var out []deadEntry
	for seq := uint64(1); ; {
		raw, err := q.stream.GetMsg(ctx, seq, natsjs.WithGetMsgSubject(q.dead))
		if errors.Is(err, natsjs.ErrMsgNotFound) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("jetstream: queue %s: dead letters: %w", q.name, err)
		}
		attempt, _ := strconv.Atoi(raw.Header.Get(hdrAttempts))
		out = append(out, deadEntry{DeadMessage{
			Message: &queue.Message{ID: raw.Header.Get(hdrID), Body: raw.Data, Attributes: attributes(raw.Header), Attempt: attempt},
			Reason:  raw.Header.Get(hdrReason),
			At:      raw.Time,
		}, raw.Sequence})
		seq = raw.Sequence + 1
	}
}

// Redrive publishes the named dead letters (all of them if ids is empty)
// to the queue again, keeping their IDs and attributes, with a fresh
// attempt count, and deletes them from the dead letters. It returns how
// many it moved. An ID that names no dead letter is ignored.
func (q *Queue) Redrive(ctx context.Context, ids ...string) (int, error) {
	dead, err := q.deadLetters(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range dead {
		if len(ids) > 0 && !slices.Contains(ids, d.Message.ID) {
			continue
		}
		msg := nats.NewMsg(q.subject)
		msg.Data = d.Message.Body
		for k, v := range d.Message.Attributes {
			msg.Header.Set(k, v)
		}
		msg.Header.Set(hdrID, d.Message.ID)
		// A Redrive cut short after the publish and run again publishes the
		// message once.
		dedup := natsjs.WithMsgID("crew-redrive-" + strconv.FormatUint(d.seq, 10))
		if _, err := q.js.PublishMsg(ctx, msg, dedup); err != nil {
			return n, fmt.Errorf("jetstream: redrive %s: %w", d.Message.ID, err)
		}
		if err := q.stream.DeleteMsg(ctx, d.seq); err != nil && !errors.Is(err, natsjs.ErrMsgNotFound) {
			return n, fmt.Errorf("jetstream: redrive %s: %w", d.Message.ID, err)
		}
		n++
	}
	return n, nil
}

// Purge deletes every dead letter of the queue and returns how many it
// deleted.
func (q *Queue) Purge(ctx context.Context) (int, error) {
	// nats.go's Stream.Purge does not say how many it purged; the API does.
	req, _ := json.Marshal(struct {
		Filter string `json:"filter"`
	}{q.dead})
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	name := q.stream.CachedInfo().Config.Name
	reply, err := q.nc.RequestWithContext(ctx, apiPrefix(q.js)+"STREAM.PURGE."+name, req)
	if err != nil {
		return 0, fmt.Errorf("jetstream: queue %s: purge: %w", q.name, err)
	}
	var resp struct {
		Purged uint64 `json:"purged"`
		Error  *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return 0, fmt.Errorf("jetstream: queue %s: purge: %w", q.name, err)
	}
	if resp.Error != nil {
		return 0, fmt.Errorf("jetstream: queue %s: purge: %s", q.name, resp.Error.Description)
	}
	return int(resp.Purged), nil
}

// Stats counts a queue's messages by state: Ready counts the messages that
// the consumer has not delivered yet; Leased the messages delivered and not
// yet acknowledged, including those waiting out a retry delay (JetStream
// keeps both as pending acknowledgements); Delayed the messages published
// with a delay that the server has not yet published to the queue; Dead the
// dead letters. It is the type every crew backend counts with.
type Stats = queue.Depth

// Stats counts the queue's messages, from the consumer's and the stream's
// state. The server updates its consumer's counts a moment after it has
// confirmed a publish or an acknowledgement, so counts read right after one
// can trail it; Delayed and Dead, read from the stream, do not.
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	info, err := q.cons.Info(ctx)
	if err != nil {
		return Stats{}, fmt.Errorf("jetstream: queue %s: stats: %w", q.name, err)
	}
	s := Stats{Ready: int(info.NumPending), Leased: info.NumAckPending}
	filter := q.dead
	if q.delayed != "" {
		filter = q.subject + ".>"
	}
	si, err := q.stream.Info(ctx, natsjs.WithSubjectFilter(filter))
	if err != nil {
		return Stats{}, fmt.Errorf("jetstream: queue %s: stats: %w", q.name, err)
	}
	for subj, n := range si.State.Subjects {
		switch {
		case subj == q.dead:
			s.Dead = int(n)
		case q.delayed != "" && strings.HasPrefix(subj, q.delayed):
			s.Delayed += int(n)
		}
	}
	return s, nil
}
