package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
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
	crewBin, err := exec.LookPath("crew") // the test binary, as TestMain set it up
	if err != nil {
		t.Fatal(err)
	}
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

	dir := t.TempDir()
	queueURL := dbURL + "&queue=jobs&poll_interval=50ms"
	type worker struct {
		cmd     *exec.Cmd
		stderr  bytes.Buffer
		records string
	}
	workers := make([]*worker, 3)
	for i := range workers {
		w := &worker{records: filepath.Join(dir, fmt.Sprintf("worker-%d.txt", i))}
		// The lease is short so that the killed worker's messages come
		// back soon; the command appends the message's ID to the
		// worker's records file.
		w.cmd = exec.Command(crewBin, "work", "--queue", queueURL, "--concurrency", "4", "--lease", "2s",
			"--max-attempts", "1000", "--status-every", "0", "--",
			"sh", "-c", `echo "$CREW_MESSAGE_ID" >> "$RECORDS"`)
		w.cmd.Env = append(os.Environ(), "RECORDS="+w.records,
			"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
		w.cmd.Stderr = &w.stderr
		if err := w.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		workers[i] = w
	}
	defer func() {
		for _, w := range workers {
			if w.cmd.ProcessState == nil {
				_ = w.cmd.Process.Kill()
				_ = w.cmd.Wait()
			}
		}
	}()
	handled := func() map[string]int {
		counts := map[string]int{}
		for _, w := range workers {
			b, _ := os.ReadFile(w.records)
			for id := range strings.FieldsSeq(string(b)) {
				counts[id]++
			}
		}
		return counts
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Minute); !cond(); {
			if time.Now().After(deadline) {
				for i, w := range workers {
					t.Logf("worker %d's log:\n%s", i, w.stderr.String())
				}
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond) // polling a condition
		}
	}

	// Kill worker 0 once it has handled some messages: it holds others,
	// leased, that it will never finish.
	waitFor("worker 0 to handle messages", func() bool {
		b, _ := os.ReadFile(workers[0].records)
		return bytes.Count(b, []byte("\n")) >= 100
	})
	if err := workers[0].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = workers[0].cmd.Wait()
	waitFor("every message to be handled", func() bool { return len(handled()) == n })

	for i, w := range workers[1:] {
		if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := w.cmd.Wait(); err != nil {
			t.Errorf("worker %d exited with %v after SIGTERM, want 0; its log:\n%s", i+1, err, w.stderr.String())
		}
	}
	counts := handled()
	for _, id := range published {
		if counts[id] == 0 {
			t.Errorf("message %s was never handled", id)
		}
	}
	for i, w := range workers {
		b, _ := os.ReadFile(w.records)
		lines := bytes.Count(b, []byte("\n"))
		if lines == 0 {
			t.Errorf("worker %d handled no message: the load was not shared", i)
		}
		t.Logf("worker %d handled %d messages", i, lines)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if s, err := q.Stats(ctx); err != nil || s.Dead != 0 || s.Ready+s.Delayed != 0 {
		t.Errorf("Stats after the run: %+v, %v; want nothing ready, delayed or dead", s, err)
	}
}
