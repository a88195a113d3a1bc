package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/postgres"
	"github.com/crewgo/crew/queue/queuetest"
)

// crash is the crash test's consumer, run in child processes on one
// schema; its argument is "URL|SCHEMA".
var crash = queuetest.Crash{
	Env: "CREW_POSTGRES_CRASH_CHILD",
	Open: func(ctx context.Context, arg string) (queue.Source, func() error, error) {
		url, schema, _ := strings.Cut(arg, "|")
		db, err := postgres.Open(ctx, url, postgres.Schema(schema))
		if err != nil {
			return nil, nil, err
		}
		return db.Queue("crash"), func() error { db.Close(); return nil }, nil
	},
	Concurrency: 4,
	Lease:       time.Second,
	Job:         20 * time.Millisecond,
}

// TestCrashSafety runs three consumer processes on one queue and stops one
// of them while they work, again and again, starting another in its place:
// three times with SIGTERM (a deploy), then four times with SIGKILL (a
// crash), until the queue is empty.
func TestCrashSafety(t *testing.T) {
	schema := newSchema(t)
	q := openSchema(t, schema).Queue("crash")
	c := crash
	c.Arg, c.Publish, c.Depth = srv.URL()+"|"+schema, q.PublishBatch, q.Stats
	c.Messages, c.Children = 2000, 3
	c.Terms, c.Kills = []int{10, 20, 30}, []int{40, 55, 70, 85}
	c.Run(t)
}

// waitEmpty waits until the queue holds nothing ready, leased or delayed.
func waitEmpty(t *testing.T, q *postgres.Queue, patience time.Duration) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		s, err := q.Stats(t.Context())
		if err == nil && s.Ready+s.Leased+s.Delayed == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the queue was not empty after %v: %+v, %v", patience, s, err)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition
	}
}
