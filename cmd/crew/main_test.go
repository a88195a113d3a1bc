package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"go.uber.org/goleak"
)

// TestMain makes the test binary the crew command when the scripts run it
// ("exec crew ..."), and checks for leaked goroutines after the tests.
func TestMain(m *testing.M) {
	testscript.Main(leakChecked{m}, map[string]func(){
		"crew": func() { os.Exit(Main(os.Args[1:])) },
	})
}

// leakChecked fails a passing test run that leaves goroutines behind.
type leakChecked struct{ m *testing.M }

func (l leakChecked) Run() int {
	code := l.m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			return 1
		}
	}
	return code
}

// TestScript runs the end-to-end scripts in testdata/script: each runs the
// real crew command, as a separate process, against real queues and child
// processes.
func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 filepath.Join("testdata", "script"),
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			// A free port for --health; free when chosen, which is enough
			// on a test machine.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			env.Setenv("HEALTH_ADDR", ln.Addr().String())
			ln.Close()
			env.Setenv("CREW_QUEUE", "")
			// A binary built with -race sleeps a second at exit, waiting
			// for reports from other goroutines; the scripts run crew some
			// hundred times.
			env.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"waitfile":     cmdWaitFile,
			"httpget":      cmdHTTPGet,
			"postserver":   cmdPostServer,
			"gone":         cmdGone,
			"corruptqueue": cmdCorruptQueue,
		},
	})
}

// waitfile PATH... waits (up to 30 seconds) until every file exists.
func cmdWaitFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) == 0 {
		ts.Fatalf("usage: waitfile path...")
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, name := range args {
		for {
			if _, err := os.Stat(ts.MkAbs(name)); err == nil {
				break
			}
			if time.Now().After(deadline) {
				ts.Fatalf("waitfile: %s did not appear within 30s", name)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// gone PIDFILE... waits (up to 5 seconds) until the process whose ID each
// file holds has ended; a zombie has ended. A process still running then
// fails the script, and is killed.
func cmdGone(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) == 0 {
		ts.Fatalf("usage: gone pidfile...")
	}
	pids := make([]int, len(args))
	for i, name := range args {
		pid, err := strconv.Atoi(strings.TrimSpace(ts.ReadFile(name)))
		ts.Check(err)
		pids[i] = pid
	}
	deadline := time.Now().Add(5 * time.Second)
	for i, pid := range pids {
		for {
			stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
			if err != nil || strings.Contains(string(stat), ") Z ") {
				break
			}
			if time.Now().After(deadline) {
				for _, pid := range pids {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
				ts.Fatalf("gone: process %d (%s) still runs after 5s: %s", pid, args[i], stat)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// httpget URL STATUS gets URL until it answers with STATUS, for up to 30
// seconds, retrying while nothing listens or another status comes back.
func cmdHTTPGet(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: httpget URL STATUS")
	}
	want, err := strconv.Atoi(args[1])
	ts.Check(err)
	deadline := time.Now().Add(30 * time.Second)
	last := ""
	for {
		resp, err := http.Get(args[0])
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = fmt.Sprintf("%s %s", resp.Status, strings.TrimSpace(string(body)))
			if resp.StatusCode == want {
				ts.Logf("%s: %s", args[0], last)
				return
			}
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			ts.Fatalf("httpget %s: no status %d within 30s; last: %s", args[0], want, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// postserver VAR FILE starts an HTTP server for the rest of the script and
// sets $VAR to its URL. It appends "METHOD ATTEMPT BODY" to FILE for every
// request, and answers 500 to bodies that start with "fail", 200 to the
// others; except that a body "redirect-CODE" is redirected with CODE to
// another path, where the request is recorded as "LANDED METHOD BODY".
func cmdPostServer(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: postserver VAR FILE")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	file := ts.MkAbs(args[1])
	var mu sync.Mutex
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if code, ok := strings.CutPrefix(string(body), "redirect-"); ok && r.URL.Path != "/landed" {
			status, err := strconv.Atoi(code)
			if err != nil {
				status = http.StatusBadRequest
			}
			http.Redirect(w, r, "/landed", status)
			return
		}
		line := fmt.Sprintf("%s %s %s\n", r.Method, r.Header.Get("X-Crew-Attempt"), body)
		if r.URL.Path == "/landed" {
			line = fmt.Sprintf("LANDED %s %s\n", r.Method, body)
		}
		mu.Lock()
		f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err == nil {
			io.WriteString(f, line)
			f.Close()
		}
		mu.Unlock()
		if strings.HasPrefix(string(body), "fail") {
			http.Error(w, "failing on purpose", http.StatusInternalServerError)
		}
	})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	ts.Defer(func() {
		srv.Close()
		<-done
	})
	ts.Setenv(args[0], "http://"+ln.Addr().String()+"/hook")
}
