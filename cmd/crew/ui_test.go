package main

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestUIServesTheStoreUntilASignal(t *testing.T) {
	dir := t.TempDir()
	queueURL := "sqlite://" + filepath.Join(dir, "crew.db") + "?queue=emails"
	ta := newTestApp(t, nil)
	if code := ta.run([]string{"enqueue", "--queue", queueURL, "hello"}); code != exitOK {
		t.Fatalf("enqueue: exit %d", code)
	}
	stdout := ta.stdout.Name()
	interrupt := ta.start(t, "ui", "--queue", queueURL, "--addr", "127.0.0.1:0", "--read-only")

	// crew ui prints the address it listens on.
	var base string
	for deadline := time.Now().Add(30 * time.Second); base == ""; {
		out, _ := os.ReadFile(stdout)
		if m := regexp.MustCompile(`on (http://127\.0\.0\.1:\d+)/`).FindSubmatch(out); m != nil {
			base = string(m[1])
		} else if time.Now().After(deadline) {
			t.Fatalf("crew ui printed no address: %q", out)
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}
	resp, err := http.Get(base + "/api/overview")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`"name":"emails","ready":1`, `"readOnly":true`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("overview lacks %s: %s", want, body)
		}
	}
	if code := interrupt(); code != exitOK {
		t.Errorf("crew ui exited %d after SIGINT, want 0", code)
	}
	if _, err := http.Get(base + "/"); err == nil {
		t.Error("crew ui still serves after it returned")
	}
}

func TestUIRefusesAStoreThatDoesNotExist(t *testing.T) {
	dir := t.TempDir()
	code, stderr := runApp(t, dir, "ui", "--queue", "sqlite://"+filepath.Join(dir, "typo.db"))
	if code != exitFailure || !strings.Contains(stderr, "does not exist") {
		t.Errorf("exit %d, stderr %q; want 1 and the missing file named", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "typo.db")); err == nil {
		t.Error("crew ui created the store it was asked to show")
	}
}

func TestUICreatesTheDefaultStoreInAFreshDirectory(t *testing.T) {
	dir := t.TempDir()
	code, stderr := runApp(t, dir, "ui", "--addr", "256.0.0.1:1") // fails after opening the store
	if code != exitFailure || !strings.Contains(stderr, "ui: listen tcp") {
		t.Errorf("exit %d, stderr %q; want 1 and the listen error", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "crew.db")); err != nil {
		t.Errorf("the default store was not created: %v", err)
	}
}

func TestUIFailsOnAnAddressItCannotListenOn(t *testing.T) {
	dir := t.TempDir()
	queueURL := "sqlite://" + filepath.Join(dir, "crew.db")
	if code, stderr := runApp(t, dir, "enqueue", "--queue", queueURL, "x"); code != exitOK {
		t.Fatalf("enqueue: exit %d: %s", code, stderr)
	}
	code, stderr := runApp(t, dir, "ui", "--queue", queueURL, "--addr", "256.0.0.1:1")
	if code != exitFailure || !strings.Contains(stderr, "ui: listen tcp") {
		t.Errorf("exit %d, stderr %q; want 1 and the listen error", code, stderr)
	}
}

// A first signal lets open requests finish for a while; a second one
// closes them at once, and crew ui still exits 0.
func TestUISecondSignalClosesOpenConnections(t *testing.T) {
	sigs, code, stderr := startUIWithIdleConnection(t)
	start := time.Now()
	sigs <- os.Interrupt
	sigs <- os.Interrupt
	select {
	case c := <-code:
		if c != exitOK {
			out, _ := os.ReadFile(stderr)
			t.Errorf("crew ui exited %d after two signals, want 0:\n%s", c, out)
		}
		// The graceful shutdown alone would wait 5s for the idle connection.
		if d := time.Since(start); d > 4*time.Second {
			t.Errorf("crew ui took %v to stop after the second signal", d)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("crew ui did not stop after two signals")
	}
}

// A connection that a browser opened ahead and never used must not turn
// a stop on one signal into a failure once the grace period is over.
func TestUIStopsCleanlyDespiteAConnectionThatSendsNothing(t *testing.T) {
	grace := uiShutdownGrace
	uiShutdownGrace = 100 * time.Millisecond
	t.Cleanup(func() { uiShutdownGrace = grace })
	sigs, code, stderr := startUIWithIdleConnection(t)
	sigs <- os.Interrupt
	select {
	case c := <-code:
		if c != exitOK {
			out, _ := os.ReadFile(stderr)
			t.Errorf("crew ui exited %d after a signal, want 0:\n%s", c, out)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("crew ui did not stop after a signal")
	}
}

// startUIWithIdleConnection starts crew ui and opens a connection to it
// that sends nothing, which holds up a graceful shutdown until its
// deadline. It returns the channel crew ui takes signals from, its exit
// code and the file of its standard error.
func startUIWithIdleConnection(t *testing.T) (chan<- os.Signal, <-chan int, string) {
	t.Helper()
	queueURL := "sqlite://" + filepath.Join(t.TempDir(), "crew.db")
	ta := newTestApp(t, nil)
	if code := ta.run([]string{"enqueue", "--queue", queueURL, "hello"}); code != exitOK {
		t.Fatalf("enqueue: exit %d", code)
	}
	code := make(chan int, 1)
	go func() { code <- ta.run([]string{"ui", "--queue", queueURL, "--addr", "127.0.0.1:0"}) }()
	var sigs chan<- os.Signal
	select {
	case sigs = <-ta.signals:
	case c := <-code:
		t.Fatalf("crew ui exited %d before it watched for signals", c)
	}
	base := uiAddress(t, ta.stdout.Name())
	idle, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idle.Close() })
	// A request after it proves that the server has accepted the idle
	// connection: connections are accepted in order.
	resp, err := http.Get(base + "/api/overview")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return sigs, code, ta.stderr
}

// uiAddress waits for crew ui to print the address it serves on.
func uiAddress(t *testing.T, stdout string) string {
	t.Helper()
	re := regexp.MustCompile(`on (http://127\.0\.0\.1:\d+)/`)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		out, _ := os.ReadFile(stdout)
		if m := re.FindSubmatch(out); m != nil {
			return string(m[1])
		}
		if time.Now().After(deadline) {
			t.Fatalf("crew ui printed no address: %q", out)
		}
	}
}
