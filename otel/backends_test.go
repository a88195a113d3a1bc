package otel_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/crewgo/crew/queue/jetstream"
	"github.com/crewgo/crew/queue/postgres"
	"github.com/crewgo/crew/queue/postgres/pgtest"
	"github.com/crewgo/crew/queue/sqs"
	"github.com/crewgo/crew/queue/sqs/sqstest"
)

// servers are the PostgreSQL, SQS (an emulator) and NATS JetStream servers
// that the tests share, started on 127.0.0.1 by the first test that needs
// them and stopped by TestMain.
var servers struct {
	once  sync.Once
	err   error
	pg    *pgtest.Server // nil when PostgreSQL is not installed, outside CI
	pgErr error
	pgURL string
	sqs   *sqstest.Server
	nats  *server.Server
}

func startServers() {
	ctx := context.Background()
	s := &servers
	if s.pg, s.pgErr = pgtest.Start(ctx); s.pgErr == nil {
		if s.pgURL, s.err = s.pg.NewDatabase(ctx); s.err != nil {
			return
		}
	}
	if s.sqs, s.err = sqstest.StartServer(); s.err != nil {
		return
	}
	s.nats, s.err = server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: os.TempDir() + "/crew-otel-nats-" + fmt.Sprint(os.Getpid()), NoLog: true, NoSigs: true})
	if s.err != nil {
		return
	}
	s.nats.Start()
	if !s.nats.ReadyForConnections(10 * time.Second) {
		s.err = fmt.Errorf("the NATS server did not start")
	}
}

func stopServers() {
	s := &servers
	if s.nats != nil {
		s.nats.Shutdown()
		s.nats.WaitForShutdown()
		_ = os.RemoveAll(s.nats.StoreDir())
	}
	if s.sqs != nil {
		_ = s.sqs.Stop()
	}
	if s.pg != nil {
		_ = s.pg.Stop()
	}
}

// serverBackends returns a fresh queue on each backend that runs on a
// server: PostgreSQL, SQS and NATS JetStream. Their attributes must carry
// the trace context as the embedded backends' do.
func serverBackends(t *testing.T) map[string]store {
	servers.once.Do(startServers)
	if servers.err != nil {
		t.Fatal(servers.err)
	}
	ctx := context.Background()
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	out := map[string]store{}

	switch {
	case servers.pg != nil:
		db, err := postgres.Open(ctx, servers.pgURL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(db.Close)
		out["postgres"] = db.Queue(name)
	case os.Getenv("CI") == "true":
		t.Fatal(servers.pgErr)
	default:
		t.Logf("PostgreSQL not tested: %v", servers.pgErr)
	}

	url, err := servers.sqs.Create(ctx, name, 1000)
	if err != nil {
		t.Fatal(err)
	}
	// A short long poll, so that the emulator need not wait out an
	// abandoned one when it stops.
	q := sqs.New(servers.sqs.Client(), url, sqs.WaitTime(time.Second))
	t.Cleanup(func() { q.Close() })
	out["sqs"] = q

	js, err := jetstream.Open(ctx, fmt.Sprintf("nats://%s?queue=%s", servers.nats.Addr(), name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { js.Close() })
	out["jetstream"] = js
	return out
}
