package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/queuetest"
	"github.com/crewgo/crew/queue/sqlite"
)

// crash is the crash test's consumer, run in child processes on one file.
var crash = queuetest.Crash{
	Env: "CREW_SQLITE_CRASH_CHILD",
	Open: func(ctx context.Context, path string) (queue.Source, func() error, error) {
		db, err := sqlite.Open(path)
		if err != nil {
			return nil, nil, err
		}
		return db.Queue("crash"), db.Close, nil
	},
	Concurrency: 4,
	Lease:       2 * time.Second,
	Job:         5 * time.Millisecond,
}

// TestCrashSafety runs a consumer in a child process on one file and stops
// it while it works: four times with SIGTERM (a deploy), then three times
// with SIGKILL (a crash), starting another each time, until the queue is
// empty. The test's own DB shares the file with the children: it publishes
// and reads Stats as another process would.
func TestCrashSafety(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crash.db")
	q := openPath(t, path).Queue("crash")
	c := crash
	c.Arg, c.Publish, c.Depth = path, q.PublishBatch, q.Stats
	c.Messages, c.Children = 2000, 1
	c.Terms, c.Kills = []int{10, 20, 30, 40}, []int{55, 70, 85}
	c.Run(t)
}
