package jetstream_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/jetstream"
)

// TestServerRestartLosesNothing restarts the server, with the same store
// directory and port, while two consumers on connections of their own
// handle a queue: every message is handled, and none is left behind.
func TestServerRestartLosesNothing(t *testing.T) {
	const n = 600
	dir := t.TempDir()
	srv := startServer(t, dir, 0)
	addr := srv.Addr().String()
	url := srv.ClientURL()
	pub, err := jetstream.New(connect(t, url), "restart", jetstream.AckWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for i := range n {
		if _, err := pub.Publish(ctx, []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}

	var mu sync.Mutex
	handled := map[string]int{}
	progress := make(chan int, n*2)
	handler := func(ctx context.Context, m *queue.Message) error {
		time.Sleep(2 * time.Millisecond) // the job
		mu.Lock()
		handled[string(m.Body)]++
		select {
		case progress <- len(handled):
		default: // nobody waits any more: a handler must not block
		}
		mu.Unlock()
		return nil
	}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		q, err := jetstream.New(connect(t, url), "restart")
		if err != nil {
			t.Fatal(err)
		}
		c := &queue.Consumer{Source: q, Concurrency: 4, Lease: 2 * time.Second, MaxAttempts: -1, Handler: handler, Logger: quietLogger()}
		wg.Go(func() { errs <- c.Run(runCtx) })
	}
	defer func() { stop(); wg.Wait() }()

	waitFor := func(count int) {
		t.Helper()
		timeout := time.After(30 * time.Second)
		for {
			select {
			case got := <-progress:
				if got >= count {
					return
				}
			case <-timeout:
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("only %d of %d messages handled in time", len(handled), count)
			}
		}
	}
	waitFor(n / 3)
	mu.Lock()
	before := len(handled)
	mu.Unlock()
	srv.Shutdown()
	srv.WaitForShutdown()
	restartServer(t, dir, addr)
	waitFor(n)
	stop()
	wg.Wait()
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("Consumer.Run: %v", err)
		}
	}
	total := 0
	for _, c := range handled {
		total += c
	}
	t.Logf("%d of %d messages handled before the restart; %d handlings in all", before, n, total)
	for i := range n {
		if handled[strconv.Itoa(i)] == 0 {
			t.Errorf("message %d was never handled", i)
		}
	}
	if s := waitEmpty(t, pub, 10*time.Second); s.Dead != 0 {
		t.Errorf("%d dead letters after the restart, want none", s.Dead)
	}
}

// restartServer starts a server again on addr with the store in dir.
func restartServer(t *testing.T, dir, addr string) *server.Server {
	t.Helper()
	var port int
	if _, err := fmt.Sscanf(addr, "127.0.0.1:%d", &port); err != nil {
		t.Fatal(err)
	}
	return startServer(t, dir, port)
}
