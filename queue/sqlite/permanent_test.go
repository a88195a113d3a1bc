package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crewgo/crew"
	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/sqlite"
)

func TestMustExistOpensOnlyAnExistingFile(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "typo.db")
	_, err := sqlite.Open(missing, sqlite.MustExist())
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "queue file "+missing+" does not exist") {
		t.Errorf("Open(missing, MustExist) = %v, want fs.ErrNotExist naming the file", err)
	}
	noDir := filepath.Join(dir, "nodir", "x.db")
	for _, opts := range [][]sqlite.Option{nil, {sqlite.MustExist()}} {
		_, err = sqlite.Open(noDir, opts...)
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "directory "+filepath.Dir(noDir)+" does not exist") {
			t.Errorf("Open(in a missing directory) = %v, want fs.ErrNotExist naming the directory", err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("failed Opens left %v behind", entries)
	}
	path := filepath.Join(dir, "made.db")
	publishN(t, openPath(t, path).Queue("q"), 1)
	db, err := sqlite.Open(path, sqlite.MustExist())
	if err != nil {
		t.Fatalf("Open(existing, MustExist): %v", err)
	}
	defer db.Close()
	if s := stats(t, db.Queue("q")); s.Ready != 1 {
		t.Errorf("Stats = %+v, want the published message", s)
	}
}

// corruptFile returns a queue file whose schema is intact but whose
// messages, in queue q, are on corrupt pages.
func corruptFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "corrupt.db")
	fillAndClose(t, path, 1) // the schema, and the queue's tables
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	fillAndClose(t, path, 200)
	corrupt(t, path, info.Size())
	return path
}

// corrupt overwrites the file at path from offset from to its end.
func corrupt(t *testing.T, path string, from int64) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	n := int(info.Size() - from)
	garbage := []byte(strings.Repeat("\xa5corrupt", n/8+1))[:n]
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(garbage, from); err != nil {
		t.Fatal(err)
	}
}

// fillAndClose publishes n messages of 1KiB to queue q of a new file, and
// closes it (which checkpoints the write-ahead log into the file).
func fillAndClose(t *testing.T, path string, n int) {
	t.Helper()
	db, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(strings.Repeat("x", 1024))
	for range n {
		if _, err := db.Queue("q").Publish(t.Context(), body); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptFileIsAPermanentError(t *testing.T) {
	path := corruptFile(t)
	db, err := sqlite.Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err = db.Queue("q").Receive(ctx, 1, time.Minute)
	if !errors.Is(err, crew.ErrPermanent) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "malformed") {
		t.Errorf("Receive = %v, want a permanent error naming the file and the corruption", err)
	}
}

// readOnly makes the file at path impossible to write, for this process
// too: by its mode, or, for root, whom modes do not stop, with the
// immutable attribute.
func readOnly(t *testing.T, path string) {
	t.Helper()
	if os.Geteuid() != 0 {
		if err := os.Chmod(path, 0o444); err != nil {
			t.Fatal(err)
		}
		return
	}
	if out, err := exec.Command("chattr", "+i", path).CombinedOutput(); err != nil {
		t.Skipf("cannot make a file read-only for root (chattr +i: %v: %s)", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("chattr", "-i", path).Run() })
}

func TestReadOnlyFileOrDirectoryIsAPermanentError(t *testing.T) {
	for _, what := range []string{"file", "directory"} {
		t.Run(what, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ro.db")
			fillAndClose(t, path, 3)
			if what == "file" {
				readOnly(t, path)
			} else {
				readOnly(t, filepath.Dir(path)) // no room for the write-ahead log
			}
			err := receiveOnce(t, path)
			if !errors.Is(err, crew.ErrPermanent) || !strings.Contains(err.Error(), path+": ") {
				t.Errorf("got %v, want a permanent error naming the file", err)
			}
		})
	}
}

// receiveOnce opens the file at path and receives from its queue q, and
// returns the first error.
func receiveOnce(t *testing.T, path string) error {
	t.Helper()
	db, err := sqlite.Open(path)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.Queue("q").Receive(t.Context(), 10, time.Minute)
	return err
}

// A consumer on a corrupt file stops by itself with an error that names the
// file and the cause, instead of retrying for ever.
func TestConsumerStopsOnACorruptFile(t *testing.T) {
	path := corruptFile(t)
	db := openPath(t, path)
	c := &queue.Consumer{
		Source: db.Queue("q"), Logger: quietLogger(),
		Handler: func(context.Context, *queue.Message) error { return nil },
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	err := c.Run(ctx)
	if !errors.Is(err, crew.ErrPermanent) || !strings.Contains(err.Error(), path+": database disk image is malformed") {
		t.Fatalf("Run = %v, want a permanent error naming the file and the corruption", err)
	}
	if ctx.Err() != nil {
		t.Errorf("Run returned only when its context ended")
	}
}

// A file that another connection holds locked fails with SQLITE_BUSY: a
// transient error, which the consumer retries until the lock is gone.
func TestBusyFileIsRetried(t *testing.T) {
	path := filepath.Join(t.TempDir(), "busy.db")
	db := openPath(t, path, sqlite.BusyTimeout(time.Millisecond))
	q := db.Queue("q")
	publishN(t, q, 1)
	conn, err := rawDB(t, path).Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	_, err = q.Receive(t.Context(), 1, time.Minute)
	if err == nil || errors.Is(err, crew.ErrPermanent) {
		t.Fatalf("Receive on a locked file = %v, want a transient error", err)
	}

	retried := make(chan struct{}, 1)
	handled := make(chan struct{})
	c := &queue.Consumer{
		Source: q,
		Logger: slog.New(onMessage("queue: receive failed; retrying", retried)),
		Handler: func(context.Context, *queue.Message) error {
			close(handled)
			return nil
		},
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	<-retried
	if _, err := conn.ExecContext(t.Context(), "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	<-handled
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
}

// signal is a slog handler that sends on c, without blocking, for each
// record whose message is msg.
type signalOn struct {
	msg string
	c   chan<- struct{}
}

func onMessage(msg string, c chan<- struct{}) slog.Handler { return signalOn{msg, c} }

func (h signalOn) Enabled(context.Context, slog.Level) bool { return true }
func (h signalOn) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h signalOn) WithGroup(string) slog.Handler            { return h }
func (h signalOn) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		select {
		case h.c <- struct{}{}:
		default:
		}
	}
	return nil
}

// A tool that only reads a queue, such as a dashboard, opens the file with
// MustExist, so that a mistyped path is an error rather than a new, empty
// queue.
func ExampleMustExist() {
	dir, _ := os.MkdirTemp("", "crew-sqlite-example")
	defer os.RemoveAll(dir)

	_, err := sqlite.Open(filepath.Join(dir, "typo.db"), sqlite.MustExist())
	fmt.Println(errors.Is(err, fs.ErrNotExist))
	_, err = os.Stat(filepath.Join(dir, "typo.db"))
	fmt.Println(errors.Is(err, fs.ErrNotExist))
	// Output:
	// true
	// true
}
