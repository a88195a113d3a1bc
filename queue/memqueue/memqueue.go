// Package memqueue is an in-memory queue: a queue.Source and a
// queue.Publisher with the same semantics as crew's durable queues (leases,
// receipts, attempts, delays, priorities and dead letters), for tests and
// for work that may be lost when the process exits.
//
//	q := memqueue.New()
//	q.Publish(ctx, []byte("hello"))
//	c := &queue.Consumer{Source: q, Handler: handle}
//	err := c.Run(ctx)
//
// Everything a Queue holds lives in memory; nothing survives the process.
package memqueue

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/crewgo/crew/queue"
)

// Queue is an in-memory queue. The zero value is not usable: call New. A
// Queue is safe for concurrent use.
type Queue struct {
	mu       sync.Mutex
	seq      uint64 // message IDs and publication order
	receipts uint64
	entries  map[string]*entry
	ready    *entryHeap // visible now: by priority, then age
	waiting  *entryHeap // leased or delayed: by the time they become visible
	dead     []*deadEntry
	changed  chan struct{} // closed and replaced when a message may have become ready
}

type state int

const (
	stateReady state = iota
	stateLeased
	stateDelayed
)

type entry struct {
	id         string
	seq        uint64
	body       []byte
	attributes map[string]string
	priority   int
	attempts   int
	firstRecv  time.Time // when its first lease began; zero until then
	state      state
	visibleAt  time.Time
	receipt    uint64 // of the latest delivery; 0 when none is valid
	readyIndex int    // position in ready, or -1
	waitIndex  int    // position in waiting, or -1
}

// DeadMessage is a dead-lettered message and why it was given up. It is the
// type every crew backend lists dead letters with.
type DeadMessage = queue.DeadMessage

// deadEntry is a dead letter and the priority it goes back with.
type deadEntry struct {
	DeadMessage
	priority int
}

// New returns an empty queue.
func New() *Queue {
	return &Queue{
		entries: make(map[string]*entry),
		ready:   &entryHeap{less: byPriority, index: func(e *entry) *int { return &e.readyIndex }},
		waiting: &entryHeap{less: byVisibility, index: func(e *entry) *int { return &e.waitIndex }},
		changed: make(chan struct{}),
	}
}

var (
	_ queue.Source    = (*Queue)(nil)
	_ queue.Publisher = (*Queue)(nil)
)

// Publish adds a message and returns its ID. Options set a delay, a
// priority and attributes; see queue.PublishOption.
func (q *Queue) Publish(ctx context.Context, body []byte, opts ...queue.PublishOption) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	o := queue.NewPublishOptions(opts...)
	q.mu.Lock()
	defer q.mu.Unlock()
	q.seq++
	e := &entry{
		id:         strconv.FormatUint(q.seq, 10),
		seq:        q.seq,
		body:       slices.Clone(body),
		attributes: maps.Clone(o.Attributes),
		priority:   o.Priority,
		readyIndex: -1,
		waitIndex:  -1,
	}
	q.entries[e.id] = e
	if o.Delay > 0 {
		e.state = stateDelayed
		e.visibleAt = time.Now().Add(o.Delay)
		heap.Push(q.waiting, e)
	} else {
		heap.Push(q.ready, e)
	}
	q.notifyLocked()
	return e.id, nil
}

// notifyLocked wakes every Receive waiting for a message.
func (q *Queue) notifyLocked() {
	close(q.changed)
	q.changed = make(chan struct{})
}

// promoteLocked makes ready every waiting entry whose time has come, and
// returns when the next one will (zero if none waits).
func (q *Queue) promoteLocked(now time.Time) time.Time {
	for q.waiting.Len() > 0 {
		e := q.waiting.items[0]
		if e.visibleAt.After(now) {
			return e.visibleAt
		}
		heap.Pop(q.waiting)
		e.state = stateReady
		heap.Push(q.ready, e)
	}
	return time.Time{}
}

// Receive waits until a message is ready, or ctx ends, and returns up to max
// ready messages (highest priority first, then oldest), each leased for
// lease and with its Attempt counted; a message's first lease sets its
// FirstReceived. It returns ctx's cause if ctx ends while it waits.
func (q *Queue) Receive(ctx context.Context, max int, lease time.Duration) ([]*queue.Message, error) {
	if max < 1 {
		return nil, fmt.Errorf("memqueue: Receive(max=%d): max must be at least 1", max)
	}
	if lease <= 0 {
		return nil, fmt.Errorf("memqueue: Receive(lease=%v): lease must be positive", lease)
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return nil, context.Cause(ctx)
		}
		q.mu.Lock()
		now := time.Now()
		next := q.promoteLocked(now)
		if q.ready.Len() > 0 {
			msgs := make([]*queue.Message, 0, min(max, q.ready.Len()))
			for len(msgs) < max && q.ready.Len() > 0 {
				e := heap.Pop(q.ready).(*entry)
				q.receipts++
				e.receipt = q.receipts
				e.attempts++
				if e.attempts == 1 {
					e.firstRecv = now
				}
				e.state = stateLeased
				e.visibleAt = now.Add(lease)
				heap.Push(q.waiting, e)
				msgs = append(msgs, e.message())
			}
			q.mu.Unlock()
			return msgs, nil
		}
		changed := q.changed
		q.mu.Unlock()

		var due <-chan time.Time
		if !next.IsZero() {
			if timer == nil {
				timer = time.NewTimer(time.Until(next))
			} else {
				timer.Reset(time.Until(next))
			}
			due = timer.C
		}
		select {
		case <-changed:
		case <-due:
		case <-ctx.Done():
		}
	}
}

func (e *entry) message() *queue.Message {
	return &queue.Message{
		ID:            e.id,
		Body:          slices.Clone(e.body),
		Attributes:    maps.Clone(e.attributes),
		Attempt:       e.attempts,
		FirstReceived: e.firstRecv,
		Receipt:       e.receipt,
	}
}

// holderLocked returns m's entry if m's receipt is still the entry's
// current one, and an error wrapping queue.ErrLeaseLost otherwise.
func (q *Queue) holderLocked(m *queue.Message) (*entry, error) {
	e := q.entries[m.ID]
	r, _ := m.Receipt.(uint64)
	if e == nil || r == 0 || e.receipt != r {
		return nil, fmt.Errorf("memqueue: message %s: %w", m.ID, queue.ErrLeaseLost)
	}
	return e, nil
}

// removeLocked takes e out of the queue's structures.
func (q *Queue) removeLocked(e *entry) {
	if e.readyIndex >= 0 {
		heap.Remove(q.ready, e.readyIndex)
	}
	if e.waitIndex >= 0 {
		heap.Remove(q.waiting, e.waitIndex)
	}
	delete(q.entries, e.id)
}

// Ack deletes the messages. Those whose lease has passed on are left alone
// and reported, each as a *queue.LeaseLostError, in the joined error.
func (q *Queue) Ack(ctx context.Context, msgs ...*queue.Message) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	var errs []error
	for _, m := range msgs {
		e, err := q.holderLocked(m)
		if err != nil {
			errs = append(errs, &queue.LeaseLostError{ID: m.ID, Err: err})
			continue
		}
		q.removeLocked(e)
	}
	return errors.Join(errs...)
}

// Nack gives up m's lease: m becomes ready again after delay, with its
// attempts kept. Its receipt is no longer valid.
func (q *Queue) Nack(ctx context.Context, m *queue.Message, delay time.Duration) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	e, err := q.holderLocked(m)
	if err != nil {
		return err
	}
	e.receipt = 0
	if e.readyIndex >= 0 {
		heap.Remove(q.ready, e.readyIndex)
	}
	if e.waitIndex >= 0 {
		heap.Remove(q.waiting, e.waitIndex)
	}
	if delay > 0 {
		e.state = stateDelayed
		e.visibleAt = time.Now().Add(delay)
		heap.Push(q.waiting, e)
	} else {
		e.state = stateReady
		heap.Push(q.ready, e)
	}
	q.notifyLocked()
	return nil
}

// Extend makes m's lease end lease from now.
func (q *Queue) Extend(ctx context.Context, m *queue.Message, lease time.Duration) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	e, err := q.holderLocked(m)
	if err != nil {
		return err
	}
	if e.readyIndex >= 0 { // the lease had run out, but nobody took it since
		heap.Remove(q.ready, e.readyIndex)
		heap.Push(q.waiting, e)
	}
	e.state = stateLeased
	e.visibleAt = time.Now().Add(lease)
	heap.Fix(q.waiting, e.waitIndex)
	return nil
}

// DeadLetter moves m to the dead letters with reason.
func (q *Queue) DeadLetter(ctx context.Context, m *queue.Message, reason error) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	e, err := q.holderLocked(m)
	if err != nil {
		return err
	}
	q.removeLocked(e)
	text := "dead-lettered"
	if reason != nil {
		text = reason.Error()
	}
	msg := e.message()
	msg.Receipt = nil
	q.dead = append(q.dead, &deadEntry{DeadMessage{Message: msg, Reason: text, At: time.Now()}, e.priority})
	return nil
}

// DeadLetters returns the dead-lettered messages, oldest first.
func (q *Queue) DeadLetters() []*queue.Message {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]*queue.Message, len(q.dead))
	for i, d := range q.dead {
		out[i] = d.Message
	}
	return out
}

// Dead returns the dead letters with their reasons, oldest first.
func (q *Queue) Dead() []DeadMessage {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]DeadMessage, len(q.dead))
	for i, d := range q.dead {
		out[i] = d.DeadMessage
	}
	return out
}

// Redrive puts the dead letters with the given IDs (all of them if none is
// given) back in the queue, ready, with their attempts and FirstReceived
// reset, and returns how many it moved.
func (q *Queue) Redrive(ids ...string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	moved := 0
	kept := q.dead[:0]
	for _, d := range q.dead {
		if len(ids) > 0 && !slices.Contains(ids, d.Message.ID) {
			kept = append(kept, d)
			continue
		}
		q.seq++
		e := &entry{
			id:         d.Message.ID,
			seq:        q.seq,
			body:       d.Message.Body,
			attributes: d.Message.Attributes,
			priority:   d.priority,
			readyIndex: -1,
			waitIndex:  -1,
		}
		q.entries[e.id] = e
		heap.Push(q.ready, e)
		moved++
	}
	clear(q.dead[len(kept):])
	q.dead = kept
	if moved > 0 {
		q.notifyLocked()
	}
	return moved
}

// Counts is how many messages a queue holds, by state. It is the type every
// crew backend counts with.
type Counts = queue.Depth

// Counts returns how many messages the queue holds in each state.
func (q *Queue) Counts() Counts {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.promoteLocked(time.Now())
	c := Counts{Dead: len(q.dead)}
	for _, e := range q.entries {
		switch e.state {
		case stateReady:
			c.Ready++
		case stateLeased:
			c.Leased++
		case stateDelayed:
			c.Delayed++
		}
	}
	return c
}

// entryHeap is a heap of entries that keeps each entry's position in it up
// to date, so that an entry can be removed or fixed in place.
type entryHeap struct {
	items []*entry
	less  func(a, b *entry) bool
	index func(e *entry) *int // the entry's position field for this heap
}

// byPriority orders ready entries: highest priority first, then oldest.
func byPriority(a, b *entry) bool {
	if a.priority != b.priority {
		return a.priority > b.priority
	}
	return a.seq < b.seq
}

// byVisibility orders leased and delayed entries by when they become visible.
func byVisibility(a, b *entry) bool { return a.visibleAt.Before(b.visibleAt) }

func (h *entryHeap) Len() int           { return len(h.items) }
func (h *entryHeap) Less(i, j int) bool { return h.less(h.items[i], h.items[j]) }
func (h *entryHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	*h.index(h.items[i]) = i
	*h.index(h.items[j]) = j
}

func (h *entryHeap) Push(x any) {
	e := x.(*entry)
	*h.index(e) = len(h.items)
	h.items = append(h.items, e)
}

func (h *entryHeap) Pop() any {
	last := len(h.items) - 1
	e := h.items[last]
	h.items[last] = nil
	h.items = h.items[:last]
	*h.index(e) = -1
	return e
}
