package queuetest

import (
	"bufio"
	"bytes"
	"cmp"
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
)

// Crash is a crash test of a durable backend: it runs consumers in child
// processes (the test binary run again) on one queue and stops them while
// they work, first with SIGTERM, as a deploy does, then with SIGKILL, as a
// crash does, starting another in each one's place. Each handler appends
// the ID of its message to a file of its process and syncs it before the
// ack, so the test knows what was handled even when the process dies.
// Nothing may be handled twice while only SIGTERM stopped consumers; every
// message must be handled at least once; and once the queue has drained,
// nothing may be ready, leased, delayed or dead.
//
// The same Crash value serves both sides: TestMain calls Child, which
// turns the binary into a consumer when Env is set, and a test calls Run
// on a copy with the parent's hooks (Arg, Publish, Depth) filled in.
type Crash struct {
	// Env names the environment variable that makes the test binary a
	// consumer child; one per package, such as "CREW_SQLITE_CRASH_CHILD".
	Env string
	// Open, in the child, opens the queue named by arg (the parent's
	// Arg) and returns it with the function that closes it.
	Open func(ctx context.Context, arg string) (queue.Source, func() error, error)
	// Concurrency and Lease are the child consumer's. The lease is also
	// how long a killed child's messages stay leased.
	Concurrency int
	Lease       time.Duration
	// Job is the mean time a handler takes: each takes a random time
	// between Job/2 and 3*Job/2.
	Job time.Duration

	// Arg, in the parent, tells the child which queue to open (a path, a
	// URL); it must not contain a newline.
	Arg string
	// Publish, in the parent, publishes the bodies and returns their IDs.
	Publish func(ctx context.Context, bodies [][]byte, opts ...queue.PublishOption) ([]string, error)
	// Depth, in the parent, counts the queue's messages by state.
	Depth func(ctx context.Context) (queue.Depth, error)
	// Messages is how many messages the test publishes.
	Messages int
	// Children is how many consumers run at once (at least 1).
	Children int
	// Terms and Kills are the stops, each the share (percent) of the
	// messages that must have been handled before the busiest child is
	// stopped, a random moment later, with SIGTERM (Terms, first) or
	// SIGKILL (Kills, after). Tying each stop to progress makes it hit
	// work in progress however fast the machine.
	Terms, Kills []int
	// Timeout bounds the whole test (default one minute).
	Timeout time.Duration
}

// Child makes the test binary a crash test's consumer when c.Env is set:
// it consumes the queue until SIGTERM, then drains, and returns the exit
// code for os.Exit (0 after a complete drain) and true. When c.Env is not
// set it returns 0 and false at once. Call it first in TestMain:
//
//	if code, ok := crash.Child(); ok {
//		os.Exit(code)
//	}
func (c *Crash) Child() (code int, ok bool) {
	spec, ok := os.LookupEnv(c.Env)
	if !ok {
		return 0, false
	}
	// First, so that no SIGTERM finds the default action (exit at once).
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := c.child(ctx, spec); err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		return 1, true
	}
	return 0, true
}

// child runs the consumer of spec, "RECORDS|SEED|ARG".
func (c *Crash) child(ctx context.Context, spec string) (err error) {
	parts := strings.SplitN(spec, "|", 3)
	if len(parts) != 3 {
		return fmt.Errorf("bad spec %q", spec)
	}
	seed, _ := strconv.ParseUint(parts[1], 10, 64)
	src, closeSrc, err := c.Open(ctx, parts[2])
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, closeSrc()) }()
	records, err := os.OpenFile(parts[0], os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer records.Close()

	var mu sync.Mutex // the random source and the records file
	rng := rand.New(rand.NewPCG(seed, uint64(os.Getpid())))
	con := &queue.Consumer{
		Source:      src,
		Concurrency: c.Concurrency,
		Lease:       c.Lease,
		// Each SIGKILL may cost a message a delivery that it never
		// finished; none of that is a failure.
		MaxAttempts:  -1,
		DrainTimeout: 20 * time.Second,
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Handler: func(ctx context.Context, m *queue.Message) error {
			mu.Lock()
			d := c.Job/2 + time.Duration(rng.Int64N(int64(c.Job)+1))
			mu.Unlock()
			time.Sleep(d) // the job
			mu.Lock()
			defer mu.Unlock()
			// One write(2) per ID, so that a SIGKILL cuts no line short.
			if _, err := records.WriteString(m.ID + "\n"); err != nil {
				return err
			}
			return records.Sync()
		},
	}
	fmt.Println("ready")
	return con.Run(ctx)
}

// crashChild is one consumer process of Run.
type crashChild struct {
	cmd     *exec.Cmd
	stderr  bytes.Buffer
	records string
}

// Run runs the crash test: it publishes c.Messages messages, starts
// c.Children consumers, stops them as c.Terms and c.Kills say, waits until
// every message has been handled and the queue is empty, stops the last
// consumers with SIGTERM, and checks what they handled. It fails t if a
// child does not drain cleanly after SIGTERM, and kills any child that a
// failed test leaves behind.
func (c Crash) Run(t *testing.T) {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	ctx := t.Context()
	deadline := time.Now().Add(cmp.Or(c.Timeout, time.Minute))
	bodies := make([][]byte, c.Messages)
	for i := range bodies {
		bodies[i] = []byte(strconv.Itoa(i))
	}
	published, err := c.Publish(ctx, bodies)
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	var files []string
	start := func() *crashChild {
		files = append(files, filepath.Join(dir, fmt.Sprintf("child-%d.txt", len(files))))
		return c.start(t, files[len(files)-1], seed+uint64(len(files)))
	}
	running := make([]*crashChild, max(c.Children, 1))
	for i := range running {
		running[i] = start()
	}
	replace := func(percent int, sig syscall.Signal) {
		for len(countRecords(t, files)) < c.Messages*percent/100 {
			if time.Now().After(deadline) {
				t.Fatalf("only %d messages handled before the deadline", len(countRecords(t, files)))
			}
			time.Sleep(10 * time.Millisecond) // polling a condition
		}
		time.Sleep(time.Duration(rng.Int64N(int64(50 * time.Millisecond)))) // the random moment to stop at
		if n := len(countRecords(t, files)); n >= c.Messages {
			t.Fatalf("every message was handled before the stop at %d%%, which would prove nothing: make Job longer", percent)
		}
		// The busiest child, so that the stop hits work in progress even
		// when one consumer takes most of the messages.
		i, most := 0, -1
		for j, ch := range running {
			if n := len(countRecords(t, []string{ch.records})); n > most {
				i, most = j, n
			}
		}
		running[i].stop(t, sig)
		t.Logf("%v at %d%%: the consumer stopped had handled %d", sig, percent, most)
		running[i] = start()
	}
	for _, p := range c.Terms {
		replace(p, syscall.SIGTERM)
	}
	for id, n := range countRecords(t, files) {
		if n > 1 {
			t.Errorf("message %s was handled %d times while only SIGTERM stopped consumers", id, n)
		}
	}
	for _, p := range c.Kills {
		replace(p, syscall.SIGKILL)
	}
	// A killed child's messages come back when their leases run out, to
	// the children still running.
	c.waitDrained(t, files, deadline)
	for _, ch := range running {
		ch.stop(t, syscall.SIGTERM)
	}
	c.check(t, published, countRecords(t, files))
}

// waitDrained waits until every message has been handled and the queue
// holds nothing ready, leased or delayed.
func (c *Crash) waitDrained(t *testing.T, files []string, deadline time.Time) {
	t.Helper()
	for {
		d, err := c.Depth(t.Context())
		n := len(countRecords(t, files))
		if err == nil && n >= c.Messages && d.Ready+d.Leased+d.Delayed == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not drained before the deadline: %d messages handled, depth %+v, %v", n, d, err)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition
	}
}

// check checks that every published message was handled, that no other
// was, and that the queue is empty.
func (c *Crash) check(t *testing.T, published []string, counts map[string]int) {
	t.Helper()
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
	// A backend's counts may trail its acks by a moment.
	patience := time.Now().Add(10 * time.Second)
	for {
		d, err := c.Depth(t.Context())
		if err == nil && d == (queue.Depth{}) {
			return
		}
		if time.Now().After(patience) {
			t.Errorf("depth after the last consumer stopped: %+v, %v; want nothing ready, leased, delayed or dead", d, err)
			return
		}
		time.Sleep(20 * time.Millisecond) // polling a condition
	}
}

// start starts a consumer process that records in records, and waits until
// it is about to consume.
func (c *Crash) start(t *testing.T, records string, seed uint64) *crashChild {
	t.Helper()
	ch := &crashChild{records: records}
	ch.cmd = exec.Command(os.Args[0], "-test.run=^$")
	ch.cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%d|%s", c.Env, records, seed, c.Arg))
	ch.cmd.Stderr = &ch.stderr
	stdout, err := ch.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // a child that a failed test left running
		if ch.cmd.ProcessState == nil {
			_ = ch.cmd.Process.Kill()
			_ = ch.cmd.Wait()
		}
	})
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != "ready\n" {
		_ = ch.cmd.Process.Kill()
		_ = ch.cmd.Wait()
		t.Fatalf("a consumer process did not start: %s", ch.stderr.String())
	}
	return ch
}

// stop signals the child and checks how it ended: a clean drain after
// SIGTERM, death by the signal after SIGKILL.
func (ch *crashChild) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := ch.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	err := ch.cmd.Wait()
	var ee *exec.ExitError
	killed := errors.As(err, &ee) && ee.ProcessState.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL
	switch {
	case sig == syscall.SIGTERM && err != nil:
		t.Fatalf("a consumer exited with %v after SIGTERM, want a clean drain; its log:\n%s", err, ch.stderr.String())
	case sig == syscall.SIGKILL && !killed:
		t.Fatalf("a consumer exited with %v before SIGKILL; its log:\n%s", err, ch.stderr.String())
	}
}

// countRecords counts the IDs in the children's records files. A line
// without its newline (none is written so) would be ignored.
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
