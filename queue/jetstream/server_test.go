package jetstream_test

import (
	"log/slog"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/crewgo/crew/queue/jetstream"
)

func TestMain(m *testing.M) {
	if code, ok := crash.Child(); ok {
		os.Exit(code) // a consumer that TestCrashSafety started
	}
	goleak.VerifyTestMain(m)
}

// startServer runs a NATS server with JetStream in this process, on
// 127.0.0.1 at port (any free port if 0), keeping its files in dir. The
// test stops it unless it was stopped already.
func startServer(t testing.TB, dir string, port int) *server.Server {
	t.Helper()
	if port == 0 {
		port = -1
	}
	return runServer(t, &server.Options{Port: port, StoreDir: dir})
}

// runServer runs a server with opts, on 127.0.0.1, with JetStream.
func runServer(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	opts.Host, opts.JetStream, opts.NoLog, opts.NoSigs = "127.0.0.1", true, true, true
	if opts.Port == 0 {
		opts.Port = -1
	}
	if opts.StoreDir == "" {
		opts.StoreDir = t.TempDir()
	}
	s, err := server.NewServer(opts)
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

// connect returns a JetStream handle on s, closed by the test's end.
func connect(t testing.TB, url string) natsjs.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := natsjs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

var queues atomic.Int64

// newQueue opens a queue of a name not used before on js.
func newQueue(t testing.TB, js natsjs.JetStream, opts ...jetstream.Option) *jetstream.Queue {
	t.Helper()
	q, err := jetstream.New(js, "q"+strconv.FormatInt(queues.Add(1), 10), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// waitEmpty waits until q has nothing ready, leased or delayed, and fails
// the test after patience.
func waitEmpty(t *testing.T, q *jetstream.Queue, patience time.Duration) jetstream.Stats {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		s, err := q.Stats(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if s.Ready+s.Leased+s.Delayed == 0 {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("the queue was not empty in time: %+v", s)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition
	}
}
