package ui

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/crewgo/crew/cmd/crew/internal/backend"
	_ "github.com/crewgo/crew/cmd/crew/internal/backend/natsqueue"
	_ "github.com/crewgo/crew/cmd/crew/internal/backend/pgqueue"
	_ "github.com/crewgo/crew/cmd/crew/internal/backend/sqsqueue"
	"github.com/crewgo/crew/queue/postgres/pgtest"
	"github.com/crewgo/crew/queue/sqs/sqstest"
)

// The dashboard knows backends only through backend.Backend: these tests
// run its handlers on the PostgreSQL, SQS and JetStream backends too, against real
// servers that the tests start.

func openURL(t *testing.T, raw string) backend.Backend {
	t.Helper()
	b, err := backend.Open(context.Background(), raw, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// dashboardRedrivesOn checks the dashboard's counts, dead letters and
// redrive on the queue "emails" that open opens.
func dashboardRedrivesOn(t *testing.T, open func(name string) backend.Backend) {
	t.Helper()
	ids := fillWith(t, open("emails"), false, 1, "to: ada@example.com", "to: grace@example.com")
	s, ts := newServer(t, open, "emails", Options{})
	if got := countsOf(t, ts.URL, "emails", [4]int{1, 0, 0, 2}); got != [4]int{1, 0, 0, 2} {
		t.Fatalf("emails counts %v, want 1 ready, 2 dead", got)
	}
	d := get[struct {
		Total    int        `json:"total"`
		Messages []deadView `json:"messages"`
	}](t, ts.URL+"/api/queues/emails/dead")
	if d.Total != 2 || d.Messages[0].Reason != "smtp: 550 no such mailbox" || !strings.HasPrefix(d.Messages[0].Preview, "to: ") {
		t.Errorf("dead letters %+v", d)
	}
	if code, out := post(t, s, ts.URL+"/api/queues/emails/redrive", `{"ids":["`+ids[0]+`"]}`, nil); code != 200 || out["moved"] != 1.0 {
		t.Fatalf("redrive: %d %v", code, out)
	}
	if got := countsOf(t, ts.URL, "emails", [4]int{2, 0, 0, 1}); got != [4]int{2, 0, 0, 1} {
		t.Errorf("after redrive %v, want 2 ready, 1 dead", got)
	}
}

// countsOf returns the dashboard's counts of queue once they equal want, or
// the last ones after ten seconds. A JetStream server updates its
// consumer's count of ready messages a moment after it acknowledged a
// publish, so a count read at once can trail it.
func countsOf(t *testing.T, base, queue string, want [4]int) [4]int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := counts(t, base)[queue]
		if got == want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(20 * time.Millisecond) // polling a condition
	}
}

func TestDashboardOnPostgres(t *testing.T) {
	srv, err := pgtest.Start(context.Background())
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	db, err := srv.NewDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	dashboardRedrivesOn(t, func(name string) backend.Backend { return openURL(t, db+"&queue="+name) })
}

func TestDashboardOnSQS(t *testing.T) {
	srv := sqstest.Start(t)
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	srv.CreateQueue(t, "emails", 1000)
	base := "sqs+http://" + srv.Addr + "/" + sqstest.Account + "/"
	dashboardRedrivesOn(t, func(name string) backend.Backend { return openURL(t, base+name+"?region="+sqstest.Region+"&wait=1s") })
}

func TestDashboardOnJetStream(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("the NATS server did not start")
	}
	dashboardRedrivesOn(t, func(name string) backend.Backend { return openURL(t, "nats://"+ns.Addr().String()+"?queue="+name) })
}
