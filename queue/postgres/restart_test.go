package postgres_test

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/postgres/pgtest"
)

// TestServerRestartLosesNothing runs three consumers, each with a DB and
// connections of its own, on one queue, and restarts the server as a crash
// would (pg_ctl restart -m immediate) once a third of the messages are
// handled. The consumers must take the lost connections as transient, go
// on once the server is back, and handle every message; nothing may be
// left ready, leased, delayed or dead.
func TestServerRestartLosesNothing(t *testing.T) {
	const messages = 3000
	schema := newSchema(t)
	q := openSchema(t, schema).Queue("restart")
	bodies := make([][]byte, messages)
	for i := range bodies {
		bodies[i] = []byte(strconv.Itoa(i))
	}
	published, err := q.PublishBatch(t.Context(), bodies)
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	handled := map[string]int{}
	third := make(chan struct{})
	all := make(chan struct{})
	handler := func(ctx context.Context, m *queue.Message) error {
		time.Sleep(time.Millisecond) // the job: long enough for the restart to come mid-run
		mu.Lock()
		defer mu.Unlock()
		handled[m.ID]++
		if handled[m.ID] > 1 {
			return nil
		}
		switch len(handled) {
		case messages / 3:
			close(third)
		case messages:
			close(all)
		}
		return nil
	}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range 3 {
		c := &queue.Consumer{
			Source:       openSchema(t, schema).Queue("restart"),
			Handler:      handler,
			Concurrency:  4,
			Lease:        2 * time.Second,
			MaxAttempts:  -1, // a delivery lost in the restart is not a failure of the message
			DrainTimeout: 10 * time.Second,
			Logger:       slog.New(slog.DiscardHandler),
		}
		wg.Go(func() { errs[i] = c.Run(ctx) })
	}
	defer func() {
		stop()
		wg.Wait()
	}()

	<-third
	if err := srv.Restart(t.Context()); errors.Is(err, pgtest.ErrNotStarted) {
		t.Skip("the server was not started by the tests, so they cannot restart it")
	} else if err != nil {
		t.Fatal(err)
	}
	select {
	case <-all:
	case <-time.After(time.Minute):
		mu.Lock()
		t.Fatalf("%d of %d messages handled a minute after the restart", len(handled), messages)
	}
	waitEmpty(t, q, 30*time.Second)
	stop()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("consumer %d: %v", i, err)
		}
	}
	twice := 0
	for _, id := range published {
		if handled[id] == 0 {
			t.Errorf("message %s was never handled", id)
		}
		twice += handled[id] - 1
	}
	t.Logf("%d messages handled, %d of them again after the restart cut off their acknowledgement", len(handled), twice)
	if s, err := q.Stats(t.Context()); err != nil || s.Dead != 0 {
		t.Errorf("Stats: %+v, %v; want no dead letters", s, err)
	}
}
