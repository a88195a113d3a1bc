package postgres_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/postgres"
)

// The crash test runs this test binary again as a consumer: with
// crashChildEnv set to "URL|SCHEMA|RECORDS|SEED", TestMain runs crashChild
// instead of the tests.
const crashChildEnv = "CREW_POSTGRES_CRASH_CHILD"

const (
	crashQueue    = "crash"
	crashMessages = 2000
	crashLease    = time.Second // also how long a killed child's messages stay leased
)

// crashChild consumes the queue until SIGTERM. Its handler waits a random
// 1-5ms, then appends the message's ID to the records file and syncs it,
// so that a handled message is on disk before it is acknowledged. It
// prints "ready" once the consumer is about to start, and exits 0 after a
// complete drain.
func crashChild(spec string) int {
	// First, so that no SIGTERM finds the default action (exit at once).
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	parts := strings.Split(spec, "|")
	if len(parts) != 4 {
		fmt.Fprintf(os.Stderr, "crash child: bad spec %q\n", spec)
		return 2
	}
	seed, _ := strconv.ParseUint(parts[3], 10, 64)
	rng := rand.New(rand.NewPCG(seed, uint64(os.Getpid())))
	var rngMu sync.Mutex

	db, err := postgres.Open(ctx, parts[0], postgres.Schema(parts[1]))
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		return 2
	}
	defer db.Close()
	records, err := os.OpenFile(parts[2], os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		return 2
	}
	defer records.Close()
	var recordMu sync.Mutex

	c := &queue.Consumer{
		Source:      db.Queue(crashQueue),
		Concurrency: 4,
		Lease:       crashLease,
		// A SIGKILL may cost a message a delivery; none of that is a
		// failure.
		MaxAttempts:  1000,
		DrainTimeout: 20 * time.Second,
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Handler: func(ctx context.Context, m *queue.Message) error {
			rngMu.Lock()
			d := time.Millisecond + time.Duration(rng.Int64N(int64(4*time.Millisecond)))
			rngMu.Unlock()
			time.Sleep(d) // the job
			recordMu.Lock()
			defer recordMu.Unlock()
			if _, err := records.WriteString(m.ID + "\n"); err != nil {
				return err
			}
			return records.Sync()
		},
	}
	fmt.Println("ready")
	if err := c.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "crash child: consumer:", err)
		return 1
	}
	return 0
}

// child is one consumer process of the crash test.
type child struct {
	cmd     *exec.Cmd
	records string
	stderr  bytes.Buffer
}

// startChild starts a consumer process on the schema and waits until it is
// about to consume.
func startChild(t *testing.T, schema, records string, seed uint64) *child {
	t.Helper()
	c := &child{records: records}
	c.cmd = exec.Command(os.Args[0], "-test.run=^$")
	c.cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%s|%s|%d", crashChildEnv, srv.URL(), schema, records, seed))
	c.cmd.Stderr = &c.stderr
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if line != "ready\n" {
		_ = c.cmd.Process.Kill()
		_ = c.cmd.Wait()
		t.Fatalf("a consumer process did not start: %s", c.stderr.String())
	}
	return c
}

// stop signals the child and checks how it ended: a clean drain after
// SIGTERM, death by the signal after SIGKILL.
func (c *child) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := c.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	err := c.cmd.Wait()
	switch {
	case sig == syscall.SIGTERM && err != nil:
		t.Fatalf("a consumer exited with %v after SIGTERM, want a clean drain; its log:\n%s", err, c.stderr.String())
	case sig == syscall.SIGKILL && !killed(err):
		t.Fatalf("a consumer exited with %v before SIGKILL; its log:\n%s", err, c.stderr.String())
	}
}

// TestCrashSafety runs three consumer processes on one queue and SIGKILLs
// one of them at a random moment, again and again, starting a new one in
// its place each time; the last three run until the queue is empty and are
// stopped with SIGTERM. Every message must be handled at least once, and
// nothing may be left ready, leased, delayed or dead.
func TestCrashSafety(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()
	schema := newSchema(t)
	q := openSchema(t, schema).Queue(crashQueue)
	ctx := t.Context()

	bodies := make([][]byte, crashMessages)
	for i := range bodies {
		bodies[i] = []byte(strconv.Itoa(i))
	}
	published, err := q.PublishBatch(ctx, bodies)
	if err != nil {
		t.Fatal(err)
	}

	n := 0
	start := func() *child {
		n++
		return startChild(t, schema, filepath.Join(dir, fmt.Sprintf("child-%d.txt", n)), seed+uint64(n))
	}
	var all []*child
	running := []*child{start(), start(), start()}
	all = append(all, running...)
	for range 4 {
		time.Sleep(50*time.Millisecond + time.Duration(rng.Int64N(int64(250*time.Millisecond)))) // the random moment of the crash
		i := rng.IntN(len(running))
		running[i].stop(t, syscall.SIGKILL)
		running[i] = start()
		all = append(all, running[i])
	}
	waitEmpty(t, q, time.Minute)
	for _, c := range running {
		c.stop(t, syscall.SIGTERM)
	}

	counts := map[string]int{}
	total := 0
	for _, c := range all {
		ids := readRecords(t, c.records)
		for _, id := range ids {
			counts[id]++
		}
		total += len(ids)
	}
	var missing []string
	for _, id := range published {
		if counts[id] == 0 {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d messages were never handled, such as %v", len(missing), missing[:min(5, len(missing))])
	}
	if len(counts) != len(published) {
		t.Errorf("%d distinct IDs handled, want %d", len(counts), len(published))
	}
	t.Logf("%d messages, %d handlings, %d handled more than once (after SIGKILL)", len(published), total, total-len(counts))
	if s, err := q.Stats(ctx); err != nil || s != (postgres.Stats{}) {
		t.Errorf("Stats after the last consumer stopped: %+v, %v; want nothing ready, leased, delayed or dead", s, err)
	}
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

func killed(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// readRecords returns the IDs in a child's records file. Each ID is written
// by one write(2), so a SIGKILL leaves no line cut short; such a line would
// be ignored.
func readRecords(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, l := range strings.SplitAfter(string(b), "\n") {
		if id, ok := strings.CutSuffix(l, "\n"); ok && id != "" {
			ids = append(ids, id)
		}
	}
	return ids
}
