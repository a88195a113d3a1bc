package runner

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestQuoteRoundTripsThroughAShell(t *testing.T) {
	argv := []string{"printf", "%s\\n", "plain", "two words", "it's", "", "$HOME", "a;b|c", "ünï", "*"}
	out, err := exec.Command("sh", "-c", Quote(argv)).Output()
	if err != nil {
		t.Fatalf("%s: %v", Quote(argv), err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if !slices.Equal(got, argv[2:]) {
		t.Errorf("the shell split %s into %q, want %q", Quote(argv), got, argv[2:])
	}
	if q := Quote([]string{"gzip", "-9", "a.log"}); q != "gzip -9 a.log" {
		t.Errorf("Quote quoted plain words: %s", q)
	}
}

func TestNewAppendsThePlaceholderWhenAbsent(t *testing.T) {
	r, err := New(Config{Command: []string{"echo", "x"}, Jobs: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.expand("line"); !slices.Equal(got, []string{"echo", "x", "line"}) {
		t.Errorf("expand = %q", got)
	}
	r, err = New(Config{Command: []string{"echo", "{}.gz", "<{}>"}, Jobs: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.expand("a b"); !slices.Equal(got, []string{"echo", "a b.gz", "<a b>"}) {
		t.Errorf("expand = %q", got)
	}
	for _, cfg := range []Config{
		{Command: nil, Jobs: 1},
		{Command: []string{"true"}, Jobs: 0},
		{Command: []string{"no-such-command-here"}, Jobs: 1},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted it", cfg)
		}
	}
}

// TestKillStopsRunningJobs checks that Kill ends jobs that would otherwise
// run for a minute, and that Stop alone would have let run.
func TestKillStopsRunningJobs(t *testing.T) {
	dir := t.TempDir()
	r, err := New(Config{
		Command:   []string{"sh", "-c", `touch "$1"; sleep 60`, "sh", filepath.Join(dir, "{}")},
		Jobs:      2,
		KillAfter: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan Summary, 1)
	go func() { done <- r.Run(strings.NewReader("a\nb\nc\n")) }()
	for _, name := range []string{"a", "b"} {
		for {
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	r.Kill()
	select {
	case s := <-done:
		if s.Succeeded != 0 || s.Failed != 2 || s.NotStarted != 1 || !s.Stopped || s.OK() {
			t.Errorf("summary %+v", s)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after Kill")
	}
	if _, err := os.Stat(filepath.Join(dir, "c")); err == nil {
		t.Error("a job started after Kill")
	}
}
