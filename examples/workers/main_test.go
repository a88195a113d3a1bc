package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/crewgo/crew/crewtest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSIGTERMLetsTheSlowRequestFinish(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // the group listens on it again

	started := make(chan struct{}, 1)
	g := newGroup(addr, time.Millisecond, slog.New(&notify{msg: "request started", c: started}))
	p := crewtest.Main(t, g)
	<-g.Ready()

	body := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/hello?wait=300ms")
		if err != nil {
			body <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body <- string(b)
	}()
	<-started // the request is in the handler
	p.Signal(syscall.SIGTERM)
	if got := <-body; got != "Hello, world!\n" {
		t.Fatalf("in-flight request got %q", got)
	}
	if code := p.Wait(); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}

// notify is a slog.Handler that signals c when a record with message msg is
// logged, and drops everything.
type notify struct {
	msg string
	c   chan struct{}
}

func (n *notify) Enabled(context.Context, slog.Level) bool { return true }
func (n *notify) WithAttrs([]slog.Attr) slog.Handler       { return n }
func (n *notify) WithGroup(string) slog.Handler            { return n }
func (n *notify) Handle(_ context.Context, r slog.Record) error {
	if r.Message == n.msg {
		select {
		case n.c <- struct{}{}:
		default:
		}
	}
	return nil
}
