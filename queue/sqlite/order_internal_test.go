package sqlite

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/crewgo/crew/queue"
)

func receiveIDs(t *testing.T, q *Queue, max int, lease time.Duration) ([]*queue.Message, []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	msgs, err := q.Receive(ctx, max, lease)
	if err != nil {
		t.Fatal(err)
	}
	return msgs, idsOf(msgs)
}

func idsOf(msgs []*queue.Message) []string {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	return ids
}

func publishIDs(t *testing.T, q *Queue, n int, opts ...queue.PublishOption) []string {
	t.Helper()
	ids, err := q.PublishBatch(t.Context(), make([][]byte, n), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// Receive takes the highest priority first, then the lowest ID, whenever a
// message became ready: a nacked or redriven message goes before those
// published after it, and a message of a higher priority before all.
func TestReceiveTakesMessagesByPriorityThenID(t *testing.T) {
	db := openInternal(t)
	q := db.Queue("q")
	ctx := t.Context()
	ids := publishIDs(t, q, 12)

	first, got := receiveIDs(t, q, 4, time.Minute)
	if !slices.Equal(got, ids[:4]) {
		t.Fatalf("first Receive = %v, want %v", got, ids[:4])
	}
	if _, got = receiveIDs(t, q, 4, time.Minute); !slices.Equal(got, ids[4:8]) {
		t.Fatalf("second Receive = %v, want %v", got, ids[4:8])
	}

	// A nacked message is ready again before the position.
	if err := q.Nack(ctx, first[1], 0); err != nil {
		t.Fatal(err)
	}
	if _, got = receiveIDs(t, q, 2, time.Minute); !slices.Equal(got, []string{ids[1], ids[8]}) {
		t.Fatalf("after a Nack: Receive = %v, want %v", got, []string{ids[1], ids[8]})
	}

	// So is a message of a higher priority, but not one of the same.
	same := publishIDs(t, q, 1)
	urgent := publishIDs(t, q, 1, queue.Priority(5))
	if _, got = receiveIDs(t, q, 2, time.Minute); !slices.Equal(got, []string{urgent[0], ids[9]}) {
		t.Fatalf("after a publish of priority 5: Receive = %v, want %v", got, []string{urgent[0], ids[9]})
	}

	// And a redriven dead letter.
	if err := q.DeadLetter(ctx, first[2], errors.New("gave up")); err != nil {
		t.Fatal(err)
	}
	if n, err := q.Redrive(ctx, first[2].ID); err != nil || n != 1 {
		t.Fatalf("Redrive = %d, %v", n, err)
	}
	want := []string{ids[2], ids[10], ids[11], same[0]}
	if _, got = receiveIDs(t, q, 10, time.Minute); !slices.Equal(got, want) {
		t.Fatalf("after a Redrive: Receive = %v, want %v", got, want)
	}
}

func TestLeasesThatRanOutAreReceivedAgainInOrder(t *testing.T) {
	db := openInternal(t)
	q := db.Queue("q")
	ids := publishIDs(t, q, 4)
	if _, got := receiveIDs(t, q, 4, time.Millisecond); !slices.Equal(got, ids) {
		t.Fatalf("Receive = %v, want %v", got, ids)
	}
	time.Sleep(20 * time.Millisecond) // the leases run out
	msgs, got := receiveIDs(t, q, 4, time.Minute)
	if !slices.Equal(got, ids) {
		t.Fatalf("after the leases ran out: Receive = %v, want %v", got, ids)
	}
	if msgs[0].Attempt != 2 {
		t.Errorf("Attempt = %d, want 2", msgs[0].Attempt)
	}
}

// A message of a higher priority that another process publishes goes
// before the ones this process has been receiving.
func TestAnotherConnectionsPublishTakesItsPlaceInOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	open := func() *Queue {
		db, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db.Queue("q")
	}
	q, other := open(), open()
	ids := publishIDs(t, q, 4)
	if _, got := receiveIDs(t, q, 2, time.Minute); !slices.Equal(got, ids[:2]) {
		t.Fatalf("Receive = %v, want %v", got, ids[:2])
	}
	urgent := publishIDs(t, other, 1, queue.Priority(5))
	if _, got := receiveIDs(t, q, 1, time.Minute); !slices.Equal(got, urgent) {
		t.Fatalf("after another connection published priority 5: Receive = %v, want %v", got, urgent)
	}
}

// inAFailingGroup runs write, which must make one write, in the group
// transaction of a write that fails after it.
func inAFailingGroup(t *testing.T, db *DB, write func()) {
	t.Helper()
	ctx := t.Context()
	release := holdWriter(t, db)
	var wg sync.WaitGroup
	wg.Go(write)
	waitQueued(t, db, 1)
	boom := errors.New("boom")
	var err error
	wg.Go(func() { err = db.w.do(ctx, func(w *writer) error { return boom }) })
	waitQueued(t, db, 2)
	release()
	wg.Wait()
	if !errors.Is(err, boom) {
		t.Fatalf("the failing write returned %v", err)
	}
}

// A Receive and a Publish that share their transaction with a failing
// write commit all the same.
func TestReceiveAndPublishInAFailingGroupCommit(t *testing.T) {
	db := openInternal(t)
	q := db.Queue("q")
	ctx := t.Context()
	ids := publishIDs(t, q, 4)

	var msgs []*queue.Message
	var err error
	inAFailingGroup(t, db, func() { msgs, err = q.Receive(ctx, 2, time.Minute) })
	if err != nil {
		t.Fatal(err)
	}
	if got := idsOf(msgs); !slices.Equal(got, ids[:2]) {
		t.Fatalf("Receive = %v, want %v", got, ids[:2])
	}
	var urgent []string
	inAFailingGroup(t, db, func() { urgent, err = q.PublishBatch(ctx, [][]byte{nil}, queue.Priority(3)) })
	if err != nil {
		t.Fatal(err)
	}
	if _, got := receiveIDs(t, q, 3, time.Minute); !slices.Equal(got, append(urgent, ids[2:]...)) {
		t.Fatalf("Receive = %v, want %v", got, append(urgent, ids[2:]...))
	}
	if err := q.Ack(ctx, msgs...); err != nil {
		t.Errorf("Ack of the first Receive's messages = %v", err)
	}
}

// A process of version 1 that still runs on a file that a later version
// migrated publishes into the messages table, in state 0, with IDs from
// its AUTOINCREMENT counter; its messages are received too, once no lease
// holds them, and their IDs collide with no other message's.
func TestMessagesOfAVersion1ProcessAreReceived(t *testing.T) {
	db := openInternal(t)
	q := db.Queue("q")
	ctx := t.Context()
	ids := publishIDs(t, q, 2)
	leaseEnd := strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)
	var old []string
	err := db.w.do(ctx, func(w *writer) error {
		for _, leaseUntil := range []string{"0", leaseEnd} {
			id, err := w.int64(`INSERT INTO messages (queue, state, priority, ready_at, lease_until, attempts, body, created_at)
				VALUES (1, 0, 0, 0, ` + leaseUntil + `, 1, x'01', 0) RETURNING id`)
			if err != nil {
				return err
			}
			old = append(old, strconv.FormatInt(id, 10))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	msgs, got := receiveIDs(t, q, 10, time.Minute)
	if want := []string{ids[0], ids[1], old[0]}; !slices.Equal(got, want) {
		t.Fatalf("Receive = %v, want %v: the leased one left alone", got, want)
	}
	if msgs[2].Attempt != 2 {
		t.Errorf("Attempt = %d, want 2", msgs[2].Attempt)
	}
	if err := q.Ack(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	if s, err := q.Stats(ctx); err != nil || s != (Stats{Leased: 1}) {
		t.Errorf("Stats = %+v, %v; want the one the old process holds", s, err)
	}
	next, _ := strconv.Atoi(publishIDs(t, q, 1)[0])
	if last, _ := strconv.Atoi(old[1]); next <= last {
		t.Errorf("a new message got ID %d, not above the old process's %d", next, last)
	}
}

// Any int is a priority, and none adds to the schema.
func TestAnyIntIsAPriority(t *testing.T) {
	db := openInternal(t)
	q := db.Queue("q")
	tables := pragma(t, db, "schema_version")
	// Published lowest priority first, so that ID order is the reverse of
	// the order Receive takes them in.
	var want []string
	for _, p := range []int{math.MinInt64, -1, 0, 1, 1 << 40, math.MaxInt64} {
		want = append(want, publishIDs(t, q, 1, queue.Priority(p))[0])
	}
	slices.Reverse(want)
	if _, got := receiveIDs(t, q, 10, time.Minute); !slices.Equal(got, want) {
		t.Errorf("Receive = %v, want %v", got, want)
	}
	if v := pragma(t, db, "schema_version"); v != tables {
		t.Errorf("the schema changed (schema_version %d, then %d)", tables, v)
	}
}

// A Receive of any number of messages, of several priorities, leases each
// of them once.
func TestReceiveLeasesEveryMessageItReturns(t *testing.T) {
	db := openInternal(t)
	q := db.Queue("q")
	urgent := publishIDs(t, q, 3, queue.Priority(1))
	ids := append(urgent, publishIDs(t, q, 60)...)
	msgs, got := receiveIDs(t, q, 59, time.Minute)
	if !slices.Equal(got, ids[:59]) {
		t.Fatalf("Receive = %v, want %v", got, ids[:59])
	}
	for _, m := range msgs {
		if m.Attempt != 1 {
			t.Errorf("message %s: Attempt = %d, want 1", m.ID, m.Attempt)
		}
	}
	if s, err := q.Stats(t.Context()); err != nil || s != (Stats{Ready: 4, Leased: 59}) {
		t.Errorf("Stats = %+v, %v; want 4 ready, 59 leased", s, err)
	}
	if err := q.Ack(t.Context(), msgs...); err != nil {
		t.Error(err)
	}
}
