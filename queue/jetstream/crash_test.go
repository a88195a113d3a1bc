package jetstream_test

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
	"github.com/crewgo/crew/queue/jetstream"
)

// The crash test runs this test binary again as a worker: with
// crashChildEnv set to "URL|RECORDS|SEED", TestMain runs crashChild instead
// of the tests.
const crashChildEnv = "CREW_JETSTREAM_CRASH_CHILD"

const (
	crashQueue    = "crash"
	crashMessages = 1000
	crashLease    = 2 * time.Second // the consumer's AckWait: how long a killed worker's messages stay leased
)

// crashChild consumes the queue until SIGTERM. Its handler waits a random
// 5-15ms, then appends the message's ID to the records file, so that a
// handled message is recorded before it is acknowledged. It prints "ready"
// once the consumer is about to start, and exits 0 after a complete drain.
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

	q, err := jetstream.Open(ctx, parts[0], jetstream.NoCreate())
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		return 2
	}
	defer q.Close()
	records, err := os.OpenFile(parts[1], os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		return 2
	}
	defer records.Close()
	var recordMu sync.Mutex

	c := &queue.Consumer{
		Source:      q,
		Concurrency: 2,
		Lease:       crashLease,
		// Every SIGKILL may deliver a message once more without handling
		// it; none of that is a failure.
		MaxAttempts:  1000,
		DrainTimeout: 20 * time.Second,
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Handler: func(ctx context.Context, m *queue.Message) error {
			rngMu.Lock()
			d := 5*time.Millisecond + time.Duration(rng.Int64N(int64(10*time.Millisecond)))
			rngMu.Unlock()
			time.Sleep(d) // the job
			recordMu.Lock()
			defer recordMu.Unlock()
			_, err := records.WriteString(m.ID + "\n")
			return err
		},
	}
	fmt.Println("ready")
	if err := c.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "crash child: consumer:", err)
		return 1
	}
	return 0
}

// worker is one crash child process.
type worker struct {
	cmd     *exec.Cmd
	stderr  bytes.Buffer
	records string
}

func startWorker(t *testing.T, url, records string, seed uint64) *worker {
	t.Helper()
	w := &worker{records: records}
	w.cmd = exec.Command(os.Args[0], "-test.run=^$")
	w.cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%s|%d", crashChildEnv, url, records, seed))
	w.cmd.Stderr = &w.stderr
	stdout, err := w.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // a worker that a failed test left running
		if w.cmd.ProcessState == nil {
			_ = w.cmd.Process.Kill()
			_ = w.cmd.Wait()
		}
	})
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if line != "ready\n" {
		_ = w.cmd.Process.Kill()
		_ = w.cmd.Wait()
		t.Fatalf("a worker did not start: %s", w.stderr.String())
	}
	return w
}

// stop signals the worker and checks how it ended.
func (w *worker) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := w.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	err := w.cmd.Wait()
	switch {
	case sig == syscall.SIGTERM && err != nil:
		t.Fatalf("a worker exited with %v after SIGTERM, want a clean drain; its log:\n%s", err, w.stderr.String())
	case sig == syscall.SIGKILL && !killed(err):
		t.Fatalf("a worker exited with %v before SIGKILL; its log:\n%s", err, w.stderr.String())
	}
}

// TestCrashSafety runs three workers in child processes on one queue and
// stops them at random moments, restarting each: first with SIGTERM (a
// deploy), then with SIGKILL (a crash), and finally lets the last three run
// until the queue is empty. Every message must be handled at least once;
// none twice while only SIGTERM stopped workers; and nothing may be left
// ready, leased or dead.
func TestCrashSafety(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()
	srv := startServer(t, filepath.Join(dir, "nats"), 0)
	q, err := jetstream.New(connect(t, srv.ClientURL()), crashQueue, jetstream.AckWait(crashLease))
	if err != nil {
		t.Fatal(err)
	}
	url := srv.ClientURL() + "?queue=" + crashQueue
	ctx := t.Context()
	published := make([]string, crashMessages)
	for i := range published {
		if published[i], err = q.Publish(ctx, []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}

	var files []string
	start := func() *worker {
		files = append(files, filepath.Join(dir, fmt.Sprintf("records-%d.txt", len(files))))
		return startWorker(t, url, files[len(files)-1], seed+uint64(len(files)))
	}
	// Each stop comes once the workers together have handled a share of
	// the messages, plus a random moment, so that every stop hits work in
	// progress however fast the machine.
	handled := func() int {
		n := 0
		for _, c := range countRecords(t, files) {
			n += c
		}
		return n
	}
	deadline := time.Now().Add(60 * time.Second)
	at := func(percent int) {
		for handled() < crashMessages*percent/100 {
			if time.Now().After(deadline) {
				t.Fatalf("the workers handled %d messages before the deadline", handled())
			}
			time.Sleep(10 * time.Millisecond) // polling a condition
		}
		time.Sleep(time.Duration(rng.Int64N(int64(50 * time.Millisecond)))) // the random moment to stop at
	}
	workers := []*worker{start(), start(), start()}
	replace := func(sig syscall.Signal) {
		i := rng.IntN(len(workers))
		workers[i].stop(t, sig)
		workers[i] = start()
	}
	for _, percent := range []int{10, 20, 30, 40} {
		at(percent)
		replace(syscall.SIGTERM)
	}
	// So far only SIGTERM stopped workers: nothing ran twice.
	counts := countRecords(t, files)
	for id, n := range counts {
		if n > 1 {
			t.Errorf("message %s was handled %d times before any SIGKILL", id, n)
		}
	}
	for _, percent := range []int{55, 70, 85} {
		at(percent)
		replace(syscall.SIGKILL)
	}
	waitEmpty(t, q, time.Until(deadline))
	for _, w := range workers {
		w.stop(t, syscall.SIGTERM)
	}

	counts = countRecords(t, files)
	var missing []string
	total := 0
	for _, id := range published {
		if counts[id] == 0 {
			missing = append(missing, id)
		}
		total += counts[id]
	}
	if len(missing) > 0 {
		t.Errorf("%d messages were never handled, such as %v", len(missing), missing[:min(5, len(missing))])
	}
	if len(counts) != len(published) {
		t.Errorf("%d distinct IDs handled, want %d", len(counts), len(published))
	}
	t.Logf("%d messages, %d handlings, %d more than once (after SIGKILL)", len(published), total, total-len(counts))
	if s := waitEmpty(t, q, 10*time.Second); s.Dead != 0 {
		t.Errorf("%d dead letters after the workers stopped, want none", s.Dead)
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

// countRecords counts the IDs in the workers' records files. Each ID is
// written by one write(2), so SIGKILL cuts no line short; a line without
// its newline would be ignored.
func countRecords(t *testing.T, files []string) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for l := range strings.SplitAfterSeq(string(b), "\n") {
			if id, ok := strings.CutSuffix(l, "\n"); ok && id != "" {
				counts[id]++
			}
		}
	}
	return counts
}
