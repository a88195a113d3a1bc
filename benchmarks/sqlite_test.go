package benchmarks

// Throughput of durable queues on SQLite, side by side in one run: crew's
// queue/sqlite consumed through queue.Consumer, River with its SQLite driver,
// and a minimal hand-written lease-10/delete-10 loop as the floor that no
// queue with leases can beat by much. Each benchmark operation inserts
// queueJobs messages of about 100 bytes into a new file (not timed), then
// consumes them all with a no-op handler (timed, until every message is
// settled and the consumer has stopped). The metric is jobs/s.
//
//	go test -run '^$' -bench QueueSQLite -benchtime 1x -count 3 . | tee sqlite.txt
//	benchstat -col /impl -row /sync sqlite.txt
//
// Set CREW_BENCH_QUEUE_JOBS to consume another number of messages per
// operation (default 100000).

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crewgo/crew/queue"
	crewsqlite "github.com/crewgo/crew/queue/sqlite"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	_ "modernc.org/sqlite"
)

// queueConcurrency is how many handlers run at once, for crew and River.
const queueConcurrency = 8

func queueJobs(b *testing.B) int {
	if s := os.Getenv("CREW_BENCH_QUEUE_JOBS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("CREW_BENCH_QUEUE_JOBS=%q: want a positive number", s)
		}
		return n
	}
	return 100_000
}

// body returns the ~100-byte body of message i.
func body(i int) []byte {
	return fmt.Appendf(nil, "%08d %s", i, strings.Repeat("x", 91))
}

// queueImpl prepares a file holding n messages and returns the timed part:
// a function that consumes them all.
type queueImpl func(b *testing.B, path, sync string, n int) (consume func() error, cleanup func())

func BenchmarkQueueSQLite(b *testing.B) {
	n := queueJobs(b)
	impls := []struct {
		name string
		impl queueImpl
	}{
		// crew with the consumer's defaults and the floor run back to
		// back, so that the machine's load changes as little as possible
		// between the two; River, which takes longest, runs last.
		{"crew", crewQueue(0, 0)},
		{"floor", floorQueue},
		{"crew-prefetch8", crewQueue(queueConcurrency, 0)},
		{"crew-batch64", crewQueue(2*queueConcurrency, 64)},
		{"crew-ack10", crewQueue(0, 10)},
		{"river", riverQueue},
	}
	for _, sync := range []string{"FULL", "NORMAL"} {
		for _, im := range impls {
			b.Run("sync="+sync+"/impl="+im.name, func(b *testing.B) {
				var elapsed time.Duration
				b.StopTimer()
				for i := 0; i < b.N; i++ {
					path := filepath.Join(b.TempDir(), "queue.db")
					consume, cleanup := im.impl(b, path, sync, n)
					start := time.Now()
					b.StartTimer()
					err := consume()
					b.StopTimer()
					elapsed += time.Since(start)
					cleanup()
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n*b.N)/elapsed.Seconds(), "jobs/s")
			})
		}
	}
}

// crewQueue consumes with queue.Consumer from crew's queue/sqlite, with the
// consumer's defaults apart from Concurrency, and Prefetch and AckBatch
// where they are not zero. crew uses the defaults; crew-prefetch8 and
// crew-batch64 (Prefetch 16, AckBatch 64) are tuned for quick handlers:
// each Receive is a transaction, so the size of the batches sets how many
// commits a message shares. crew-ack10 is the defaults with AckBatch 10.
func crewQueue(prefetch, ackBatch int) queueImpl {
	return func(b *testing.B, path, sync string, n int) (func() error, func()) {
		return crewConsume(b, path, sync, n, prefetch, ackBatch)
	}
}

func crewConsume(b *testing.B, path, sync string, n, prefetch, ackBatch int) (func() error, func()) {
	ctx := context.Background()
	db, err := crewsqlite.Open(path, crewsqlite.Synchronous(sync))
	if err != nil {
		b.Fatal(err)
	}
	q := db.Queue("bench")
	const chunk = 1000
	for i := 0; i < n; i += chunk {
		bodies := make([][]byte, 0, chunk)
		for j := i; j < min(i+chunk, n); j++ {
			bodies = append(bodies, body(j))
		}
		if _, err := q.PublishBatch(ctx, bodies); err != nil {
			b.Fatal(err)
		}
	}
	consume := func() error {
		c := &queue.Consumer{Source: q, Concurrency: queueConcurrency, Prefetch: prefetch, AckBatch: ackBatch}
		if err := consumeN(ctx, c, n); err != nil {
			return err
		}
		s, err := q.Stats(ctx)
		if err != nil {
			return err
		}
		if s != (crewsqlite.Stats{}) {
			return fmt.Errorf("crew: %+v left after consuming", s)
		}
		return nil
	}
	return consume, func() { _ = db.Close() }
}

// sqliteDSN returns a modernc.org/sqlite DSN with the pragmas every
// implementation gets: WAL, the synchronous mode, a busy timeout, and
// BEGIN IMMEDIATE for write transactions.
func sqliteDSN(path, sync string) string {
	q := url.Values{}
	q.Set("_busy_timeout", "5000")
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", sync)
	q.Set("_txlock", "immediate")
	return "file:" + path + "?" + q.Encode()
}

type riverBenchArgs struct {
	Body string `json:"body"`
}

func (riverBenchArgs) Kind() string { return "bench" }

// riverQueue consumes with River on its SQLite driver, tuned as River's
// documentation suggests for throughput: MaxWorkers 8, FetchCooldown 1ms,
// FetchPollInterval 10ms (its defaults, 100ms and 1s, cap it near 80
// jobs/s here), and one pool connection, as riversqlite asks.
func riverQueue(b *testing.B, path, sync string, n int) (func() error, func()) {
	ctx := context.Background()
	db, err := sql.Open("sqlite", sqliteDSN(path, sync))
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	driver := riversqlite.New(db)
	migrator, err := rivermigrate.New(driver, nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		b.Fatal(err)
	}
	var handled atomic.Int64
	all := make(chan struct{})
	workers := river.NewWorkers()
	river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, job *river.Job[riverBenchArgs]) error {
		if handled.Add(1) == int64(n) {
			close(all)
		}
		return nil
	}))
	client, err := river.NewClient(driver, &river.Config{
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: queueConcurrency}},
		FetchCooldown:     time.Millisecond,
		FetchPollInterval: 10 * time.Millisecond,
		Workers:           workers,
		Logger:            slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	const chunk = 1000
	for i := 0; i < n; i += chunk {
		params := make([]river.InsertManyParams, 0, chunk)
		for j := i; j < min(i+chunk, n); j++ {
			params = append(params, river.InsertManyParams{Args: riverBenchArgs{Body: string(body(j))}})
		}
		if _, err := client.InsertMany(ctx, params); err != nil {
			b.Fatal(err)
		}
	}
	consume := func() error {
		if err := client.Start(ctx); err != nil {
			return err
		}
		<-all
		return client.Stop(ctx)
	}
	return consume, func() { _ = db.Close() }
}

// floorQueue is the least a queue with leases must do: one goroutine that
// leases 10 messages in one statement, handles them (no-op) and deletes
// them in one statement, on one connection, with no index but the primary
// key.
func floorQueue(b *testing.B, path, sync string, n int) (func() error, func()) {
	ctx := context.Background()
	db, err := sql.Open("sqlite", sqliteDSN(path, sync))
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `CREATE TABLE jobs (
		id INTEGER PRIMARY KEY, body BLOB NOT NULL, leased_until INTEGER NOT NULL DEFAULT 0)`); err != nil {
		b.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		if _, err := tx.ExecContext(ctx, `INSERT INTO jobs (body) VALUES (?)`, body(i)); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	consume := func() error {
		lease, err := db.PrepareContext(ctx, `UPDATE jobs SET leased_until = ?1
			WHERE id IN (SELECT id FROM jobs WHERE leased_until <= ?2 ORDER BY id LIMIT 10)
			RETURNING id, body`)
		if err != nil {
			return err
		}
		defer lease.Close()
		del, err := db.PrepareContext(ctx, `DELETE FROM jobs WHERE id IN (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer del.Close()
		done := 0
		ids := make([]any, 10)
		for done < n {
			now := time.Now().UnixMilli()
			rows, err := lease.QueryContext(ctx, now+30_000, now)
			if err != nil {
				return err
			}
			got := 0
			for rows.Next() {
				var id int64
				var body []byte
				if err := rows.Scan(&id, &body); err != nil {
					rows.Close()
					return err
				}
				ids[got] = id
				got++
			}
			if err := errors.Join(rows.Err(), rows.Close()); err != nil {
				return err
			}
			if got == 0 {
				return fmt.Errorf("floor: nothing to lease after %d of %d", done, n)
			}
			for i := got; i < len(ids); i++ {
				ids[i] = nil
			}
			if _, err := del.ExecContext(ctx, ids...); err != nil {
				return err
			}
			done += got
		}
		return nil
	}
	return consume, func() { _ = db.Close() }
}
