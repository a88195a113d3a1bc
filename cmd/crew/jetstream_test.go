package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/crewgo/crew/queue/jetstream"
)

// startNATS runs a NATS server with JetStream in the test process, on
// 127.0.0.1, with file storage in a temporary directory, until the test
// ends. The crew processes reach it over TCP like any other server.
func startNATS(t *testing.T) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("the NATS server did not start")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// TestWorkOnJetStreamSharesTheLoadAndLosesNothingWhenOneWorkerIsKilled
// runs three crew work processes on one JetStream queue of 3,000 messages,
// SIGKILLs one of them mid-run, and checks that every message is handled,
// that all three took part, that none is dead, and that the survivors
// drain on SIGTERM.
func TestWorkOnJetStreamSharesTheLoadAndLosesNothingWhenOneWorkerIsKilled(t *testing.T) {
	crewBin, err := exec.LookPath("crew") // the test binary, as TestMain set it up
	if err != nil {
		t.Fatal(err)
	}
	srv := startNATS(t)
	// The lease is short so that the killed worker's messages come back
	// soon; the consumer's AckWait matches it.
	url := srv.ClientURL() + "?queue=jobs&ack_wait=2s"
	q, err := jetstream.Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	const n = 3000
	published := make([]string, n)
	for i := range published {
		if published[i], err = q.Publish(t.Context(), []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}

	dir := t.TempDir()
	type worker struct {
		cmd     *exec.Cmd
		stderr  bytes.Buffer
		records string
	}
	workers := make([]*worker, 3)
	for i := range workers {
		w := &worker{records: filepath.Join(dir, fmt.Sprintf("worker-%d.txt", i))}
		// The command appends the message's ID to the worker's records
		// file.
		w.cmd = exec.Command(crewBin, "work", "--queue", url, "--concurrency", "8", "--lease", "2s",
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
		for deadline := time.Now().Add(90 * time.Second); !cond(); {
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
	if s, err := q.Stats(t.Context()); err != nil || s.Dead != 0 {
		t.Errorf("Stats = %+v, %v; want no dead letters", s, err)
	}
	total := 0
	for _, c := range counts {
		total += c
	}
	t.Logf("%d messages, %d handlings (a message the killed worker ran but had not acknowledged runs again)", n, total)
}
