package benchmarks

// Throughput of queues on PostgreSQL, side by side in one run on one
// server (started by the benchmark, at PostgreSQL's default durability:
// fsync and synchronous_commit on): crew's queue/postgres, River with its
// pgx driver, and minimal hand-written SQL as the floor.
//
// op=publish inserts queueJobs messages of about 100 bytes, 1,000 per
// call: crew's PublishBatch, River's InsertMany, and a plain multi-row
// INSERT into a table of an ID and a body. op=consume first inserts the
// messages (not timed), then consumes them all with a no-op handler and 8
// workers (timed, until every message is settled and the consumer has
// stopped): crew's queue.Consumer with its default options; River with
// fetch settings tuned for throughput; and the floor, one goroutine that
// leases 10 rows with FOR UPDATE SKIP LOCKED and deletes them, one
// transaction per 10. Each operation uses a new database. The metric is
// jobs/s.
//
//	go test -run '^$' -bench QueuePostgres -benchtime 1x -count 6 . | tee postgres.txt
//	benchstat postgres.txt
//
// Set CREW_BENCH_QUEUE_JOBS to move another number of messages per
// operation (default 100000), and CREW_TEST_POSTGRES_URL to use a running
// server instead of starting one.

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/postgres"
	"github.com/crewgo/crew/queue/postgres/pgtest"
)

// pgChunk is how many messages one publishing call inserts.
const pgChunk = 1000

// pgImpl prepares a new database for n messages and returns the timed
// part.
type pgImpl func(b *testing.B, url string, n int) (run func() error, cleanup func())

func BenchmarkQueuePostgres(b *testing.B) {
	n := queueJobs(b)
	srv, err := pgtest.Start(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = srv.Stop() })
	// The implementations compared take turns within each operation, so
	// that the load of this shared machine, which drifts over minutes,
	// weighs on all of them alike; each reports its own jobs/s, and the
	// ratios the targets name are reported as well.
	type impl struct {
		name string
		run  pgImpl
	}
	ops := []struct {
		op     string
		impls  []impl
		ratios [][2]string // numerator, denominator
	}{
		{"publish", []impl{{"crew", pgCrewPublish}, {"insert", pgInsertPublish}, {"river", pgRiverPublish}},
			[][2]string{{"crew", "insert"}, {"crew", "river"}}},
		{"consume", []impl{{"crew", pgCrewConsume}, {"floor", pgFloorConsume}, {"river", pgRiverConsume}},
			[][2]string{{"crew", "floor"}, {"crew", "river"}}},
	}
	for _, op := range ops {
		b.Run("op="+op.op, func(b *testing.B) {
			elapsed := map[string]time.Duration{}
			b.StopTimer()
			for range b.N {
				for _, im := range op.impls {
					url, err := srv.NewDatabase(context.Background())
					if err != nil {
						b.Fatal(err)
					}
					run, cleanup := im.run(b, url, n)
					start := time.Now()
					b.StartTimer()
					err = run()
					b.StopTimer()
					elapsed[im.name] += time.Since(start)
					cleanup()
					if err != nil {
						b.Fatalf("%s: %v", im.name, err)
					}
				}
			}
			rate := func(name string) float64 { return float64(n*b.N) / elapsed[name].Seconds() }
			for _, im := range op.impls {
				b.ReportMetric(rate(im.name), im.name+"-jobs/s")
			}
			for _, r := range op.ratios {
				b.ReportMetric(rate(r[0])/rate(r[1]), r[0]+"/"+r[1])
			}
		})
	}
}

// chunks calls fn with the bodies of messages [i, j) for each chunk.
func chunks(n int, fn func(bodies [][]byte) error) error {
	for i := 0; i < n; i += pgChunk {
		bodies := make([][]byte, 0, pgChunk)
		for j := i; j < min(i+pgChunk, n); j++ {
			bodies = append(bodies, body(j))
		}
		if err := fn(bodies); err != nil {
			return err
		}
	}
	return nil
}

func pgCrewOpen(b *testing.B, url string) (*postgres.DB, *postgres.Queue) {
	db, err := postgres.Open(context.Background(), url)
	if err != nil {
		b.Fatal(err)
	}
	return db, db.Queue("bench")
}

func pgCrewPublish(b *testing.B, url string, n int) (func() error, func()) {
	db, q := pgCrewOpen(b, url)
	return func() error {
		return chunks(n, func(bodies [][]byte) error {
			_, err := q.PublishBatch(context.Background(), bodies)
			return err
		})
	}, db.Close
}

// pgInsertPublish is the floor of publishing: a multi-row INSERT of IDs and
// bodies, one statement and one commit per chunk.
func pgInsertPublish(b *testing.B, url string, n int) (func() error, func()) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE jobs (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body bytea NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	return func() error {
		return chunks(n, func(bodies [][]byte) error {
			var sql strings.Builder
			sql.WriteString(`INSERT INTO jobs (body) VALUES `)
			args := make([]any, len(bodies))
			for i, body := range bodies {
				if i > 0 {
					sql.WriteString(", ")
				}
				sql.WriteString("($" + strconv.Itoa(i+1) + ")")
				args[i] = body
			}
			_, err := conn.Exec(ctx, sql.String(), args...)
			return err
		})
	}, func() { _ = conn.Close(ctx) }
}

func pgCrewConsume(b *testing.B, url string, n int) (func() error, func()) {
	db, q := pgCrewOpen(b, url)
	err := chunks(n, func(bodies [][]byte) error {
		_, err := q.PublishBatch(context.Background(), bodies)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return func() error {
		c := &queue.Consumer{Source: q, Concurrency: queueConcurrency}
		if err := consumeN(context.Background(), c, n); err != nil {
			return err
		}
		s, err := q.Stats(context.Background())
		if err != nil {
			return err
		}
		if s != (postgres.Stats{}) {
			return fmt.Errorf("crew: %+v left after consuming", s)
		}
		return nil
	}, db.Close
}

// pgFloorConsume is the least a queue with leases must do: one goroutine
// that, in one transaction per 10 messages, leases 10 rows with FOR UPDATE
// SKIP LOCKED, handles them (no-op) and deletes them.
func pgFloorConsume(b *testing.B, url string, n int) (func() error, func()) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE jobs (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body bytea NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	err = chunks(n, func(bodies [][]byte) error {
		_, err := conn.Exec(ctx, `INSERT INTO jobs (body) SELECT unnest($1::bytea[])`, bodies)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return func() error {
		for done := 0; done < n; {
			got := 0
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				rows, _ := tx.Query(ctx, `SELECT id, body FROM jobs ORDER BY id LIMIT 10 FOR UPDATE SKIP LOCKED`)
				var ids []int64
				var body []byte
				var id int64
				_, err := pgx.ForEachRow(rows, []any{&id, &body}, func() error {
					ids = append(ids, id) // the handler: no-op
					return nil
				})
				if err != nil {
					return err
				}
				got = len(ids)
				_, err = tx.Exec(ctx, `DELETE FROM jobs WHERE id = ANY($1)`, ids)
				return err
			})
			if err != nil {
				return err
			}
			if got == 0 {
				return fmt.Errorf("floor: nothing to lease after %d of %d", done, n)
			}
			done += got
		}
		return nil
	}, func() { _ = conn.Close(ctx) }
}

// pgRiver returns a River client on a migrated database, whose workers
// count the jobs they handle and close all after the n-th.
func pgRiver(b *testing.B, url string, n int, all chan struct{}) (*river.Client[pgx.Tx], *pgxpool.Pool) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	driver := riverpgxv5.New(pool)
	migrator, err := rivermigrate.New(driver, nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		b.Fatal(err)
	}
	var handled atomic.Int64
	workers := river.NewWorkers()
	river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, job *river.Job[riverBenchArgs]) error {
		if handled.Add(1) == int64(n) {
			close(all)
		}
		return nil
	}))
	// Tuned for throughput, as River's documentation suggests: fetch again
	// 1ms after a fetch (default 100ms), and poll every 10ms (default 1s)
	// besides LISTEN/NOTIFY.
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
	return client, pool
}

func pgRiverInsert(client *river.Client[pgx.Tx], n int) error {
	return chunks(n, func(bodies [][]byte) error {
		params := make([]river.InsertManyParams, len(bodies))
		for i, body := range bodies {
			params[i] = river.InsertManyParams{Args: riverBenchArgs{Body: string(body)}}
		}
		_, err := client.InsertMany(context.Background(), params)
		return err
	})
}

func pgRiverPublish(b *testing.B, url string, n int) (func() error, func()) {
	client, pool := pgRiver(b, url, n, make(chan struct{}))
	return func() error { return pgRiverInsert(client, n) }, pool.Close
}

func pgRiverConsume(b *testing.B, url string, n int) (func() error, func()) {
	all := make(chan struct{})
	client, pool := pgRiver(b, url, n, all)
	if err := pgRiverInsert(client, n); err != nil {
		b.Fatal(err)
	}
	return func() error {
		ctx := context.Background()
		if err := client.Start(ctx); err != nil {
			return err
		}
		<-all
		return client.Stop(ctx)
	}, pool.Close
}
