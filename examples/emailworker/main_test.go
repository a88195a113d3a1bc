package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/crewgo/crew"
	"github.com/crewgo/crew/crewtest"
	"github.com/crewgo/crew/queue/sqlite"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSIGTERMFinishesJobsInFlightAndLosesNothing(t *testing.T) {
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "emails.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q := db.Queue("emails")
	const total = 10
	for i := range total {
		if _, err := q.Publish(context.Background(), fmt.Appendf(nil, "user%d", i)); err != nil {
			t.Fatal(err)
		}
	}

	var mu sync.Mutex
	sent := map[string]int{}
	started := make(chan struct{}, total)
	release := make(chan struct{})
	send := func(ctx context.Context, to string) error {
		started <- struct{}{}
		<-release // the SMTP server answers only after SIGTERM
		if err := ctx.Err(); err != nil {
			return err // a job in flight must not be cancelled by the signal
		}
		mu.Lock()
		sent[to]++
		mu.Unlock()
		return nil
	}
	g := newGroup(q, send, "", slog.New(slog.DiscardHandler))
	p := crewtest.Main(t, g)
	for range 4 { // Concurrency jobs in flight
		<-started
	}
	p.Signal(syscall.SIGTERM)
	for g.Status()[0].State != crew.StateStopping {
		time.Sleep(time.Millisecond) // until the consumer has been told to stop
	}
	close(release)
	if code := p.Wait(); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}

	st, err := q.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(sent) != 4 || st.Ready != total-4 || st.Leased != 0 || st.Dead != 0 {
		t.Fatalf("sent %d, queue %+v: want the 4 jobs in flight sent and the other %d ready again", len(sent), st, total-4)
	}
	for to, n := range sent {
		if n != 1 {
			t.Errorf("%s sent %d times", to, n)
		}
	}
}
