package sqsqueue_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/crewgo/crew/cmd/crew/internal/backend"
	_ "github.com/crewgo/crew/cmd/crew/internal/backend/sqsqueue"
	"github.com/crewgo/crew/queue/sqs/sqstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestOpenRejectsWrongURLsAsUsageErrors(t *testing.T) {
	for _, raw := range []string{
		"sqs://sqs.us-east-1.amazonaws.com/jobs",
		"sqs://sqs.us-east-1.amazonaws.com/1/jobs/more",
		"sqs:///1/jobs",
		"sqs://sqs.us-east-1.amazonaws.com/1/jobs?queue=x",
		"sqs://sqs.us-east-1.amazonaws.com/1/jobs?wait=1m",
		"sqs://sqs.us-east-1.amazonaws.com/1/jobs?wait=0s", // SQS waits whole seconds; 0 would poll without pause
		"sqs://sqs.us-east-1.amazonaws.com/1/jobs?region=",
		"sqs+http://127.0.0.1:1/1/jobs?region=a&region=b",
	} {
		_, err := backend.Open(context.Background(), raw, false)
		var ue *backend.URLError
		if !errors.As(err, &ue) {
			t.Errorf("Open(%q) = %v, want a *backend.URLError", raw, err)
		}
	}
}

func setEnv(t *testing.T, env []string) {
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

func TestOpenReadsTheQueueAndNeverCreatesOne(t *testing.T) {
	srv := sqstest.Start(t)
	setEnv(t, srv.Env())
	srv.CreateQueue(t, "jobs", 1000)
	base := "sqs+http://" + srv.Addr + "/" + sqstest.Account + "/"
	ctx := context.Background()

	for _, create := range []bool{false, true} {
		_, err := backend.Open(ctx, base+"missing?region=us-east-1", create)
		var ue *backend.URLError
		if err == nil || errors.As(err, &ue) || !strings.Contains(err.Error(), "missing") {
			t.Errorf("Open(missing queue, create=%v) = %v, want an error naming it", create, err)
		}
	}

	b, err := backend.Open(ctx, base+"jobs?region=us-east-1&wait=1s", true)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Name() != "jobs" {
		t.Errorf("Name() = %q, want jobs", b.Name())
	}
	if _, err := b.Publish(ctx, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if qs, err := b.Queues(ctx); err != nil || len(qs) != 1 || qs[0] != "jobs" {
		t.Errorf("Queues = %v, %v; want [jobs]", qs, err)
	}
	if _, err := b.Stats(ctx, "jobs"); err != nil {
		t.Errorf("Stats: %v", err)
	}
	if _, err := b.Stats(ctx, "other"); err == nil {
		t.Error("Stats of another queue succeeded, want an error")
	}
	if dead, err := b.Dead(ctx); err != nil || len(dead) != 0 {
		t.Errorf("Dead = %v, %v; want none", dead, err)
	}
}
