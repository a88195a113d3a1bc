package sqlite_test

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
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/sqlite"
)

// The crash test runs this test binary again as a consumer: with
// crashChildEnv set to "DB|RECORDS|SEED", TestMain runs crashChild instead
// of the tests.
const crashChildEnv = "CREW_SQLITE_CRASH_CHILD"

const (
	crashQueue    = "crash"
	crashMessages = 2000
	crashLease    = 2 * time.Second // also how long a killed child's messages stay leased
)

// crashChild consumes the queue until SIGTERM. Its handler waits a random
// 1-10ms, then appends the message's ID to the records file and syncs it,
// so that a handled message is on disk before it is acknowledged. It
// prints "ready" once the consumer is about to start, and exits 0 after a
// complete drain.
func crashChild(spec string) int {
	// First, so that no SIGTERM finds the default action (exit at once).
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	parts := strings.Split(spec, "|")
	if len(parts) != 3 {
		fmt.Fprintf(os.Stderr, "crash child: bad spec %q\n", spec)
		return 2
	}
	seed, _ := strconv.ParseUint(parts[2], 10, 64)
	rng := rand.New(rand.NewPCG(seed, uint64(os.Getpid())))
	var rngMu sync.Mutex

	db, err := sqlite.Open(parts[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		return 2
	}
	defer db.Close()
	records, err := os.OpenFile(parts[1], os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
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
		// Every round may deliver a message once more without handling it
		// (a SIGKILL while it was leased); none of that is a failure.
		MaxAttempts:  1000,
		DrainTimeout: 20 * time.Second,
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Handler: func(ctx context.Context, m *queue.Message) error {
			rngMu.Lock()
			d := time.Millisecond + time.Duration(rng.Int64N(int64(9*time.Millisecond)))
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

// crashRound is one run of a child.
type crashRound struct {
	signal  syscall.Signal
	handled []string // the IDs it recorded, in order
}

// TestCrashSafety runs consumers in child processes on one file and stops
// them at random moments: first with SIGTERM (a deploy), then with SIGKILL
// (a crash), restarting each time, and finally lets one run until the queue
// is empty. Every message must be handled at least once; none twice while
// only SIGTERM stopped the children; and nothing may be left leased or dead.
func TestCrashSafety(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()
	path := filepath.Join(dir, "crash.db")
	// The test's own DB shares the file with the children: it publishes
	// and watches Stats as another process would.
	q := openPath(t, path).Queue(crashQueue)
	ctx := t.Context()

	bodies := make([][]byte, crashMessages)
	for i := range bodies {
		bodies[i] = []byte(strconv.Itoa(i))
	}
	published, err := q.PublishBatch(ctx, bodies)
	if err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(50 * time.Second)
	var rounds []crashRound
	run := func(sig syscall.Signal, until func() bool) {
		t.Helper()
		n := len(rounds)
		records := filepath.Join(dir, fmt.Sprintf("round-%d.txt", n))
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%s|%d", crashChildEnv, path, records, seed+uint64(n)))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ready := make(chan bool, 1)
		go func() {
			line, _ := bufio.NewReader(stdout).ReadString('\n')
			ready <- line == "ready\n"
		}()
		if !<-ready {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("round %d: the child did not start: %s", n, stderr.String())
		}
		until()
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		err = cmd.Wait()
		switch {
		case sig == syscall.SIGTERM && err != nil:
			t.Fatalf("round %d: the child exited with %v after SIGTERM, want a clean drain; its log:\n%s", n, err, stderr.String())
		case sig == syscall.SIGKILL && !killed(err):
			t.Fatalf("round %d: the child exited with %v before SIGKILL; its log:\n%s", n, err, stderr.String())
		}
		rounds = append(rounds, crashRound{signal: sig, handled: readRecords(t, records)})
		if time.Now().After(deadline) {
			t.Fatalf("the rounds took too long; %d rounds so far", len(rounds))
		}
	}
	randomMoment := func() func() bool {
		return func() bool {
			time.Sleep(100*time.Millisecond + time.Duration(rng.Int64N(int64(500*time.Millisecond)))) // the random moment to stop at
			return true
		}
	}

	for range 4 {
		run(syscall.SIGTERM, randomMoment())
	}
	counts := map[string]int{}
	for _, r := range rounds {
		for _, id := range r.handled {
			counts[id]++
		}
	}
	for id, n := range counts {
		if n > 1 {
			t.Errorf("message %s was handled %d times in SIGTERM-only rounds", id, n)
		}
	}
	for range 3 {
		run(syscall.SIGKILL, randomMoment())
	}
	// The last child runs until the queue is empty: Stats, read by this
	// process, shows nothing ready, leased (a killed child's leases run
	// out after crashLease) or delayed.
	run(syscall.SIGTERM, func() bool {
		for time.Now().Before(deadline) {
			s, err := q.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if s.Ready+s.Leased+s.Delayed == 0 {
				return true
			}
			time.Sleep(20 * time.Millisecond) // polling a condition
		}
		t.Fatal("the queue was not empty before the deadline")
		return false
	})

	clear(counts)
	total := 0
	for i, r := range rounds {
		for _, id := range r.handled {
			counts[id]++
		}
		total += len(r.handled)
		t.Logf("round %d (%v): handled %d", i, r.signal, len(r.handled))
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

	s, err := q.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s != (sqlite.Stats{}) {
		t.Errorf("Stats after the last round: %+v, want nothing ready, leased, delayed or dead", s)
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

// readRecords returns the IDs in a child's records file. A line cut short
// by SIGKILL would have no newline; there is none, since each ID is written
// by one write(2), but such a line would be ignored.
func readRecords(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	var ids []string
	for _, l := range lines {
		if id, ok := strings.CutSuffix(l, "\n"); ok && id != "" {
			ids = append(ids, id)
		}
	}
	return slices.Clip(ids)
}
