package crew_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crewgo/crew"
	"github.com/crewgo/crew/crewtest"
)

func TestHTTPServerFinishesInFlightRequestsAndRefusesNewOnes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	inHandler := make(chan struct{})
	release := make(chan struct{})
	shuttingDown := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(inHandler)
		<-release
		io.WriteString(w, "finished")
	})}
	srv.RegisterOnShutdown(func() { close(shuttingDown) }) // called once the listener is closed

	g := &crew.Group{Logger: quiet}
	g.Add("http", crew.HTTPListener(srv, ln))
	p := crewtest.Main(t, g)

	type result struct {
		status int
		body   string
		err    error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		got <- result{resp.StatusCode, string(body), err}
	}()
	<-inHandler
	p.Signal(syscall.SIGTERM)
	<-shuttingDown

	if conn, err := net.Dial("tcp", addr); err == nil {
		conn.Close()
		t.Error("a new connection was accepted after the stop began")
	}
	close(release)
	r := <-got
	if r.err != nil || r.status != http.StatusOK || r.body != "finished" {
		t.Fatalf("in-flight request: status %d body %q err %v, want 200 finished", r.status, r.body, r.err)
	}
	if code := p.Wait(); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}

func TestHTTPServerCutsADrainShortAtTheDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	inHandler := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(inHandler)
		select {
		case <-release:
		case <-r.Context().Done(): // Close cancels the request's context
		}
	})}
	g := &crew.Group{Logger: quiet, StopTimeout: 300 * time.Millisecond}
	g.Add("http", crew.HTTPListener(srv, ln))
	clientDone := make(chan struct{})
	go func() {
		defer close(clientDone)
		if resp, err := http.Get("http://" + ln.Addr().String()); err == nil {
			resp.Body.Close()
		}
	}()
	go func() {
		<-inHandler
		g.Stop(nil)
	}()
	err = g.Run(context.Background())
	<-clientDone
	var ce *crew.Error
	if !errors.As(err, &ce) || len(ce.Stragglers) != 0 || len(ce.Workers) != 1 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v, want the http worker's cut-short drain as a failure, not a straggler", err)
	}
}

func TestHTTPServerReportsListenErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	g := &crew.Group{Logger: quiet}
	g.Add("http", crew.HTTPServer(&http.Server{Addr: ln.Addr().String()})) // the port is taken
	err = g.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Run = %v, want the listen error", err)
	}
}

func TestHTTPServerIsReadyOnceListening(t *testing.T) {
	g := &crew.Group{Logger: quiet}
	srv := &http.Server{Addr: "127.0.0.1:0"}
	g.Add("http", crew.HTTPServer(srv), crew.WaitReady())
	crewtest.Start(t, g) // returns once ready; fails the test if it never is
}
