package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/crewgo/crew"
	"github.com/crewgo/crew/crewtest"
	"github.com/crewgo/crew/queue/sqlite"
	"github.com/crewgo/crew/queue/sqs"
	"github.com/crewgo/crew/queue/sqs/sqstest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSIGTERMFinishesJobsInFlightAndLosesNothing(t *testing.T) {
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "emails.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q := db.Queue("emails")
	sent := deploy(t, q)

	st, err := q.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(sent) != inFlight || st.Ready != total-inFlight || st.Leased != 0 || st.Dead != 0 {
		t.Fatalf("sent %d, queue %+v: want the %d jobs in flight sent and the other %d ready again", len(sent), st, inFlight, total-inFlight)
	}
}

// On SQS, the same deploy leaves the messages that were not started
// visible at once, rather than leased until their visibility times out.
func TestSIGTERMOnSQSFinishesJobsInFlightAndLosesNothing(t *testing.T) {
	srv := sqstest.Start(t)
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	srv.CreateQueue(t, "emails", 1000)
	q, closeQueue, err := openQueue(t.Context(), "sqs+http://"+srv.Addr+"/"+sqstest.Account+"/emails?region="+sqstest.Region)
	if err != nil {
		t.Fatal(err)
	}
	sent := deploy(t, q)
	if err := closeQueue(); err != nil {
		t.Fatal(err)
	}
	if len(sent) != inFlight {
		t.Fatalf("sent %d e-mails, want the %d in flight", len(sent), inFlight)
	}
	// Every other message is ready again now: a second Receive within a
	// few seconds, far less than the 30-second lease, gets them all.
	check := sqs.New(srv.Client(), srv.Endpoint+"/"+sqstest.Account+"/emails", sqs.WaitTime(time.Second))
	defer check.Close()
	left := map[string]bool{}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for len(left) < total-inFlight {
		msgs, err := check.Receive(ctx, total, time.Minute)
		if err != nil {
			t.Fatalf("after the deploy, %d messages were ready again, want %d: %v", len(left), total-inFlight, err)
		}
		for _, m := range msgs {
			if sent[string(m.Body)] > 0 {
				t.Errorf("%s was sent and is in the queue again", m.Body)
			}
			left[string(m.Body)] = true
		}
	}
}

const (
	total    = 10
	inFlight = 4 // the consumer's Concurrency
)

// deploy publishes total e-mails, runs the worker until inFlight jobs are
// running, sends SIGTERM, lets the jobs finish, and checks that the worker
// exited 0 with none of them cancelled or sent twice. It returns how often
// each e-mail was sent.
func deploy(t *testing.T, q emailQueue) map[string]int {
	t.Helper()
	for i := range total {
		if _, err := q.Publish(context.Background(), fmt.Appendf(nil, "user%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	sent := map[string]int{}
	started := make(chan struct{}, total)
	release := make(chan struct{})
	send := func(ctx context.Context, to string) error {
		started <- struct{}{}
		<-release // the SMTP server answers only after SIGTERM
		if err := ctx.Err(); err != nil {
			return err // a job in flight must not be cancelled by the signal
		}
		mu.Lock()
		sent[to]++
		mu.Unlock()
		return nil
	}
	g := newGroup(q, send, "", slog.New(slog.DiscardHandler))
	p := crewtest.Main(t, g)
	for range inFlight {
		<-started
	}
	p.Signal(syscall.SIGTERM)
	for g.Status()[0].State != crew.StateStopping {
		time.Sleep(time.Millisecond) // until the consumer has been told to stop
	}
	close(release)
	if code := p.Wait(); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	for to, n := range sent {
		if n != 1 {
			t.Errorf("%s sent %d times", to, n)
		}
	}
	return sent
}
