package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crewgo/crew/queue"
)

func openInternal(t *testing.T, opts ...Option) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "q.db"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// pragma reads an integer pragma on the write connection.
func pragma(t *testing.T, db *DB, name string) int64 {
	t.Helper()
	var got int64
	err := db.w.do(t.Context(), func(w *writer) error {
		return w.query("PRAGMA "+name, nil, func(vals []driver.Value) error {
			got = int64Value(vals[0])
			return nil
		})
	})
	if err != nil {
		t.Fatalf("PRAGMA %s: %v", name, err)
	}
	return got
}

func TestOptionsReachTheWriteConnection(t *testing.T) {
	for mode, want := range map[string]int64{"FULL": 2, "NORMAL": 1} {
		if got := pragma(t, openInternal(t, Synchronous(mode)), "synchronous"); got != want {
			t.Errorf("Synchronous(%q): PRAGMA synchronous = %d, want %d", mode, got, want)
		}
	}
	if got := pragma(t, openInternal(t), "busy_timeout"); got != DefaultBusyTimeout.Milliseconds() {
		t.Errorf("default PRAGMA busy_timeout = %d, want %d", got, DefaultBusyTimeout.Milliseconds())
	}
	if got := pragma(t, openInternal(t, BusyTimeout(1500*time.Millisecond)), "busy_timeout"); got != 1500 {
		t.Errorf("BusyTimeout(1.5s): PRAGMA busy_timeout = %d, want 1500", got)
	}
}

// waitQueued waits until n writes wait for db's writer.
func waitQueued(t *testing.T, db *DB, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		db.w.mu.Lock()
		queued := len(db.w.queue)
		db.w.mu.Unlock()
		if queued >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", queued, n)
		}
		time.Sleep(time.Millisecond) // polling a condition
	}
}

// holdWriter makes a write that holds db's writer until release is called,
// so that the writes made meanwhile queue up behind it; release returns
// once that write has.
func holdWriter(t *testing.T, db *DB) (release func()) {
	t.Helper()
	held, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		_ = db.w.do(t.Context(), func(w *writer) error { <-held; return nil })
	}()
	for {
		db.w.mu.Lock()
		busy := db.w.busy
		db.w.mu.Unlock()
		if busy {
			break
		}
		time.Sleep(time.Millisecond) // polling a condition
	}
	return func() {
		close(held)
		<-done
	}
}

// Writes that queue up behind a running one are committed in one
// transaction; if one of them fails, only its own work is rolled back, the
// others commit, each runs once, and only the failing one reports an error.
func TestGroupCommitIsolatesAFailingWrite(t *testing.T) {
	db := openInternal(t)
	q := db.Queue("q")
	ctx := t.Context()
	release := holdWriter(t, db)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	boom := errors.New("boom")
	runs := make([]int, 3)
	for i := range 3 {
		wg.Go(func() {
			errs[i] = db.w.do(ctx, func(w *writer) error {
				runs[i]++
				qid, err := q.rowID(w, true)
				if err != nil {
					return err
				}
				if _, err := w.exec(sqlPublishReady, qid, 0, 1000+i, []byte{byte(i)}, nil, now()); err != nil {
					return err
				}
				if i == 1 {
					return boom // after its insert: the insert must not stay
				}
				return nil
			})
		})
		waitQueued(t, db, i+1)
	}
	release()
	wg.Wait()
	if errs[0] != nil || !errors.Is(errs[1], boom) || errs[2] != nil {
		t.Errorf("errors = %v, want nil, boom, nil", errs)
	}
	if !slices.Equal(runs, []int{1, 1, 1}) {
		t.Errorf("runs = %v, want [1 1 1]", runs)
	}
	msgs, got := receiveIDs(t, q, 10, time.Minute)
	if want := []string{"1000", "1002"}; !slices.Equal(got, want) {
		t.Errorf("Receive = %v, want the 2 inserts that succeeded, %v", got, want)
	}
	if err := q.Ack(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
}

// An Ack that finds a lease lost is an ordinary result: in a group, it
// deletes the messages still its own, reports the other, and leaves the
// other writes of its transaction alone.
func TestAnAckWithALostLeaseInAGroup(t *testing.T) {
	db := openInternal(t)
	q := db.Queue("q")
	ctx := t.Context()
	publishIDs(t, q, 3)
	msgs, _ := receiveIDs(t, q, 3, time.Minute)
	if err := q.Nack(ctx, msgs[1], 0); err != nil { // msgs[1]'s lease passes on
		t.Fatal(err)
	}
	release := holdWriter(t, db)
	var wg sync.WaitGroup
	var ackErr, pubErr error
	var published []string
	wg.Go(func() { ackErr = q.Ack(ctx, msgs...) })
	waitQueued(t, db, 1)
	wg.Go(func() { published, pubErr = q.PublishBatch(ctx, [][]byte{nil}) })
	waitQueued(t, db, 2)
	release()
	wg.Wait()
	if pubErr != nil {
		t.Fatal(pubErr)
	}
	if !errors.Is(ackErr, queue.ErrLeaseLost) || !strings.Contains(ackErr.Error(), "message "+msgs[1].ID+":") {
		t.Fatalf("Ack = %v, want message %s's lease lost", ackErr, msgs[1].ID)
	}
	if _, got := receiveIDs(t, q, 10, time.Minute); !slices.Equal(got, []string{msgs[1].ID, published[0]}) {
		t.Errorf("Receive = %v, want the nacked message and the one published, %v and %v", got, msgs[1].ID, published[0])
	}
}

func TestAWriteWaitingItsTurnHonoursItsContext(t *testing.T) {
	db := openInternal(t)
	release := make(chan struct{})
	held := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = db.w.do(context.Background(), func(w *writer) error { close(held); <-release; return nil })
	})
	<-held
	ctx, cancel := context.WithCancel(context.Background())
	ran := false
	done := make(chan error, 1)
	go func() { done <- db.w.do(ctx, func(w *writer) error { ran = true; return nil }) }()
	cancel()
	err := <-done
	close(release)
	wg.Wait()
	if !errors.Is(err, context.Canceled) || ran {
		t.Errorf("a cancelled queued write returned %v (ran: %v), want context.Canceled and no run", err, ran)
	}
}

// writeOldFile creates at path a file of an earlier schema version, with
// that version's DDL (the migrations up to it, run on an empty file),
// holding what stmts insert.
func writeOldFile(t *testing.T, path string, version int, stmts ...string) {
	t.Helper()
	old, err := openConn("file:" + path + "?_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	err = old.tx("BEGIN IMMEDIATE", func() error {
		for _, m := range migrations[:version] {
			err := old.script(m.sql)
			if err == nil && m.then != nil {
				err = m.then(old)
			}
			if err != nil {
				return err
			}
		}
		stmts = append(stmts, "PRAGMA user_version = "+strconv.Itoa(version))
		for _, stmt := range stmts {
			if err := old.script(stmt); err != nil {
				return fmt.Errorf("%s: %w", stmt, err)
			}
		}
		return nil
	})
	if err := errors.Join(err, old.close()); err != nil {
		t.Fatal(err)
	}
}

// openMigrated opens the file at path and checks that it is at the latest
// schema version, with no table of version 2 left.
func openMigrated(t *testing.T, path string) *DB {
	t.Helper()
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if v := pragma(t, db, "user_version"); v != int64(len(migrations)) {
		t.Fatalf("user_version = %d, want %d", v, len(migrations))
	}
	var lanes int64
	err = db.w.do(t.Context(), func(w *writer) error {
		var err error
		lanes, err = w.int64(`SELECT count(*) FROM sqlite_schema WHERE name LIKE 'lane%'`)
		return err
	})
	if err != nil || lanes != 0 {
		t.Fatalf("%d tables of version 2 are left (%v)", lanes, err)
	}
	return db
}

// checkMigrated checks the messages of the files that
// TestAVersion1FileIsMigrated, TestAVersion2FileIsMigrated and
// TestAVersion3FileIsMigrated write, in queue q: 1 and 2 ready (2 of
// priority 5), 3 leased with receipt 77, 4 delayed until long ago after 2
// attempts, 5 dead, and, in queue other, 6 ready; and that a new message
// gets ID next. Messages received before the migration have no
// FirstReceived; the others get theirs at their first lease.
func checkMigrated(t *testing.T, db *DB, next string) {
	t.Helper()
	ctx := t.Context()
	q := db.Queue("q")
	if s, err := q.Stats(ctx); err != nil || s != (Stats{Ready: 3, Leased: 1, Dead: 1}) {
		t.Fatalf("Stats = %+v, %v; want 3 ready (one due), 1 leased, 1 dead", s, err)
	}
	before := time.Now().Truncate(time.Millisecond)
	msgs, got := receiveIDs(t, q, 10, time.Minute)
	if want := []string{"2", "1", "4"}; !slices.Equal(got, want) {
		t.Fatalf("Receive = %v, want %v: by priority, then ID, the leased one left alone", got, want)
	}
	if msgs[2].Attempt != 3 {
		t.Errorf("the delayed message's Attempt = %d, want 3", msgs[2].Attempt)
	}
	for _, m := range msgs[:2] {
		if m.FirstReceived.Before(before) || m.FirstReceived.After(time.Now()) {
			t.Errorf("message %s, never received before, has FirstReceived %v, want the time of this Receive", m.ID, m.FirstReceived)
		}
	}
	if !msgs[2].FirstReceived.IsZero() {
		t.Errorf("message 4, received before the migration, has FirstReceived %v, want zero", msgs[2].FirstReceived)
	}
	if err := q.Ack(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	leased := &queue.Message{ID: "3", Receipt: receipt{token: 77, queue: 1, priority: 0}}
	if err := q.Extend(ctx, leased, time.Minute); err != nil {
		t.Errorf("Extend with the lease's receipt = %v", err)
	}
	dead, err := q.Dead(ctx)
	if err != nil || len(dead) != 1 || dead[0].Message.ID != "5" || dead[0].Reason != "it failed" || !dead[0].Message.FirstReceived.IsZero() {
		t.Fatalf("Dead = %+v, %v; want message 5, with no FirstReceived", dead, err)
	}
	if n, err := q.Redrive(ctx); err != nil || n != 1 {
		t.Fatalf("Redrive = %d, %v", n, err)
	}
	if msgs, got := receiveIDs(t, q, 10, time.Minute); !slices.Equal(got, []string{"5"}) || msgs[0].FirstReceived.IsZero() {
		t.Fatalf("Receive after Redrive = %v (%v), want [5], received for the first time again", got, msgs)
	}
	if ids := publishIDs(t, q, 1); ids[0] != next {
		t.Errorf("a new message got ID %s, want %s, after every ID the file used", ids[0], next)
	}
	if s, err := db.Queue("other").Stats(ctx); err != nil || s != (Stats{Ready: 1}) {
		t.Errorf("the other queue's Stats = %+v, %v", s, err)
	}
}

// A file of schema version 1 keeps every message, in its state, when this
// version opens it: ready ones (including rows written with version 2's
// markers for "not leased") and leased ones move to the ready table,
// receipts included, delayed ones and dead letters stay, and new IDs
// continue after the old ones.
func TestAVersion1FileIsMigrated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	leaseEnd := strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)
	writeOldFile(t, path, 1,
		`INSERT INTO queues (id, name) VALUES (1, 'q'), (2, 'other')`,
		`INSERT INTO messages (id, queue, state, priority, ready_at, lease_until, attempts, receipt, body, created_at, dead_reason) VALUES
			(1, 1, 0, 0, 0, 0, 0, NULL, x'01', 0, NULL),
			(2, 1, 0, 5, 0, 1099511627776, 0, -4611686018427387904, x'02', 0, NULL),
			(3, 1, 0, 0, 0, `+leaseEnd+`, 1, 77, x'03', 0, NULL),
			(4, 1, 1, 0, 1, 0, 2, NULL, x'04', 0, NULL),
			(5, 1, 2, 0, 1, 0, 3, NULL, x'05', 0, 'it failed'),
			(6, 2, 0, 0, 0, 0, 0, NULL, x'06', 0, NULL)`)
	checkMigrated(t, openMigrated(t, path), "7")
}

// laneV2 is the DDL of a table of version 2 that held one queue's ready
// messages of one priority.
const laneV2 = ` (
	id          INTEGER PRIMARY KEY,
	lease_until INTEGER NOT NULL,
	receipt     INTEGER NOT NULL,
	attempts    INTEGER NOT NULL,
	body        BLOB    NOT NULL,
	attributes  TEXT,
	created_at  INTEGER NOT NULL
) STRICT`

// oldDelayedAndDead puts into the messages table of a version-2 or -3 file
// a delayed message (4) and a dead one (5) of queue 1.
const oldDelayedAndDead = `INSERT INTO messages (id, queue, state, priority, ready_at, lease_until, attempts, receipt, body, created_at, dead_reason) VALUES
	(4, 1, 1, 0, 1, ` + notLeased + `, 2, ` + noReceipt + `, x'04', 0, NULL),
	(5, 1, 2, 0, 1, ` + notLeased + `, 3, ` + noReceipt + `, x'05', 0, 'it failed')`

// A file of schema version 2 keeps every message the same way; its lanes
// are gone, and new IDs continue after those that a process of version 2
// took, even for messages that are no longer in the file.
func TestAVersion2FileIsMigrated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	leaseEnd := strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)
	writeOldFile(t, path, 2,
		`INSERT INTO queues (id, name) VALUES (1, 'q'), (2, 'other')`,
		`INSERT INTO lanes (id, queue, priority) VALUES (1, 1, 0), (2, 1, 5), (3, 2, 0)`,
		`CREATE TABLE lane_1`+laneV2, `CREATE TABLE lane_2`+laneV2, `CREATE TABLE lane_3`+laneV2,
		`INSERT INTO lane_1 VALUES
			(1, 0, `+noReceipt+`, 0, x'01', NULL, 0),
			(3, `+leaseEnd+`, 77, 1, x'03', NULL, 0)`,
		`INSERT INTO lane_2 VALUES (2, `+notLeased+`, `+noReceipt+`, 0, x'02', NULL, 0)`,
		`INSERT INTO lane_3 VALUES (6, `+notLeased+`, `+noReceipt+`, 0, x'06', NULL, 0)`,
		oldDelayedAndDead, `UPDATE sqlite_sequence SET seq = 9 WHERE name = 'messages'`)
	checkMigrated(t, openMigrated(t, path), "10")
}

// A file of schema version 3 keeps every message the same way; its
// messages get a first-received time at their first lease after the
// migration, and those already received have none.
func TestAVersion3FileIsMigrated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	leaseEnd := strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)
	writeOldFile(t, path, 3,
		`INSERT INTO queues (id, name) VALUES (1, 'q'), (2, 'other')`,
		`INSERT INTO ready (queue, priority, id, lease_until, receipt, attempts, body, attributes, created_at) VALUES
			(1, 0, 1, `+notLeased+`, `+noReceipt+`, 0, x'01', NULL, 0),
			(1, 5, 2, `+notLeased+`, `+noReceipt+`, 0, x'02', NULL, 0),
			(1, 0, 3, `+leaseEnd+`, 77, 1, x'03', NULL, 0),
			(2, 0, 6, `+notLeased+`, `+noReceipt+`, 0, x'06', NULL, 0)`,
		oldDelayedAndDead, `UPDATE sqlite_sequence SET seq = 9 WHERE name = 'messages'`)
	checkMigrated(t, openMigrated(t, path), "10")
}

// endsUnseen is a context whose Err reports it ended once end is set, but
// whose Done channel never closes: a write waiting with it cannot withdraw
// itself, so the leader is sure to take it after it ended.
type endsUnseen struct {
	context.Context
	ended atomic.Bool
}

func (c *endsUnseen) Err() error {
	if c.ended.Load() {
		return context.Canceled
	}
	return nil
}

// A write whose context ended while it waited is taken into the running
// group but not started; the group goes on without it.
func TestAWriteThatEndedWhileQueuedIsSkipped(t *testing.T) {
	db := openInternal(t)
	ctx := &endsUnseen{Context: context.Background()}
	ran := false
	var err error
	done := make(chan struct{})
	leadErr := db.w.do(t.Context(), func(w *writer) error {
		go func() {
			defer close(done)
			err = db.w.do(ctx, func(w *writer) error { ran = true; return nil })
		}()
		waitQueued(t, db, 1)
		ctx.ended.Store(true)
		return nil
	})
	<-done
	if leadErr != nil || !errors.Is(err, context.Canceled) || ran {
		t.Errorf("the leading write returned %v; the ended one %v, and ran: %v; want nil, context.Canceled, false", leadErr, err, ran)
	}
}

// A connection keeps at most maxStmts prepared statements, and one that was
// let go is prepared again when it is used again.
func TestTheStatementCacheIsBounded(t *testing.T) {
	db := openInternal(t)
	err := db.w.do(t.Context(), func(w *writer) error {
		for i := range maxStmts + 10 {
			if n, err := w.int64("SELECT " + strconv.Itoa(i)); err != nil || n != int64(i) {
				return fmt.Errorf("SELECT %d = %d, %v", i, n, err)
			}
		}
		if n := w.stmts.len(); n != maxStmts {
			return fmt.Errorf("%d statements prepared, want at most %d", n, maxStmts)
		}
		if n, err := w.int64("SELECT 0"); err != nil || n != 0 {
			return fmt.Errorf("SELECT 0 after it was let go = %d, %v", n, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Tables are created and dropped by migrations only: the schema is the
// same in every file of one version, whatever it held.
func TestOnlyMigrationsChangeTheSchema(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || f == "migrate.go" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, word := range []string{"CREATE ", "DROP ", "ALTER "} {
			if strings.Contains(string(b), word) {
				t.Errorf("%s holds %q: schema changes belong in migrate.go", f, word)
			}
		}
	}
}

// intWidth is how many bytes SQLite's record format takes for v (0 for
// the constants 0 and 1).
func intWidth(v int64) int {
	switch {
	case v == 0 || v == 1:
		return 0
	case v >= -1<<7 && v < 1<<7:
		return 1
	case v >= -1<<15 && v < 1<<15:
		return 2
	case v >= -1<<23 && v < 1<<23:
		return 3
	case v >= -1<<31 && v < 1<<31:
		return 4
	case v >= -1<<47 && v < 1<<47:
		return 6
	}
	return 8
}

// A lease, and its release, rewrite a row without changing its size.
func TestUnleasedValuesAreAsWideAsALeasesValues(t *testing.T) {
	notLeasedV, err1 := strconv.ParseInt(notLeased, 10, 64)
	noReceiptV, err2 := strconv.ParseInt(noReceipt, 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	if notLeasedV >= time.Now().UnixMilli() {
		t.Errorf("notLeased = %d is not in the past", notLeasedV)
	}
	lease := time.Now().AddDate(1, 0, 0).UnixMilli()
	if got, want := intWidth(notLeasedV), intWidth(lease); got != want {
		t.Errorf("notLeased takes %d bytes, a lease end %d", got, want)
	}
	if got, want := intWidth(notReceived), intWidth(now()); got != want || notReceived >= now() {
		t.Errorf("notReceived (%d) takes %d bytes, a time %d; it must be as wide, and in the past", notReceived, got, want)
	}
	for range 100 {
		token := newToken()
		if token <= 0 || intWidth(token) != intWidth(noReceiptV) {
			t.Fatalf("token %d takes %d bytes, noReceipt %d", token, intWidth(token), intWidth(noReceiptV))
		}
	}
}
