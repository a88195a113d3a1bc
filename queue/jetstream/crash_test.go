package jetstream_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/jetstream"
	"github.com/crewgo/crew/queue/queuetest"
)

// crash is the crash test's consumer, run in child processes; its argument
// is the queue's URL.
var crash = queuetest.Crash{
	Env: "CREW_JETSTREAM_CRASH_CHILD",
	Open: func(ctx context.Context, url string) (queue.Source, func() error, error) {
		q, err := jetstream.Open(ctx, url, jetstream.NoCreate())
		if err != nil {
			return nil, nil, err
		}
		return q, q.Close, nil
	},
	Concurrency: 2,
	Lease:       2 * time.Second, // the consumer's AckWait, set by the test
	Job:         20 * time.Millisecond,
}

// TestCrashSafety runs three consumer processes on one queue and stops one
// of them while they work, again and again, starting another in its place:
// four times with SIGTERM (a deploy), then three times with SIGKILL (a
// crash), until the queue is empty.
func TestCrashSafety(t *testing.T) {
	srv := startServer(t, filepath.Join(t.TempDir(), "nats"), 0)
	q, err := jetstream.New(connect(t, srv.ClientURL()), "crash", jetstream.AckWait(crash.Lease))
	if err != nil {
		t.Fatal(err)
	}
	c := crash
	c.Arg, c.Depth = srv.ClientURL()+"?queue=crash", q.Stats
	c.Publish = func(ctx context.Context, bodies [][]byte, opts ...queue.PublishOption) ([]string, error) {
		ids := make([]string, len(bodies))
		for i, b := range bodies {
			if ids[i], err = q.Publish(ctx, b, opts...); err != nil {
				return nil, err
			}
		}
		return ids, nil
	}
	c.Messages, c.Children = 1000, 3
	c.Terms, c.Kills = []int{10, 20, 30, 40}, []int{55, 70, 85}
	c.Run(t)
}
