package sqlite_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crewgo/crew"
	"github.com/crewgo/crew/queue/sqlite"
)

// TestFullDiskIsAPermanentError fills a file system of its own, a small
// tmpfs, until a publish fails: the error must name the file and wrap
// crew.ErrPermanent. Mounting needs privileges; without them the test is
// skipped.
func TestFullDiskIsAPermanentError(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=256k"); err != nil {
		t.Skipf("cannot mount a small file system to fill: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	path := filepath.Join(dir, "full.db")
	db, err := sqlite.Open(path, sqlite.Synchronous("NORMAL"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	body := []byte(strings.Repeat("x", 4096))
	for i := range 1000 { // 4 MB: far beyond the file system's 256 KB
		if _, err = db.Queue("q").Publish(ctx, body); err != nil {
			break
		}
		if i == 999 {
			t.Fatal("1000 publishes of 4 KB fit in 256 KB")
		}
	}
	if !errors.Is(err, crew.ErrPermanent) || !strings.Contains(err.Error(), path+": ") {
		t.Errorf("Publish on a full disk = %v, want a permanent error naming the file", err)
	}
}
