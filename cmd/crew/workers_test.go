package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// sharedWork is one run of the test that three crew work processes share
// the messages of one queue, and lose none when one of them is SIGKILLed.
type sharedWork struct {
	url         string        // the queue, as --queue takes it
	env         []string      // more environment for the workers
	concurrency int           // --concurrency of each worker
	script      string        // the command: a shell script that appends $CREW_MESSAGE_ID to $RECORDS
	killAfter   int           // worker 0 is killed once it has handled this many messages
	patience    time.Duration // how long each wait may take
}

// workProc is one crew work process of a sharedWork run.
type workProc struct {
	cmd     *exec.Cmd
	stderr  lockedBuffer
	records string // the IDs of the messages it handled, one a line
}

// lockedBuffer is a bytes.Buffer that the test may read while the process
// that writes to it runs.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// run starts three workers, SIGKILLs worker 0 once it has handled
// s.killAfter messages (it then holds others, leased, that it will never
// finish), waits until every message of published has been handled, stops
// the other two with SIGTERM, and checks that they drained, that every
// message was handled and that every worker took part. It returns how often
// each message was handled. Workers still running when the test ends are
// killed.
func (s sharedWork) run(t *testing.T, published []string) map[string]int {
	t.Helper()
	crewBin, err := exec.LookPath("crew") // the test binary, as TestMain set it up
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	workers := make([]*workProc, 3)
	for i := range workers {
		w := &workProc{records: filepath.Join(dir, fmt.Sprintf("worker-%d.txt", i))}
		// The lease is short so that the killed worker's messages come
		// back soon.
		w.cmd = exec.Command(crewBin, "work", "--queue", s.url, "--concurrency", strconv.Itoa(s.concurrency),
			"--lease", "2s", "--max-attempts", "1000", "--status-every", "0", "--", "sh", "-c", s.script)
		w.cmd.Env = append(append(os.Environ(), s.env...), "RECORDS="+w.records,
			"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
		w.cmd.Stderr = &w.stderr
		if err := w.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		workers[i] = w
		t.Cleanup(func() {
			if w.cmd.ProcessState == nil {
				_ = w.cmd.Process.Kill()
				_ = w.cmd.Wait()
			}
		})
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(s.patience); !cond(); {
			if time.Now().After(deadline) {
				for i, w := range workers {
					t.Logf("worker %d's log:\n%s", i, w.stderr.String())
				}
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond) // polling a condition
		}
	}

	waitFor("worker 0 to handle messages", func() bool { return len(workers[0].handled()) >= s.killAfter })
	if err := workers[0].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = workers[0].cmd.Wait()
	waitFor("every message to be handled", func() bool { return len(handledBy(workers)) == len(published) })

	for i, w := range workers[1:] {
		if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := w.cmd.Wait(); err != nil {
			t.Errorf("worker %d exited with %v after SIGTERM, want 0; its log:\n%s", i+1, err, w.stderr.String())
		}
	}
	counts := handledBy(workers)
	for _, id := range published {
		if counts[id] == 0 {
			t.Errorf("message %s was never handled", id)
		}
	}
	total := 0
	for i, w := range workers {
		n := len(w.handled())
		if n == 0 {
			t.Errorf("worker %d handled no message: the load was not shared", i)
		}
		t.Logf("worker %d handled %d messages", i, n)
		total += n
	}
	t.Logf("%d messages, %d handlings (a message the killed worker ran but had not acknowledged runs again)", len(published), total)
	return counts
}

// handled returns the IDs of the messages that the worker recorded.
func (w *workProc) handled() []string {
	b, _ := os.ReadFile(w.records)
	return strings.Fields(string(b))
}

// handledBy counts how often the workers handled each message.
func handledBy(workers []*workProc) map[string]int {
	counts := map[string]int{}
	for _, w := range workers {
		for _, id := range w.handled() {
			counts[id]++
		}
	}
	return counts
}
