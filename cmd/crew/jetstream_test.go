package main

import (
	"strconv"
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

	sharedWork{
		url:         url,
		concurrency: 8,
		script:      `echo "$CREW_MESSAGE_ID" >> "$RECORDS"`,
		killAfter:   100,
		patience:    90 * time.Second,
	}.run(t, published)
	if s, err := q.Stats(t.Context()); err != nil || s.Dead != 0 {
		t.Errorf("Stats = %+v, %v; want no dead letters", s, err)
	}
}
