package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
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

// Writes that queue up behind a running one are committed in one
// transaction; if one of them fails, the others still commit and only the
// failing one reports an error.
func TestGroupCommitIsolatesAFailingWrite(t *testing.T) {
	db := openInternal(t)
	q := db.Queue("q")
	ctx := t.Context()
	release := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // holds the connection until the others queue up
		_ = db.w.do(ctx, func(w *writer) error { <-release; return nil })
	})
	waitQueued := func(n int) {
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
	waitBusy := func() {
		for {
			db.w.mu.Lock()
			busy := db.w.busy
			db.w.mu.Unlock()
			if busy {
				return
			}
			time.Sleep(time.Millisecond) // polling a condition
		}
	}
	waitBusy()
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
				if _, _, err := w.exec(sqlPublish, qid, stateReady, 0, now(), []byte{byte(i)}, nil, now()); err != nil {
					return err
				}
				if i == 1 {
					return boom // after its insert: the insert must not stay
				}
				return nil
			})
		})
		waitQueued(i + 1)
	}
	close(release)
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
