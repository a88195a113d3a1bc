package natsqueue_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/goleak"

	"github.com/crewgo/crew/cmd/crew/internal/backend"
	_ "github.com/crewgo/crew/cmd/crew/internal/backend/natsqueue"
	"github.com/crewgo/crew/queue"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func startNATS(t *testing.T) string {
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
	return s.ClientURL()
}

func TestOpenRejectsWrongURLsAsUsageErrors(t *testing.T) {
	for _, raw := range []string{
		"nats://127.0.0.1:1?queue=a&queue=b",
		"nats://127.0.0.1:1?topic=a",
		"nats://127.0.0.1:1?queue=a.b",
		"nats://127.0.0.1:1?ack_wait=10ms",
		"nats://127.0.0.1:1?tls_cert=c.pem",
	} {
		_, err := backend.Open(context.Background(), raw, true)
		var ue *backend.URLError
		if !errors.As(err, &ue) {
			t.Errorf("Open(%q) = %v, want a *backend.URLError", raw, err)
		}
	}
}

func TestOpenCreatesOnlyWhenAllowed(t *testing.T) {
	url := startNATS(t)
	ctx := t.Context()
	_, err := backend.Open(ctx, url+"?queue=jobs", false)
	var ue *backend.URLError
	if err == nil || errors.As(err, &ue) || !strings.Contains(err.Error(), "CREW_jobs") {
		t.Fatalf("Open(missing queue, create=false) = %v, want an error naming its stream", err)
	}
	b, err := backend.Open(ctx, url+"?queue=jobs", true)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Name() != "jobs" {
		t.Errorf("Name() = %q, want jobs", b.Name())
	}
	if qs, err := b.Queues(ctx); err != nil || len(qs) != 0 {
		t.Errorf("Queues of an empty store = %v, %v; want none", qs, err)
	}
	if _, err := b.Publish(ctx, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	again, err := backend.Open(ctx, url+"?queue=jobs", false)
	if err != nil {
		t.Fatalf("Open(existing queue, create=false): %v", err)
	}
	defer again.Close()
}

func TestStatsQueuesAndDeadLetters(t *testing.T) {
	url := startNATS(t)
	ctx := t.Context()
	emails, err := backend.Open(ctx, url+"?queue=emails", true)
	if err != nil {
		t.Fatal(err)
	}
	defer emails.Close()
	reports, err := backend.Open(ctx, url+"?queue=reports", true)
	if err != nil {
		t.Fatal(err)
	}
	defer reports.Close()
	for range 2 {
		if _, err := reports.Publish(ctx, []byte("r")); err != nil {
			t.Fatal(err)
		}
	}
	id, err := emails.Publish(ctx, []byte("poison"))
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := emails.Receive(ctx, 1, time.Minute)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Receive: %v, %v", msgs, err)
	}
	if err := emails.DeadLetter(ctx, msgs[0], errors.New("bad address")); err != nil {
		t.Fatal(err)
	}

	if qs, err := emails.Queues(ctx); err != nil || !slices.Equal(qs, []string{"emails", "reports"}) {
		t.Errorf("Queues = %v, %v; want [emails reports]", qs, err)
	}
	if s, err := statsOf(t, emails, "reports", queue.Depth{Ready: 2}); err != nil || s != (queue.Depth{Ready: 2}) {
		t.Errorf("Stats(reports) = %+v, %v; want 2 ready", s, err)
	}
	if s, err := statsOf(t, emails, "emails", queue.Depth{Dead: 1}); err != nil || s != (queue.Depth{Dead: 1}) {
		t.Errorf("Stats(emails) = %+v, %v; want 1 dead", s, err)
	}
	if _, err := emails.Stats(ctx, "missing"); err == nil {
		t.Error("Stats of a queue that does not exist succeeded, want an error")
	}
	dead, err := emails.Dead(ctx)
	if err != nil || len(dead) != 1 || dead[0].Message.ID != id || dead[0].Reason != "bad address" {
		t.Fatalf("Dead = %+v, %v; want %s with its reason", dead, err, id)
	}
	if n, err := emails.Redrive(ctx, id); err != nil || n != 1 {
		t.Errorf("Redrive = %d, %v; want 1", n, err)
	}
	if s, _ := statsOf(t, emails, "emails", queue.Depth{Ready: 1}); s != (queue.Depth{Ready: 1}) {
		t.Errorf("Stats after Redrive = %+v, want 1 ready", s)
	}
}

// statsOf returns b's Stats of the named queue once they equal want, or the last
// ones after ten seconds. The server updates its consumer's count of ready
// messages a moment after it acknowledged a publish, so a count read at
// once can trail it.
func statsOf(t *testing.T, b backend.Backend, name string, want queue.Depth) (queue.Depth, error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := b.Stats(t.Context(), name)
		if err != nil || s == want || time.Now().After(deadline) {
			return s, err
		}
		time.Sleep(20 * time.Millisecond) // polling a condition
	}
}
