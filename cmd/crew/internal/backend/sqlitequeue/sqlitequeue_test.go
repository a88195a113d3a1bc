package sqlitequeue

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/crewgo/crew/cmd/crew/internal/backend"
	"github.com/crewgo/crew/queue"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func open(t *testing.T, raw string) backend.Backend {
	t.Helper()
	b, err := backend.Open(t.Context(), raw, true)
	if err != nil {
		t.Fatalf("Open(%s): %v", raw, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestURLNamesTheFileAndTheQueue(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.Mkdir("sub", 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ url, file, queue string }{
		{"sqlite://crew.db", "crew.db", "default"},
		{"sqlite:opaque.db", "opaque.db", "default"},
		{"sqlite://sub/nested.db?queue=emails", "sub/nested.db", "emails"},
		{"sqlite://./dot.db?synchronous=normal&busy_timeout=2s&poll_interval=50ms", "dot.db", "default"},
		{"sqlite://" + filepath.Join(dir, "abs.db"), "abs.db", "default"},
	} {
		b := open(t, tc.url)
		if b.Name() != tc.queue {
			t.Errorf("%s: queue %q, want %q", tc.url, b.Name(), tc.queue)
		}
		if _, err := os.Stat(filepath.Join(dir, tc.file)); err != nil {
			t.Errorf("%s: %v", tc.url, err)
		}
	}
}

func TestBadParametersAreURLErrors(t *testing.T) {
	t.Chdir(t.TempDir())
	for raw, want := range map[string]string{
		"sqlite://":                          "names no file",
		"sqlite://x.db?queue=":               "the queue name must not be empty",
		"sqlite://x.db?synchronous=OFF":      `synchronous must be FULL or NORMAL, not "OFF"`,
		"sqlite://x.db?busy_timeout=soon":    `busy_timeout must be a duration of at least 1ms, such as 5s, not "soon"`,
		"sqlite://x.db?poll_interval=0s":     `poll_interval must be a duration of at least 1ms`,
		"sqlite://x.db?queue=a&colour=green": `unknown parameter "colour" (known: busy_timeout, poll_interval, queue, synchronous)`,
		"sqlite:///dir/a#b.db":               `has a fragment "#b.db"`,
		"sqlite://x.db?queue=emails;v2":      `a ';' in the query part "queue=emails;v2"`,
		"sqlite://x.db?queue=%zz":            `bad %-escape in the query part "queue=%zz"`,
	} {
		_, err := backend.Open(t.Context(), raw, true)
		var ue *backend.URLError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%s) = %v, want a *URLError containing %q", raw, err, want)
		}
	}
	for _, name := range []string{"x.db", "a", "/dir"} {
		if _, err := os.Stat(name); !os.IsNotExist(err) {
			t.Errorf("a rejected URL created %s: %v", name, err)
		}
	}
}

func TestReadOnlyOpenCreatesNothing(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for raw, want := range map[string]string{
		"sqlite://typo.db":         "queue file " + filepath.Join(dir, "typo.db") + " does not exist",
		"sqlite://nodir/typo.db":   "directory " + filepath.Join(dir, "nodir") + " does not exist",
		"sqlite://typo.db?queue=x": "typo.db does not exist",
	} {
		_, err := backend.Open(t.Context(), raw, false)
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%s, create=false) = %v, want fs.ErrNotExist naming %q", raw, err, want)
		}
	}
	if _, err := backend.Open(t.Context(), "sqlite://nodir/new.db", true); !errors.Is(err, fs.ErrNotExist) ||
		!strings.Contains(err.Error(), "directory "+filepath.Join(dir, "nodir")+" does not exist") {
		t.Errorf("Open(create=true) in a missing directory = %v, want an error naming it", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("opening without create made files: %v", entries)
	}
	open(t, "sqlite://made.db") // create=true makes the file; now a read-only open works
	b, err := backend.Open(t.Context(), "sqlite://made.db", false)
	if err != nil {
		t.Fatalf("Open(create=false) of an existing file: %v", err)
	}
	b.Close()
}

// TestBackendAnswersForItsQueue checks the operator methods against the
// sqlite queue underneath: stats of any queue, dead letters, redrive and
// purge of its own.
func TestBackendAnswersForItsQueue(t *testing.T) {
	t.Chdir(t.TempDir())
	ctx := context.Background()
	b := open(t, "sqlite://q.db?queue=jobs")
	other := open(t, "sqlite://q.db?queue=other")
	for _, body := range []string{"a", "b"} {
		if _, err := b.Publish(ctx, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := other.Publish(ctx, []byte("c"), queue.Delay(3600e9)); err != nil {
		t.Fatal(err)
	}
	msgs, err := b.Receive(ctx, 2, 60e9)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("Receive: %d messages, %v", len(msgs), err)
	}
	if err := b.DeadLetter(ctx, msgs[0], errors.New("bad")); err != nil {
		t.Fatal(err)
	}

	names, err := b.Queues(ctx)
	if err != nil || strings.Join(names, ",") != "jobs,other" {
		t.Errorf("Queues = %v, %v", names, err)
	}
	if s, err := b.Stats(ctx, "jobs"); err != nil || s != (queue.Depth{Leased: 1, Dead: 1}) {
		t.Errorf("Stats(jobs) = %+v, %v", s, err)
	}
	if s, err := b.Stats(ctx, "other"); err != nil || s != (queue.Depth{Delayed: 1}) {
		t.Errorf("Stats(other) = %+v, %v", s, err)
	}
	dead, err := b.Dead(ctx)
	if err != nil || len(dead) != 1 || dead[0].Message.ID != msgs[0].ID || dead[0].Reason != "bad" || dead[0].At.IsZero() {
		t.Errorf("Dead = %+v, %v", dead, err)
	}
	if n, err := b.Redrive(ctx); err != nil || n != 1 {
		t.Errorf("Redrive = %d, %v", n, err)
	}
	if err := b.DeadLetter(ctx, msgs[1], errors.New("worse")); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Purge(ctx); err != nil || n != 1 {
		t.Errorf("Purge = %d, %v", n, err)
	}
	if s, err := b.Stats(ctx, "jobs"); err != nil || s != (queue.Depth{Ready: 1}) {
		t.Errorf("Stats(jobs) after redrive and purge = %+v, %v", s, err)
	}
}
