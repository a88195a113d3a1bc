package main

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/crewgo/crew/queue/postgres"
	"github.com/crewgo/crew/queue/postgres/pgtest"
)

// TestWorkOnPostgresSharesTheLoadAndLosesNothingWhenOneWorkerIsKilled runs
// three crew work processes on one PostgreSQL queue (a server the test
// starts), SIGKILLs one of them mid-run, and checks that every one of
// 3,000 messages is handled, none is dead, all three workers took part,
// and the survivors drain on SIGTERM.
func TestWorkOnPostgresSharesTheLoadAndLosesNothingWhenOneWorkerIsKilled(t *testing.T) {
	srv, err := pgtest.Start(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	dbURL, err := srv.NewDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	db, err := postgres.Open(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q := db.Queue("jobs")
	const n = 3000
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = []byte(strconv.Itoa(i))
	}
	published, err := q.PublishBatch(t.Context(), bodies)
	if err != nil {
		t.Fatal(err)
	}

	sharedWork{
		url:         dbURL + "&queue=jobs&poll_interval=50ms",
		concurrency: 4,
		script:      `echo "$CREW_MESSAGE_ID" >> "$RECORDS"`,
		killAfter:   100,
		patience:    2 * time.Minute,
	}.run(t, published)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if s, err := q.Stats(ctx); err != nil || s.Dead != 0 || s.Ready+s.Delayed != 0 {
		t.Errorf("Stats after the run: %+v, %v; want nothing ready, delayed or dead", s, err)
	}
}
