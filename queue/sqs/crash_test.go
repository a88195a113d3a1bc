package sqs_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/queuetest"
	"github.com/crewgo/crew/queue/sqs"
)

// crash is the crash test's consumer, run in child processes; its argument
// is the queue's sqs+http URL.
var crash = queuetest.Crash{
	Env: "CREW_SQS_CRASH_CHILD",
	Open: func(ctx context.Context, rawURL string) (queue.Source, func() error, error) {
		q, err := sqs.Open(ctx, rawURL, sqs.WaitTime(time.Second))
		if err != nil {
			return nil, nil, err
		}
		return q, q.Close, nil
	},
	Concurrency: 4,
	Lease:       2 * time.Second,
	Job:         5 * time.Millisecond,
}

// TestCrashSafety runs a consumer in a child process on one SQS queue and
// stops it while it works: three times with SIGTERM (a deploy), then three
// times with SIGKILL (a crash), starting another each time, until the
// queue is empty.
func TestCrashSafety(t *testing.T) {
	for _, kv := range server.Env() { // the children's credentials
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	q := newQueue(t)
	c := crash
	c.Arg, c.Publish, c.Depth = sqsHTTP(q.URL()), q.PublishBatch, q.Stats
	c.Messages, c.Children, c.Timeout = 600, 1, 90*time.Second
	c.Terms, c.Kills = []int{10, 20, 30}, []int{45, 60, 75}
	c.Run(t)
}

// sqsHTTP returns the crew URL of the emulator's queue at queueURL.
func sqsHTTP(queueURL string) string {
	return "sqs+http://" + strings.TrimPrefix(queueURL, "http://") + "?region=us-east-1"
}

// The long-poll test runs this test binary again as a consumer: with
// pollChildEnv set to "URL|RECORDS", TestMain runs pollChild instead of
// the tests.
const pollChildEnv = "CREW_SQS_POLL_CHILD"

// pollChild consumes the queue at URL until SIGTERM with one handler, long
// polls of 20 seconds and a lease of a minute, appending the ID of each
// message it handles to RECORDS. It prints "ready" when it starts
// receiving, "polling" as it sends each poll, "drained" when the consumer
// has returned, and exits 0 after a complete drain.
func pollChild(spec string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	rawURL, recordsPath, _ := strings.Cut(spec, "|")
	// The default 20-second long polls, through a transport that keeps a
	// cancelled request open as SQS does.
	hangUps := &hangUpTransport{}
	q := sqs.New(clientVia(rawURL, hangUps), "http://"+strings.TrimPrefix(strings.Split(rawURL, "?")[0], "sqs+http://"))
	records, err := os.OpenFile(recordsPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "poll child:", err)
		return 2
	}
	defer records.Close()
	c := &queue.Consumer{
		Source:       &announcer{Source: q},
		Concurrency:  1,
		Lease:        time.Minute,
		DrainTimeout: 20 * time.Second,
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Handler: func(ctx context.Context, m *queue.Message) error {
			_, err := records.WriteString(m.ID + "\n")
			return err
		},
	}
	err = c.Run(ctx)
	fmt.Println("drained")
	err = errors.Join(err, q.Close())
	hangUps.wait() // what a cancelled request got is lost, as on SQS
	if err != nil {
		fmt.Fprintln(os.Stderr, "poll child: consumer:", err)
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

// child is one poll child process.
type child struct {
	cmd     *exec.Cmd
	stdout  *bufio.Reader
	stderr  bytes.Buffer
	records string
}

func startPollChild(t *testing.T, queueURL, records string) *child {
	t.Helper()
	c := &child{records: records}
	c.cmd = exec.Command(os.Args[0], "-test.run=^$")
	c.cmd.Env = append(append(os.Environ(), server.Env()...), fmt.Sprintf("%s=%s|%s", pollChildEnv, sqsHTTP(queueURL), records))
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

// TestSIGTERMDuringLongPollStrandsNothing stops a consumer while it waits
// in a 20-second long poll, then publishes: the poll, abandoned but still
// open at SQS (see hangUpTransport), receives the message, and the
// stopping consumer must make it visible again at once rather than leave
// it leased for its one-minute lease.
func TestSIGTERMDuringLongPollStrandsNothing(t *testing.T) {
	q := newQueue(t)
	c := startPollChild(t, q.URL(), filepath.Join(t.TempDir(), "records.txt"))
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
