package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crewgo/crew"
	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/sqlite"
)

func publishN(t *testing.T, q *sqlite.Queue, n int, opts ...queue.PublishOption) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		id, err := q.Publish(t.Context(), []byte(strconv.Itoa(i)), opts...)
		if err != nil {
			t.Fatalf("Publish: %v", err)
		}
		ids[i] = id
	}
	return ids
}

func receiveN(t *testing.T, q *sqlite.Queue, n int, lease time.Duration) []*queue.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var out []*queue.Message
	for len(out) < n {
		msgs, err := q.Receive(ctx, n-len(out), lease)
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		out = append(out, msgs...)
	}
	return out
}

func stats(t *testing.T, q *sqlite.Queue) sqlite.Stats {
	t.Helper()
	s, err := q.Stats(t.Context())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	return s
}

// rawDB opens the file with database/sql, as another program would.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestOpenCreatesAMigratedWALFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.db")
	openPath(t, path)
	raw := rawDB(t, path)
	var mode string
	var version int
	if err := raw.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if err := raw.QueryRow("PRAGMA user_version").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" || version < 1 {
		t.Errorf("journal_mode %q, user_version %d; want wal and a schema version", mode, version)
	}
	// Opening again finds the schema up to date and keeps the data.
	db := openPath(t, path)
	if _, err := db.Queue("q").Publish(t.Context(), []byte("x")); err != nil {
		t.Fatal(err)
	}
	again := openPath(t, path)
	if s := stats(t, again.Queue("q")); s.Ready != 1 {
		t.Errorf("reopened: %+v, want the message published before", s)
	}
}

func TestOpenTakesAnyFileName(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a dir %20 with?odd#chars")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "q&x=1.db")
	publishN(t, openPath(t, path).Queue("q"), 1)
	if _, err := os.Stat(path); err != nil {
		t.Errorf("the file is not where it was asked for: %v", err)
	}
}

// Processes that start together may open a new file at the same time:
// one migrates it, the others wait for the lock and find it done.
func TestConcurrentOpensOfANewFileAllSucceed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.db")
	dbs := make([]*sqlite.DB, 4)
	errs := make([]error, len(dbs))
	var wg sync.WaitGroup
	for i := range dbs {
		wg.Go(func() { dbs[i], errs[i] = sqlite.Open(path) })
	}
	wg.Wait()
	for i, db := range dbs {
		if errs[i] != nil {
			t.Errorf("Open %d: %v", i, errs[i])
			continue
		}
		if _, err := db.Queue("q").Publish(t.Context(), []byte("x")); err != nil {
			t.Errorf("Publish through DB %d: %v", i, err)
		}
		db.Close()
	}
}

func TestOpenRefusesAFileFromANewerVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "future.db")
	openPath(t, path)
	if _, err := rawDB(t, path).Exec("PRAGMA user_version = 999"); err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(path)
	if err == nil {
		db.Close()
		t.Fatal("Open succeeded on a file with schema version 999")
	}
	if !strings.Contains(err.Error(), "999") {
		t.Errorf("Open: %v; want it to name the file's schema version", err)
	}
}

func TestOpenRejectsBadOptions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	for name, opt := range map[string]sqlite.Option{
		"Synchronous(OFF)": sqlite.Synchronous("OFF"),
		"BusyTimeout(0)":   sqlite.BusyTimeout(0),
		"PollInterval(0)":  sqlite.PollInterval(0),
	} {
		db, err := sqlite.Open(path, opt)
		if err == nil {
			db.Close()
			t.Errorf("Open with %s succeeded", name)
		}
	}
	if _, err := sqlite.Open(""); err == nil {
		t.Error("Open(\"\") succeeded")
	}
	if _, err := sqlite.Open(filepath.Join(t.TempDir(), "no", "such", "dir", "q.db")); err == nil {
		t.Error("Open in a missing directory succeeded")
	}
}

func TestSynchronousAcceptsFullAndNormal(t *testing.T) {
	for _, mode := range []string{"FULL", "normal"} {
		db := openDB(t, sqlite.Synchronous(mode), sqlite.BusyTimeout(time.Second), sqlite.PollInterval(time.Second))
		if _, err := db.Queue("q").Publish(t.Context(), []byte("x")); err != nil {
			t.Errorf("Synchronous(%q): Publish: %v", mode, err)
		}
	}
}

func TestStatsCountsEachState(t *testing.T) {
	q := openDB(t).Queue("q")
	ctx := t.Context()
	publishN(t, q, 5)
	publishN(t, q, 2, queue.Delay(time.Hour))
	msgs := receiveN(t, q, 3, time.Hour)
	if err := q.DeadLetter(ctx, msgs[0], errors.New("poison")); err != nil {
		t.Fatal(err)
	}
	if err := q.Nack(ctx, msgs[1], time.Hour); err != nil {
		t.Fatal(err)
	}
	want := sqlite.Stats{Ready: 2, Leased: 1, Delayed: 3, Dead: 1}
	if got := stats(t, q); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
}

func TestStatsCountsAnExpiredLeaseAsReady(t *testing.T) {
	q := openDB(t).Queue("q")
	publishN(t, q, 1)
	receiveN(t, q, 1, 50*time.Millisecond)
	if s := stats(t, q); s.Leased != 1 {
		t.Fatalf("Stats = %+v right after Receive, want 1 leased", s)
	}
	deadline := time.Now().Add(10 * time.Second)
	for stats(t, q) != (sqlite.Stats{Ready: 1}) {
		if time.Now().After(deadline) {
			t.Fatalf("Stats = %+v long after the lease ended, want 1 ready", stats(t, q))
		}
		time.Sleep(10 * time.Millisecond) // polling a condition
	}
}

func TestDeadListsReasonsOldestFirst(t *testing.T) {
	q := openDB(t).Queue("q")
	ctx := t.Context()
	if _, err := q.Publish(ctx, []byte("a"), queue.Attribute("k", "v")); err != nil {
		t.Fatal(err)
	}
	publishN(t, q, 1)
	msgs := receiveN(t, q, 2, time.Minute)
	before := time.Now().Add(-time.Second)
	for i, m := range msgs {
		if err := q.DeadLetter(ctx, m, fmt.Errorf("reason %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.DeadLetter(ctx, msgs[0], errors.New("again")); !errors.Is(err, queue.ErrLeaseLost) {
		t.Errorf("DeadLetter of a dead letter = %v, want ErrLeaseLost", err)
	}
	dead, err := q.Dead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 2 {
		t.Fatalf("Dead returned %d messages, want 2", len(dead))
	}
	d := dead[0]
	if d.Message.ID != msgs[0].ID || string(d.Message.Body) != "a" || d.Message.Attributes["k"] != "v" ||
		d.Message.Attempt != 1 || d.Message.Receipt != nil || d.Reason != "reason 0" || d.At.Before(before) {
		t.Errorf("first dead letter = %+v (message %+v), want message %s, body a, attribute k=v, attempt 1, no receipt, reason 0",
			d, *d.Message, msgs[0].ID)
	}
	if dead[1].Message.ID != msgs[1].ID || dead[1].Reason != "reason 1" {
		t.Errorf("second dead letter = %s %q, want %s %q", dead[1].Message.ID, dead[1].Reason, msgs[1].ID, "reason 1")
	}
}

func TestRedriveMakesDeadLettersReadyWithAttemptsReset(t *testing.T) {
	q := openDB(t).Queue("q")
	ctx := t.Context()
	ids := publishN(t, q, 3)
	for round := range 2 { // two deliveries each: attempt 2
		for _, m := range receiveN(t, q, 3, time.Minute) {
			if round == 0 {
				err := q.Nack(ctx, m, 0)
				if err != nil {
					t.Fatal(err)
				}
			} else if err := q.DeadLetter(ctx, m, errors.New("no")); err != nil {
				t.Fatal(err)
			}
		}
	}
	n, err := q.Redrive(ctx, ids[1], "123456789", ids[1])
	if err != nil || n != 1 {
		t.Fatalf("Redrive(one, unknown, the same again) = %d, %v; want 1", n, err)
	}
	m := receiveN(t, q, 1, time.Minute)[0]
	if m.ID != ids[1] || m.Attempt != 1 {
		t.Errorf("after Redrive received %s attempt %d, want %s attempt 1", m.ID, m.Attempt, ids[1])
	}
	if _, err := q.Redrive(ctx, "not-an-id"); err == nil {
		t.Error("Redrive with a malformed ID succeeded")
	}
	if n, err := q.Redrive(ctx); err != nil || n != 2 {
		t.Errorf("Redrive() = %d, %v; want the other 2", n, err)
	}
	if s := stats(t, q); s != (sqlite.Stats{Ready: 2, Leased: 1}) {
		t.Errorf("Stats = %+v, want 2 ready, 1 leased", s)
	}
}

// A Nack with a delay and a dead letter move a message out of the ready
// table and back (or not): its first-received time goes with it, and a
// Redrive starts it over.
func TestFirstReceivedSurvivesADelayAndADeadLetter(t *testing.T) {
	q := openDB(t).Queue("q")
	ctx := t.Context()
	publishN(t, q, 1)
	first := receiveN(t, q, 1, time.Minute)[0]
	if first.FirstReceived.IsZero() {
		t.Fatal("FirstReceived is zero on the first delivery")
	}
	if err := q.Nack(ctx, first, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	again := receiveN(t, q, 1, time.Minute)[0] // once the delay is over
	if !again.FirstReceived.Equal(first.FirstReceived) {
		t.Errorf("FirstReceived = %v after a delayed Nack, want %v", again.FirstReceived, first.FirstReceived)
	}
	if err := q.DeadLetter(ctx, again, errors.New("no")); err != nil {
		t.Fatal(err)
	}
	dead, err := q.Dead(ctx)
	if err != nil || len(dead) != 1 || !dead[0].Message.FirstReceived.Equal(first.FirstReceived) {
		t.Fatalf("Dead = %+v, %v; want the message, first received at %v", dead, err, first.FirstReceived)
	}
	if _, err := q.Redrive(ctx); err != nil {
		t.Fatal(err)
	}
	redriven := receiveN(t, q, 1, time.Minute)[0]
	if !redriven.FirstReceived.After(first.FirstReceived) {
		t.Errorf("FirstReceived = %v after Redrive, want a new time, after %v", redriven.FirstReceived, first.FirstReceived)
	}
}

func TestPurgeDeletesOnlyDeadLetters(t *testing.T) {
	db := openDB(t)
	q, other := db.Queue("q"), db.Queue("other")
	ctx := t.Context()
	publishN(t, q, 3)
	publishN(t, other, 1)
	for _, qq := range []*sqlite.Queue{q, other} {
		m := receiveN(t, qq, 1, time.Minute)[0]
		if err := qq.DeadLetter(ctx, m, errors.New("no")); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := q.Purge(ctx); err != nil || n != 1 {
		t.Errorf("Purge = %d, %v; want 1", n, err)
	}
	if s := stats(t, q); s != (sqlite.Stats{Ready: 2}) {
		t.Errorf("Stats after Purge = %+v, want the 2 ready messages only", s)
	}
	if s := stats(t, other); s.Dead != 1 {
		t.Errorf("another queue's dead letters: %+v, want 1 left", s)
	}
}

func TestQueuesListsQueuesHoldingMessages(t *testing.T) {
	db := openDB(t)
	ctx := t.Context()
	if names, err := db.Queues(ctx); err != nil || len(names) != 0 {
		t.Fatalf("Queues on a new file = %v, %v", names, err)
	}
	publishN(t, db.Queue("b"), 1)
	publishN(t, db.Queue("a"), 2)
	c := db.Queue("c")
	publishN(t, c, 1)
	m := receiveN(t, c, 1, time.Minute)[0]
	if err := c.DeadLetter(ctx, m, errors.New("no")); err != nil {
		t.Fatal(err)
	}
	names, err := db.Queues(ctx)
	if err != nil || !slices.Equal(names, []string{"a", "b", "c"}) {
		t.Errorf("Queues = %v, %v; want [a b c]", names, err)
	}
	b := db.Queue("b")
	if err := b.Ack(ctx, receiveN(t, b, 1, time.Minute)...); err != nil {
		t.Fatal(err)
	}
	if names, _ := db.Queues(ctx); !slices.Equal(names, []string{"a", "c"}) {
		t.Errorf("Queues after emptying b = %v, want [a c]", names)
	}
}

func TestNamedQueuesAreIndependent(t *testing.T) {
	db := openDB(t)
	if a1, a2 := db.Queue("a"), db.Queue("a"); a1 != a2 || a1.Name() != "a" {
		t.Error("Queue(\"a\") returned different queues, or the wrong name")
	}
	a, b := db.Queue("a"), db.Queue("b")
	publishN(t, a, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if msgs, _ := b.Receive(ctx, 1, time.Minute); len(msgs) != 0 {
		t.Fatalf("queue b received a's message %s", msgs[0].ID)
	}
	m := receiveN(t, a, 1, time.Minute)[0]
	if err := b.Ack(t.Context(), m); !errors.Is(err, queue.ErrLeaseLost) {
		t.Errorf("acking a's message on b = %v, want ErrLeaseLost", err)
	}
	if s := stats(t, a); s.Leased != 1 {
		t.Errorf("a: %+v after b's Ack, want the message still leased", s)
	}
}

func TestEmptyQueueNameFailsPermanently(t *testing.T) {
	q := openDB(t).Queue("")
	ctx := t.Context()
	m := &queue.Message{ID: "1"}
	_, perr := q.Publish(ctx, []byte("x"))
	_, rerr := q.Receive(ctx, 1, time.Minute)
	_, serr := q.Stats(ctx)
	_, derr := q.Dead(ctx)
	_, rderr := q.Redrive(ctx)
	_, puerr := q.Purge(ctx)
	for name, err := range map[string]error{
		"Publish": perr, "Receive": rerr, "Stats": serr, "Dead": derr, "Redrive": rderr, "Purge": puerr,
		"Ack": q.Ack(ctx, m), "Nack": q.Nack(ctx, m, 0), "Extend": q.Extend(ctx, m, time.Minute),
		"DeadLetter": q.DeadLetter(ctx, m, nil),
	} {
		if !errors.Is(err, crew.ErrPermanent) {
			t.Errorf("%s on Queue(\"\") = %v, want an error wrapping crew.ErrPermanent", name, err)
		}
	}
}

func TestReceiveRejectsBadArguments(t *testing.T) {
	q := openDB(t).Queue("q")
	for _, c := range []struct {
		max   int
		lease time.Duration
	}{{0, time.Minute}, {-1, time.Minute}, {1, 0}, {1, -time.Second}} {
		if _, err := q.Receive(t.Context(), c.max, c.lease); err == nil {
			t.Errorf("Receive(max=%d, lease=%v) succeeded", c.max, c.lease)
		}
	}
	publishN(t, q, 1)
	m := receiveN(t, q, 1, time.Minute)[0]
	if err := q.Extend(t.Context(), m, 0); err == nil || errors.Is(err, queue.ErrLeaseLost) {
		t.Errorf("Extend(lease=0) = %v, want an argument error", err)
	}
}

func TestSettlingAForeignMessageIsLeaseLost(t *testing.T) {
	q := openDB(t).Queue("q")
	ctx := t.Context()
	for _, m := range []*queue.Message{{ID: "1"}, {ID: "x", Receipt: "y"}, {ID: "1", Receipt: uint64(1)}} {
		for name, err := range map[string]error{
			"Ack": q.Ack(ctx, m), "Nack": q.Nack(ctx, m, 0), "Extend": q.Extend(ctx, m, time.Minute),
			"DeadLetter": q.DeadLetter(ctx, m, nil),
		} {
			if !errors.Is(err, queue.ErrLeaseLost) {
				t.Errorf("%s(%+v) = %v, want ErrLeaseLost", name, m, err)
			}
		}
	}
}

func TestAckWithTheSameMessageTwiceDeletesItOnce(t *testing.T) {
	q := openDB(t).Queue("q")
	publishN(t, q, 2)
	msgs := receiveN(t, q, 2, time.Minute)
	err := q.Ack(t.Context(), msgs[0], msgs[0], msgs[1])
	if !errors.Is(err, queue.ErrLeaseLost) || !strings.Contains(err.Error(), "message "+msgs[0].ID) {
		t.Errorf("Ack(m, m, n) = %v, want the second copy of m reported as lost", err)
	}
	if s := stats(t, q); s != (sqlite.Stats{}) {
		t.Errorf("Stats = %+v, want both deleted", s)
	}
}

func TestAckOfALargeBatch(t *testing.T) {
	q := openDB(t).Queue("q")
	ctx := t.Context()
	bodies := make([][]byte, 100)
	for i := range bodies {
		bodies[i] = []byte(strconv.Itoa(i))
	}
	ids, err := q.PublishBatch(ctx, bodies, queue.Priority(3))
	if err != nil || len(ids) != 100 {
		t.Fatalf("PublishBatch = %d IDs, %v", len(ids), err)
	}
	msgs := receiveN(t, q, 100, time.Minute)
	if got := slices.Sorted(slices.Values(idsOf(msgs))); !slices.Equal(got, slices.Sorted(slices.Values(ids))) {
		t.Fatal("received other messages than those published")
	}
	stale := *msgs[50]
	if err := q.Nack(ctx, msgs[50], time.Hour); err != nil {
		t.Fatal(err)
	}
	msgs[50] = &stale
	err = q.Ack(ctx, msgs...)
	if !errors.Is(err, queue.ErrLeaseLost) || !strings.Contains(err.Error(), stale.ID) {
		t.Errorf("Ack of 100 with one stale = %v, want that one reported", err)
	}
	if s := stats(t, q); s != (sqlite.Stats{Delayed: 1}) {
		t.Errorf("Stats = %+v, want only the nacked message left", s)
	}
}

func TestAckOfMessagesFromSeveralReceives(t *testing.T) {
	q := openDB(t).Queue("q")
	ctx := t.Context()
	publishN(t, q, 5)
	first := receiveN(t, q, 2, time.Minute)
	second := receiveN(t, q, 2, time.Minute)
	// The fifth message is received, given back, and received again: the
	// first copy's receipt is stale, the second's is current.
	stale := receiveN(t, q, 1, time.Minute)[0]
	if err := q.Nack(ctx, stale, 0); err != nil {
		t.Fatal(err)
	}
	current := receiveN(t, q, 1, time.Minute)[0]
	if current.ID != stale.ID {
		t.Fatalf("received %s again, want %s", current.ID, stale.ID)
	}
	err := q.Ack(ctx, second[1], stale, first[0], second[0], first[1])
	if !errors.Is(err, queue.ErrLeaseLost) || !strings.Contains(err.Error(), "message "+stale.ID) {
		t.Errorf("Ack with one stale copy = %v, want that copy reported as lost", err)
	}
	if s := stats(t, q); s != (sqlite.Stats{Leased: 1}) {
		t.Errorf("Stats = %+v, want only the current copy left, leased", s)
	}
	if err := q.Ack(ctx, current); err != nil {
		t.Errorf("Ack of the current copy = %v", err)
	}
}

func idsOf(msgs []*queue.Message) []string {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	return ids
}

func TestPublishBatchKeepsOrderAndOptions(t *testing.T) {
	q := openDB(t).Queue("q")
	ctx := t.Context()
	if ids, err := q.PublishBatch(ctx, nil); err != nil || len(ids) != 0 {
		t.Errorf("PublishBatch(nil) = %v, %v", ids, err)
	}
	ids, err := q.PublishBatch(ctx, [][]byte{[]byte("a"), nil, []byte("c")}, queue.Attribute("k", "v"))
	if err != nil {
		t.Fatal(err)
	}
	msgs := receiveN(t, q, 3, time.Minute)
	if !slices.Equal(idsOf(msgs), ids) {
		t.Errorf("received %v, want the batch in order %v", idsOf(msgs), ids)
	}
	for i, body := range []string{"a", "", "c"} {
		if string(msgs[i].Body) != body || msgs[i].Body == nil || msgs[i].Attributes["k"] != "v" {
			t.Errorf("message %d: body %q (nil: %v), attributes %v", i, msgs[i].Body, msgs[i].Body == nil, msgs[i].Attributes)
		}
	}
}

func TestCloseWakesAWaitingReceive(t *testing.T) {
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "q.db"))
	if err != nil {
		t.Fatal(err)
	}
	q := db.Queue("q")
	done := make(chan error, 1)
	go func() {
		_, err := q.Receive(context.Background(), 1, time.Minute)
		done <- err
	}()
	waitForWaiter(t, q)
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, sqlite.ErrClosed) || !errors.Is(err, crew.ErrPermanent) {
			t.Errorf("Receive after Close = %v, want ErrClosed wrapping crew.ErrPermanent", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Receive did not return after Close")
	}
	if _, err := q.Publish(t.Context(), []byte("x")); !errors.Is(err, sqlite.ErrClosed) {
		t.Errorf("Publish after Close = %v, want ErrClosed", err)
	}
	if _, err := db.Queues(t.Context()); !errors.Is(err, sqlite.ErrClosed) {
		t.Errorf("Queues after Close = %v, want ErrClosed", err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
}

// waitForWaiter returns once a Receive on q is waiting: a message
// published and taken back shows that the DB is reachable, and a short
// pause lets the goroutine reach its wait. Nothing depends on the pause:
// Close wakes a Receive whether it waits or is about to.
func waitForWaiter(t *testing.T, q *sqlite.Queue) {
	t.Helper()
	if _, err := q.Stats(t.Context()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
}

func TestReceiveWakesForADelayedMessageBeforeThePollInterval(t *testing.T) {
	q := openDB(t, sqlite.PollInterval(time.Hour)).Queue("q")
	start := time.Now()
	id := publishN(t, q, 1, queue.Delay(300*time.Millisecond))[0]
	m := receiveN(t, q, 1, time.Minute)[0]
	elapsed := time.Since(start)
	if m.ID != id || elapsed < 250*time.Millisecond || elapsed > 5*time.Second {
		t.Errorf("received %s after %v; want %s after about 300ms", m.ID, elapsed, id)
	}
}

// Two DBs on one file stand for two processes: they share nothing but the
// file.
func TestTwoDBsOnOneFileSeeEachOthersMessages(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	a := openPath(t, path, sqlite.PollInterval(20*time.Millisecond)).Queue("q")
	b := openPath(t, path, sqlite.PollInterval(20*time.Millisecond)).Queue("q")
	got := make(chan []*queue.Message, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		msgs, _ := b.Receive(ctx, 1, time.Minute)
		got <- msgs
	}()
	id := publishN(t, a, 1)[0]
	msgs := <-got
	if len(msgs) != 1 || msgs[0].ID != id {
		t.Fatalf("the other DB received %v, want %s", idsOf(msgs), id)
	}
	// A's copy of the lease is fenced off once B holds the message.
	publishN(t, a, 1)
	stale := receiveN(t, a, 1, 50*time.Millisecond)[0]
	current := receiveN(t, b, 1, time.Minute)[0]
	if current.ID != stale.ID || current.Attempt != 2 {
		t.Fatalf("B received %s attempt %d, want %s attempt 2", current.ID, current.Attempt, stale.ID)
	}
	if err := a.Ack(t.Context(), stale); !errors.Is(err, queue.ErrLeaseLost) {
		t.Errorf("A's stale Ack = %v, want ErrLeaseLost", err)
	}
	if err := b.Ack(t.Context(), msgs[0], current); err != nil {
		t.Errorf("B's Ack = %v", err)
	}
}

// Consumers in two DBs on one file, publishing and acknowledging at once,
// lose no update: each message is handled exactly once and the queue ends
// empty.
func TestTwoDBsConsumingOneFileLoseNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	dbs := []*sqlite.DB{
		openPath(t, path, sqlite.PollInterval(10*time.Millisecond)),
		openPath(t, path, sqlite.PollInterval(10*time.Millisecond)),
	}
	const n = 600
	var mu sync.Mutex
	handled := map[string]int{}
	all := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, db := range dbs {
		c := &queue.Consumer{
			Source:      db.Queue("q"),
			Concurrency: 4,
			Logger:      quietLogger(),
			Handler: func(ctx context.Context, m *queue.Message) error {
				mu.Lock()
				defer mu.Unlock()
				handled[string(m.Body)]++
				if len(handled) == n {
					close(all)
				}
				return nil
			},
		}
		wg.Go(func() {
			if err := c.Run(ctx); err != nil {
				t.Errorf("Consumer.Run: %v", err)
			}
		})
	}
	// Both DBs publish while both consume.
	var pub sync.WaitGroup
	for i, db := range dbs {
		pub.Go(func() {
			for j := range n / 2 {
				if _, err := db.Queue("q").Publish(ctx, []byte(strconv.Itoa(i*n/2+j))); err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
			}
		})
	}
	pub.Wait()
	select {
	case <-all:
	case <-time.After(30 * time.Second):
		t.Error("the consumers did not handle every message in time")
	}
	cancel()
	wg.Wait()
	for body, times := range handled {
		if times != 1 {
			t.Errorf("message %s handled %d times", body, times)
		}
	}
	if s := stats(t, dbs[0].Queue("q")); s != (sqlite.Stats{}) {
		t.Errorf("Stats = %+v, want an empty queue", s)
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
