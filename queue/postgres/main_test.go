package postgres_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/crewgo/crew/queue/postgres"
	"github.com/crewgo/crew/queue/postgres/pgtest"
)

// srv is the server of this test binary; each test uses a schema of its
// own in its one database.
var srv *pgtest.Server

func TestMain(m *testing.M) {
	if code, ok := crash.Child(); ok {
		os.Exit(code) // a consumer that TestCrashSafety started
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	srv, err = pgtest.Start(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// The examples read the server's address where a program would.
	os.Setenv("DATABASE_URL", srv.URL())
	code := m.Run()
	if err := srv.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	return code
}

var schemas atomic.Int64

// newSchema returns a schema name that no other test uses.
func newSchema(t testing.TB) string {
	name := fmt.Sprintf("t%d_%s", schemas.Add(1), strings.ToLower(t.Name()))
	return name[:min(len(name), 63)] // PostgreSQL's longest name
}

// openDB opens a DB on a schema of the test's own, closed when the test
// ends.
func openDB(t testing.TB, opts ...postgres.Option) *postgres.DB {
	t.Helper()
	return openSchema(t, newSchema(t), opts...)
}

func openSchema(t testing.TB, schema string, opts ...postgres.Option) *postgres.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := postgres.Open(ctx, srv.URL(), append([]postgres.Option{postgres.Schema(schema), postgres.PollInterval(50 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(db.Close)
	return db
}
