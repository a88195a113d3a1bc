package main

import (
	"io"
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
