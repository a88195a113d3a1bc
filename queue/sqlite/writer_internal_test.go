package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"path/filepath"
	"slices"
	"strconv"
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
// transaction; if one of them fails, the others still commit and only the
// failing one reports an error.
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
				l, err := q.lane(w, qid, 0)
				if err != nil {
					return err
				}
				if _, _, err := w.exec(l.sql(sqlPublishReady), 1000+i, []byte{byte(i)}, nil, now()); err != nil {
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
	// The group runs up to the failure, rolls back, then runs each alone.
	if !slices.Equal(runs, []int{2, 2, 1}) {
		t.Errorf("runs = %v, want [2 2 1]", runs)
	}
	s, err := q.Stats(ctx)
	if err != nil || s.Ready != 2 {
		t.Errorf("Stats = %+v, %v; want the 2 inserts that succeeded", s, err)
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

func TestUnleasedValuesAreAsWideAsALeasesValues(t *testing.T) {
	notLeasedV, err1 := strconv.ParseInt(notLeased, 10, 64)
	noReceiptV, err2 := strconv.ParseInt(noReceipt, 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	if notLeasedV >= time.Now().UnixMilli() {
		t.Errorf("notLeased = %d is not in the past", notLeasedV)
	}
	if noReceiptV >= 0 {
		t.Errorf("noReceipt = %d is not negative", noReceiptV)
	}
	// A lease until a year from now, and a receipt from the top half of
	// rand.Int64's range (almost all of them).
	lease := time.Now().AddDate(1, 0, 0).UnixMilli()
	if got, want := intWidth(notLeasedV), intWidth(lease); got != want {
		t.Errorf("notLeased takes %d bytes, a lease end %d", got, want)
	}
	if got, want := intWidth(noReceiptV), intWidth(1<<62); got != want {
		t.Errorf("noReceipt takes %d bytes, a receipt %d", got, want)
	}
}

// A file of schema version 1 keeps every message, in its state, when a
// later version opens it: ready ones (including rows from before notLeased
// and noReceipt, which hold 0 and NULL) and leased ones move to their
// lanes, delayed ones and dead letters stay, and new IDs continue after
// the old ones.
func TestAVersion1FileIsMigrated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	old, err := openWriter("file:" + path + "?_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	leaseEnd := time.Now().Add(time.Hour).UnixMilli()
	err = old.tx(func() error {
		if _, err := old.conn.(driver.ExecerContext).ExecContext(t.Context(), migrations[0].sql, nil); err != nil {
			return err
		}
		for _, stmt := range []string{
			`PRAGMA user_version = 1`,
			`INSERT INTO queues (id, name) VALUES (1, 'q'), (2, 'other')`,
			`INSERT INTO messages (id, queue, state, priority, ready_at, lease_until, attempts, receipt, body, created_at, dead_reason) VALUES
				(1, 1, 0, 0, 0, 0, 0, NULL, x'01', 0, NULL),
				(2, 1, 0, 5, 0, ` + notLeased + `, 0, ` + noReceipt + `, x'02', 0, NULL),
				(3, 1, 0, 0, 0, ` + strconv.FormatInt(leaseEnd, 10) + `, 1, 77, x'03', 0, NULL),
				(4, 1, 1, 0, 1, 0, 2, NULL, x'04', 0, NULL),
				(5, 1, 2, 0, 1, 0, 3, NULL, x'05', 0, 'it failed'),
				(6, 2, 0, 0, 0, 0, 0, NULL, x'06', 0, NULL)`,
		} {
			if _, _, err := old.exec(stmt); err != nil {
				return err
			}
		}
		return nil
	})
	if err := errors.Join(err, old.close()); err != nil {
		t.Fatal(err)
	}

	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if v := pragma(t, db, "user_version"); v != int64(len(migrations)) {
		t.Fatalf("user_version = %d, want %d", v, len(migrations))
	}
	ctx := t.Context()
	q := db.Queue("q")
	if s, err := q.Stats(ctx); err != nil || s != (Stats{Ready: 3, Leased: 1, Dead: 1}) {
		t.Fatalf("Stats = %+v, %v; want 3 ready (one due), 1 leased, 1 dead", s, err)
	}
	msgs, got := receiveIDs(t, q, 10, time.Minute)
	if want := []string{"2", "1", "4"}; !slices.Equal(got, want) {
		t.Fatalf("Receive = %v, want %v: by priority, then ID, the leased one left alone", got, want)
	}
	if msgs[2].Attempt != 3 {
		t.Errorf("the delayed message's Attempt = %d, want 3", msgs[2].Attempt)
	}
	if err := q.Ack(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	leased := &queue.Message{ID: "3", Receipt: receipt{token: 77, lane: q.lanes[len(q.lanes)-1], queue: 1}}
	if err := q.Extend(ctx, leased, time.Minute); err != nil {
		t.Errorf("Extend with the lease's receipt = %v", err)
	}
	dead, err := q.Dead(ctx)
	if err != nil || len(dead) != 1 || dead[0].Message.ID != "5" || dead[0].Reason != "it failed" {
		t.Fatalf("Dead = %+v, %v", dead, err)
	}
	if n, err := q.Redrive(ctx); err != nil || n != 1 {
		t.Fatalf("Redrive = %d, %v", n, err)
	}
	if _, got := receiveIDs(t, q, 10, time.Minute); !slices.Equal(got, []string{"5"}) {
		t.Fatalf("Receive after Redrive = %v, want [5]", got)
	}
	if ids := publishIDs(t, q, 1); ids[0] != "7" {
		t.Errorf("a new message got ID %s, want 7, after every ID the file used", ids[0])
	}
	if s, err := db.Queue("other").Stats(ctx); err != nil || s != (Stats{Ready: 1}) {
		t.Errorf("the other queue's Stats = %+v, %v", s, err)
	}
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
