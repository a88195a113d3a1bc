package sqs_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
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

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/sqs"
)

// The crash tests run this test binary again as a consumer: with
// crashChildEnv set to "MODE|URL|RECORDS|SEED", TestMain runs crashChild
// instead of the tests.
const crashChildEnv = "CREW_SQS_CRASH_CHILD"

const (
	crashMessages = 600
	crashLease    = 2 * time.Second // also how long a killed child's messages stay leased
)

// crashChild consumes the queue at URL until SIGTERM, appending the ID of
// each message it handles to RECORDS (synced before the ack). MODE "work"
// handles each message in 1-10ms with 4 handlers; MODE "poll" has one
// handler, long polls of 20 seconds and a lease of a minute, and prints
// "polling" as it sends each. It prints "ready" when it starts receiving, "drained" when the consumer has
// returned, and exits 0 after a complete drain.
func crashChild(spec string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	parts := strings.Split(spec, "|")
	if len(parts) != 4 {
		fmt.Fprintf(os.Stderr, "crash child: bad spec %q\n", spec)
		return 2
	}
	mode, rawURL, recordsPath := parts[0], parts[1], parts[2]
	seed, _ := strconv.ParseUint(parts[3], 10, 64)
	rng := rand.New(rand.NewPCG(seed, uint64(os.Getpid())))
	var rngMu sync.Mutex

	var q *sqs.Queue
	var hangUps *hangUpTransport
	if mode == "poll" {
		// The default 20-second long polls, through a transport that
		// keeps a cancelled request open as SQS does.
		hangUps = &hangUpTransport{}
		q = sqs.New(clientVia(rawURL, hangUps), "http://"+strings.TrimPrefix(strings.Split(rawURL, "?")[0], "sqs+http://"))
	} else {
		var err error
		q, err = sqs.Open(context.Background(), rawURL, sqs.WaitTime(time.Second))
		if err != nil {
			fmt.Fprintln(os.Stderr, "crash child:", err)
			return 2
		}
	}
	records, err := os.OpenFile(recordsPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		return 2
	}
	defer records.Close()
	var recordMu sync.Mutex

	c := &queue.Consumer{
		Source:       &announcer{Source: q},
		Concurrency:  4,
		Lease:        crashLease,
		MaxAttempts:  -1, // a SIGKILL costs a delivery; none of that is a failure
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
	if mode == "poll" {
		c.Concurrency, c.Lease = 1, time.Minute
	}
	err = c.Run(ctx)
	fmt.Println("drained")
	if cerr := q.Close(); err == nil {
		err = cerr
	}
	if hangUps != nil {
		hangUps.wait() // what a cancelled request got is lost, as on SQS
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash child: consumer:", err)
		return 1
	}
	return 0
}

// hangUpTransport sends each request on without its context's
// cancellation, as SQS goes on with a long poll whose client hung up: when
// messages arrive, SQS hands them to the abandoned request and they stay
// leased, lost to everyone, for their visibility timeout. (The emulator
// instead notices the hang-up and keeps them, which would hide a consumer
// that strands messages.)
type hangUpTransport struct {
	pending sync.WaitGroup
}

func (h *hangUpTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	type result struct {
		resp *http.Response
		err  error
	}
	if strings.HasSuffix(req.Header.Get("X-Amz-Target"), ".ReceiveMessage") {
		fmt.Println("polling")
	}
	// The request goes on with a body of its own: the caller closes its
	// body when it gives up.
	fwd := req.Clone(context.WithoutCancel(req.Context()))
	if req.Body != nil {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		fwd.Body = io.NopCloser(bytes.NewReader(body))
	}
	done := make(chan result, 1)
	h.pending.Add(1)
	go func() {
		defer h.pending.Done()
		resp, err := http.DefaultTransport.RoundTrip(fwd)
		done <- result{resp, err}
	}()
	select {
	case r := <-done:
		return r.resp, r.err
	case <-req.Context().Done():
		h.pending.Add(1)
		go func() {
			defer h.pending.Done()
			if r := <-done; r.resp != nil {
				_, _ = io.Copy(io.Discard, r.resp.Body)
				_ = r.resp.Body.Close()
			}
		}()
		return nil, req.Context().Err()
	}
}

// wait waits for the requests that were cancelled to be answered.
func (h *hangUpTransport) wait() { h.pending.Wait() }

// clientVia returns an SQS client for the emulator of an sqs+http URL that
// sends its requests through rt.
func clientVia(rawURL string, rt http.RoundTripper) *awssqs.Client {
	host := strings.Split(strings.TrimPrefix(rawURL, "sqs+http://"), "/")[0]
	return awssqs.New(awssqs.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String("http://" + host),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		HTTPClient:   &http.Client{Transport: rt},
	})
}

// announcer prints "ready" when the consumer first receives.
type announcer struct {
	queue.Source
	once sync.Once
}

func (a *announcer) Receive(ctx context.Context, max int, lease time.Duration) ([]*queue.Message, error) {
	a.once.Do(func() { fmt.Println("ready") })
	return a.Source.Receive(ctx, max, lease)
}

// child is one crash child process.
type child struct {
	cmd     *exec.Cmd
	stdout  *bufio.Reader
	stderr  bytes.Buffer
	records string
}

func startChild(t *testing.T, mode, queueURL, records string, seed uint64) *child {
	t.Helper()
	raw := "sqs+http://" + strings.TrimPrefix(queueURL, "http://") + "?region=us-east-1"
	c := &child{records: records}
	c.cmd = exec.Command(os.Args[0], "-test.run=^$")
	c.cmd.Env = append(append(os.Environ(), server.Env()...), fmt.Sprintf("%s=%s|%s|%s|%d", crashChildEnv, mode, raw, records, seed))
	c.cmd.Stderr = &c.stderr
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.stdout = bufio.NewReader(out)
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // a child that a failed test left running
		if c.cmd.ProcessState == nil {
			_ = c.cmd.Process.Kill()
			_ = c.cmd.Wait()
		}
	})
	if line := c.line(); line != "ready" {
		_ = c.cmd.Process.Kill()
		_ = c.cmd.Wait()
		t.Fatalf("the child did not start (%q): %s", line, c.stderr.String())
	}
	return c
}

// line reads the child's next line of output.
func (c *child) line() string {
	l, _ := c.stdout.ReadString('\n')
	return strings.TrimSuffix(l, "\n")
}

// TestCrashSafety runs consumers in child processes on one SQS queue and
// stops them: first with SIGTERM (a deploy), then with SIGKILL (a crash),
// restarting each time, and finally lets one run until every message has
// been handled. Each stop comes once a further share of the messages has
// been handled, plus a random moment, so that it hits work in progress
// however fast the machine. Every message must be handled at least once;
// none twice while only SIGTERM stopped the children.
func TestCrashSafety(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()
	q := newQueue(t)
	ctx := t.Context()

	bodies := make([][]byte, crashMessages)
	for i := range bodies {
		bodies[i] = []byte(strconv.Itoa(i))
	}
	published, err := q.PublishBatch(ctx, bodies)
	if err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(90 * time.Second)
	roundFile := func(n int) string { return filepath.Join(dir, fmt.Sprintf("round-%d.txt", n)) }
	var rounds [][]string
	var signals []syscall.Signal
	// at returns a wait until percent of the messages have been handled,
	// in the rounds so far and the one running, then for a random moment.
	at := func(percent int) func() {
		return func() {
			for handledIn(t, roundFile, len(rounds)+1) < crashMessages*percent/100 {
				if time.Now().After(deadline) {
					t.Fatalf("round %d: only %d messages handled before the deadline", len(rounds), handledIn(t, roundFile, len(rounds)+1))
				}
				time.Sleep(10 * time.Millisecond) // polling a condition
			}
			time.Sleep(time.Duration(rng.Int64N(int64(50 * time.Millisecond)))) // the random moment to stop at
		}
	}
	run := func(sig syscall.Signal, until func()) {
		t.Helper()
		n := len(rounds)
		c := startChild(t, "work", q.URL(), roundFile(n), seed+uint64(n))
		until()
		if err := c.cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		go io.Copy(io.Discard, c.stdout)
		err := c.cmd.Wait()
		switch {
		case sig == syscall.SIGTERM && err != nil:
			t.Fatalf("round %d: the child exited with %v after SIGTERM, want a clean drain; its log:\n%s", n, err, c.stderr.String())
		case sig == syscall.SIGKILL && !killed(err):
			t.Fatalf("round %d: the child exited with %v before SIGKILL; its log:\n%s", n, err, c.stderr.String())
		}
		rounds = append(rounds, readRecords(t, c.records))
		signals = append(signals, sig)
	}

	for _, percent := range []int{10, 20, 30} {
		run(syscall.SIGTERM, at(percent))
	}
	for id, n := range countIDs(rounds) {
		if n > 1 {
			t.Errorf("message %s was handled %d times in SIGTERM-only rounds", id, n)
		}
	}
	for _, percent := range []int{45, 60, 75} {
		run(syscall.SIGKILL, at(percent))
	}
	// The last child runs until every message has been handled: a killed
	// child's messages come back when their leases run out.
	run(syscall.SIGTERM, at(100))

	counts := countIDs(rounds)
	total := 0
	for i, r := range rounds {
		total += len(r)
		t.Logf("round %d (%v): handled %d", i, signals[i], len(r))
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
	t.Logf("%d messages, %d handlings, %d handled more than once (after SIGKILL)", len(published), total, total-len(counts))
	// Nothing is left: not ready, not leased by a drained child.
	expectEmpty(t, q)
}

// handledIn counts the distinct messages recorded in the first n rounds'
// files.
func handledIn(t *testing.T, file func(round int) string, n int) int {
	t.Helper()
	seen := map[string]bool{}
	for i := range n {
		for _, id := range readRecords(t, file(i)) {
			seen[id] = true
		}
	}
	return len(seen)
}

// countIDs counts how often each message was handled in rounds.
func countIDs(rounds [][]string) map[string]int {
	counts := map[string]int{}
	for _, r := range rounds {
		for _, id := range r {
			counts[id]++
		}
	}
	return counts
}

// TestSIGTERMDuringLongPollStrandsNothing stops a consumer while it waits
// in a 20-second long poll, then publishes: the poll, abandoned but still
// open at SQS (see hangUpTransport), receives the message, and the
// stopping consumer must make it visible again at once rather than leave
// it leased for its one-minute lease.
func TestSIGTERMDuringLongPollStrandsNothing(t *testing.T) {
	q := newQueue(t)
	c := startChild(t, "poll", q.URL(), filepath.Join(t.TempDir(), "records.txt"), 1)
	if line := c.line(); line != "polling" {
		t.Fatalf("the child said %q, want polling; its log:\n%s", line, c.stderr.String())
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if line := c.line(); line != "drained" {
		t.Fatalf("the child said %q after SIGTERM, want drained; its log:\n%s", line, c.stderr.String())
	}
	id, err := q.Publish(t.Context(), []byte("arrives during the abandoned poll"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("the child exited with %v, want a clean drain; its log:\n%s", err, c.stderr.String())
	}
	if waited := time.Since(start); waited > 10*time.Second {
		t.Errorf("the child took %v to exit after the publish, want it to exit as its poll was answered", waited)
	}
	if handled := readRecords(t, c.records); len(handled) != 0 {
		t.Fatalf("the stopping child handled %v", handled)
	}
	// Visible at once, not a minute later.
	msgs := receiveWithin(t, q, 1)
	if len(msgs) != 1 || msgs[0].ID != id {
		t.Fatalf("received %v, want the message the abandoned poll got", bodies(msgs))
	}
	if err := q.Ack(t.Context(), msgs...); err != nil {
		t.Fatal(err)
	}
}

// expectEmpty checks that no message is ready or leased.
func expectEmpty(t *testing.T, q *sqs.Queue) {
	t.Helper()
	s, err := q.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if s.Ready+s.Leased+s.Delayed != 0 {
		t.Errorf("Stats %+v, want nothing ready, leased or delayed", s)
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

// readRecords returns the IDs in a child's records file, ignoring a last
// line that a SIGKILL cut short.
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
	for l := range strings.SplitAfterSeq(string(b), "\n") {
		if id, ok := strings.CutSuffix(l, "\n"); ok && id != "" {
			ids = append(ids, id)
		}
	}
	return ids
}
