package sqlite_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/crewgo/crew/queue/queuetest"
	"github.com/crewgo/crew/queue/sqlite"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if code, ok := crash.Child(); ok {
		os.Exit(code) // a consumer that TestCrashSafety started
	}
	goleak.VerifyTestMain(m)
}

// openDB opens a new queue file in a temporary directory and closes it when
// the test ends.
func sqliteSync(s string) sqlite.Option { return sqlite.Synchronous(s) }

func openDB(t testing.TB, opts ...sqlite.Option) *sqlite.DB {
	t.Helper()
	return openPath(t, filepath.Join(t.TempDir(), "queue.db"), opts...)
}

func openPath(t testing.TB, path string, opts ...sqlite.Option) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(path, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

func TestConformance(t *testing.T) {
	queuetest.Suite{
		New: func(t *testing.T) queuetest.Queue { return openDB(t).Queue("conformance") },
		Dead: func(t *testing.T, q queuetest.Queue) []string {
			dead, err := q.(*sqlite.Queue).Dead(t.Context())
			if err != nil {
				t.Fatalf("Dead: %v", err)
			}
			var ids []string
			for _, d := range dead {
				ids = append(ids, d.Message.ID)
			}
			return ids
		},
	}.Run(t)
}
