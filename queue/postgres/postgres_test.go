package postgres_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crewgo/crew"
	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/postgres"
)

// receiveNow leases what is ready within a short wait.
func receiveNow(t *testing.T, q *postgres.Queue, n int) []*queue.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	msgs, err := q.Receive(ctx, n, time.Minute)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Receive: %v", err)
	}
	return msgs
}

func TestPublishTxExistsIffCommitted(t *testing.T) {
	db := openDB(t)
	q := db.Queue("orders")
	pool, err := pgxpool.New(t.Context(), srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ctx := t.Context()

	rolledBack, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.PublishTx(ctx, rolledBack, []byte("never")); err != nil {
		t.Fatal(err)
	}
	if err := rolledBack.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := q.PublishBatchTx(ctx, tx, [][]byte{[]byte("a"), []byte("b")})
	if err != nil {
		t.Fatal(err)
	}
	if got := receiveNow(t, q, 10); len(got) != 0 {
		t.Fatalf("received %d messages of an uncommitted transaction", len(got))
	}
	// A Receive waiting when the transaction commits wakes for it.
	got := make(chan []*queue.Message, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		msgs, _ := q.Receive(wctx, 10, time.Minute)
		got <- msgs
	}()
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	msgs := <-got
	for len(msgs) < 2 {
		msgs = append(msgs, receiveNow(t, q, 10)...)
	}
	var bodies []string
	for _, m := range msgs {
		bodies = append(bodies, string(m.Body))
	}
	if want := []string{"a", "b"}; !slices.Equal(bodies, want) || msgs[0].ID != ids[0] || msgs[1].ID != ids[1] {
		t.Errorf("received %v (%s, %s), want %v (%v)", bodies, msgs[0].ID, msgs[1].ID, want, ids)
	}
	if err := q.Ack(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	if s, err := q.Stats(ctx); err != nil || s != (postgres.Stats{}) {
		t.Errorf("Stats %+v, %v: the rolled-back message exists", s, err)
	}
}

func TestPublishWakesReceiverOfAnotherDB(t *testing.T) {
	schema := newSchema(t)
	// A long poll interval: only the notification can wake the receiver.
	receiver := openSchema(t, schema, postgres.PollInterval(time.Hour)).Queue("q")
	publisher := openSchema(t, schema).Queue("q")
	got := make(chan []*queue.Message, 1)
	go func() {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		// A publish before the receiver's listener connects is not
		// missed either: the listener wakes every waiter once it listens.
		msgs, _ := receiver.Receive(ctx, 1, time.Minute)
		got <- msgs
	}()
	time.Sleep(200 * time.Millisecond) // let the listener connect; not needed for correctness
	id, err := publisher.Publish(t.Context(), []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	select {
	case msgs := <-got:
		if len(msgs) != 1 || msgs[0].ID != id {
			t.Fatalf("received %v, want message %s", msgs, id)
		}
		if waited := time.Since(start); waited > 5*time.Second {
			t.Errorf("woken %v after the publish", waited)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the receiver of another DB was not woken by a publish")
	}
}

func TestDeadRedrivePurge(t *testing.T) {
	q := openDB(t).Queue("jobs")
	ctx := t.Context()
	a, _ := q.Publish(ctx, []byte("a"), queue.Attribute("k", "v"), queue.Priority(3))
	b, _ := q.Publish(ctx, []byte("b"))
	msgs := receiveNow(t, q, 2)
	if len(msgs) != 2 {
		t.Fatalf("received %d messages, want 2", len(msgs))
	}
	for _, m := range msgs {
		if err := q.DeadLetter(ctx, m, errors.New("bad "+string(m.Body))); err != nil {
			t.Fatal(err)
		}
	}
	dead, err := q.Dead(ctx)
	if err != nil || len(dead) != 2 {
		t.Fatalf("Dead: %d, %v; want 2", len(dead), err)
	}
	if d := dead[0]; d.Message.ID != a || d.Reason != "bad a" || d.Message.Attributes["k"] != "v" || d.Message.Attempt != 1 || time.Since(d.At) > time.Minute {
		t.Errorf("first dead letter: %+v %+v", d, d.Message)
	}
	if s, err := q.Stats(ctx); err != nil || s != (postgres.Stats{Dead: 2}) {
		t.Errorf("Stats %+v, %v; want 2 dead", s, err)
	}
	if _, err := q.Redrive(ctx, "x"); err == nil {
		t.Error("Redrive of a non-ID succeeded")
	}
	if n, err := q.Redrive(ctx, a, "999999"); err != nil || n != 1 {
		t.Fatalf("Redrive(a) = %d, %v; want 1", n, err)
	}
	msgs = receiveNow(t, q, 2)
	if len(msgs) != 1 || msgs[0].ID != a || msgs[0].Attempt != 1 {
		t.Fatalf("after Redrive(a): %v", msgs)
	}
	if err := q.Ack(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	if n, err := q.Purge(ctx); err != nil || n != 1 {
		t.Fatalf("Purge = %d, %v; want 1 (%s)", n, err, b)
	}
	if s, err := q.Stats(ctx); err != nil || s != (postgres.Stats{}) {
		t.Errorf("Stats %+v, %v; want empty", s, err)
	}
}

func TestStatsAndQueues(t *testing.T) {
	db := openDB(t)
	ctx := t.Context()
	q := db.Queue("b")
	for range 3 {
		if _, err := q.Publish(ctx, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := q.Publish(ctx, []byte("later"), queue.Delay(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Queue("a").Publish(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if got := receiveNow(t, q, 1); len(got) != 1 {
		t.Fatalf("received %d messages, want 1", len(got))
	}
	if s, err := q.Stats(ctx); err != nil || s != (postgres.Stats{Ready: 2, Leased: 1, Delayed: 1}) {
		t.Errorf("Stats %+v, %v", s, err)
	}
	if names, err := db.Queues(ctx); err != nil || !slices.Equal(names, []string{"a", "b"}) {
		t.Errorf("Queues = %v, %v; want [a b]", names, err)
	}
	m := receiveNow(t, db.Queue("a"), 1)
	if len(m) != 1 || len(m[0].Body) != 0 {
		t.Errorf("a nil body came back as %v", m)
	}
}

func TestMigrationsRaceSafely(t *testing.T) {
	schema := newSchema(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			db, err := postgres.Open(t.Context(), srv.URL(), postgres.Schema(schema))
			if err == nil {
				db.Close()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Open while others open the same new schema: %v", err)
		}
	}
}

func TestMustExistCreatesNothing(t *testing.T) {
	schema := newSchema(t)
	_, err := postgres.Open(t.Context(), srv.URL(), postgres.Schema(schema), postgres.MustExist())
	if !errors.Is(err, postgres.ErrNoSchema) || !errors.Is(err, crew.ErrPermanent) || !strings.Contains(err.Error(), schema) {
		t.Fatalf("Open(MustExist) of a new schema = %v, want ErrNoSchema naming it", err)
	}
	conn, err := pgx.Connect(t.Context(), srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, schema).Scan(&exists); err != nil || exists {
		t.Errorf("the schema exists after Open(MustExist): %v, %v", exists, err)
	}
	openSchema(t, schema) // creates it
	openSchema(t, schema, postgres.MustExist())
}

func TestMissingDatabaseIsPermanent(t *testing.T) {
	u := strings.Replace(srv.URL(), "/postgres?", "/no_such_database?", 1)
	_, err := postgres.Open(t.Context(), u)
	if err == nil || !errors.Is(err, crew.ErrPermanent) {
		t.Fatalf("Open of a missing database = %v, want an error wrapping crew.ErrPermanent", err)
	}
}

func TestClosedDB(t *testing.T) {
	db := openDB(t)
	q := db.Queue("q")
	done := make(chan error, 1)
	go func() {
		_, err := q.Receive(context.Background(), 1, time.Minute)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond) // let Receive start waiting; not needed for correctness
	db.Close()
	if err := <-done; !errors.Is(err, postgres.ErrClosed) || !errors.Is(err, crew.ErrPermanent) {
		t.Errorf("waiting Receive at Close = %v, want ErrClosed", err)
	}
	if _, err := q.Publish(t.Context(), []byte("x")); !errors.Is(err, postgres.ErrClosed) {
		t.Errorf("Publish after Close = %v, want ErrClosed", err)
	}
	db.Close() // a second Close does nothing
}

func TestEmptyQueueNameIsPermanent(t *testing.T) {
	q := openDB(t).Queue("")
	if _, err := q.Publish(t.Context(), []byte("x")); !errors.Is(err, crew.ErrPermanent) {
		t.Errorf("Publish to an unnamed queue = %v, want crew.ErrPermanent", err)
	}
}

func TestNewUsesTheCallersPool(t *testing.T) {
	pool, err := pgxpool.New(t.Context(), srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	db, err := postgres.New(pool, postgres.Schema(newSchema(t)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Queue("q").Publish(t.Context(), []byte("x")); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := pool.Ping(t.Context()); err != nil {
		t.Errorf("the caller's pool after DB.Close: %v", err)
	}
}

func TestLongSchemaNameStillNotifies(t *testing.T) {
	schema := strings.Repeat("s", 63) // PostgreSQL's longest name
	receiver := openSchema(t, schema, postgres.PollInterval(time.Hour)).Queue("q")
	publisher := openSchema(t, schema).Queue("q")
	got := make(chan []*queue.Message, 1)
	go func() {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		msgs, _ := receiver.Receive(ctx, 1, time.Minute)
		got <- msgs
	}()
	id, err := publisher.Publish(t.Context(), []byte("x"))
	if err != nil {
		t.Fatalf("Publish in a schema with a 63-byte name: %v", err)
	}
	if msgs := <-got; len(msgs) != 1 || msgs[0].ID != id {
		t.Fatalf("received %v, want message %s", msgs, id)
	}
}

// TestReceiveWalksTheIndexOfATableThePlannerThinksEmpty fills a new queue
// faster than autovacuum analyses it, so that the planner's statistics
// still say the table is empty, and checks that a Receive of a few
// messages reads a few entries of the receive index, not all of them.
func TestReceiveWalksTheIndexOfATableThePlannerThinksEmpty(t *testing.T) {
	schema := newSchema(t)
	q := openSchema(t, schema).Queue("q")
	ctx := t.Context()
	// Below about this many, the planner walks the index anyway.
	const n = 100000
	bodies := make([][]byte, 1000)
	for i := range bodies {
		bodies[i] = []byte(strings.Repeat("x", 100))
	}
	for range n / len(bodies) {
		if _, err := q.PublishBatch(ctx, bodies); err != nil {
			t.Fatal(err)
		}
	}
	if got := receiveNow(t, q, 5); len(got) != 5 {
		t.Fatalf("received %d messages, want 5", len(got))
	}
	conn, err := pgx.Connect(ctx, srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	// A server process reports its statistics when it goes idle, at most
	// once a second, or ten seconds later.
	var read int64
	for deadline := time.Now().Add(30 * time.Second); read == 0; {
		err := conn.QueryRow(ctx, `SELECT coalesce(sum(idx_tup_read), 0) FROM pg_stat_user_indexes
			WHERE schemaname = $1 AND indexrelname = 'messages_ready'`, schema).Scan(&read)
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("no statistics for the receive index after 30s")
		}
		time.Sleep(100 * time.Millisecond) // polling a condition
	}
	if read >= n/10 {
		t.Errorf("receiving 5 messages of %d read %d entries of the receive index: the plan did not walk it in order", n, read)
	}
}

// schemaV1 is the DDL of version 1 of the schema, {schema} standing for
// the schema's quoted name, with its migrations table.
const schemaV1 = `CREATE SCHEMA {schema};
	CREATE TABLE {schema}.migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
	INSERT INTO {schema}.migrations (version) VALUES (1);
	CREATE TABLE {schema}.messages (
		id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		queue       text        NOT NULL,
		state       smallint    NOT NULL DEFAULT 0 CHECK (state IN (0, 2)),
		priority    integer     NOT NULL DEFAULT 0,
		ready_at    timestamptz NOT NULL DEFAULT now(),
		receipt     bigint,
		attempts    integer     NOT NULL DEFAULT 0,
		body        bytea       NOT NULL,
		attributes  jsonb,
		dead_at     timestamptz,
		dead_reason text
	) WITH (fillfactor = 90);
	CREATE INDEX messages_ready ON {schema}.messages (queue, priority DESC, id) WHERE state = 0;
	CREATE INDEX messages_dead ON {schema}.messages (queue, dead_at, id) WHERE state = 2;`

// A schema of version 1 keeps its messages when this version opens it:
// those never received get a first-received time at their first lease,
// those received before have none, and a redriven dead letter starts over.
func TestAVersion1SchemaIsMigrated(t *testing.T) {
	schema := newSchema(t)
	conn, err := pgx.Connect(t.Context(), srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	ddl := strings.ReplaceAll(schemaV1, "{schema}", pgx.Identifier{schema}.Sanitize())
	_, err = conn.Exec(t.Context(), ddl+`;
		INSERT INTO `+pgx.Identifier{schema, "messages"}.Sanitize()+` (queue, state, attempts, body, dead_at, dead_reason) VALUES
			('q', 0, 0, 'new', NULL, NULL),
			('q', 0, 2, 'retried', NULL, NULL),
			('q', 2, 3, 'dead', now(), 'it failed')`)
	if err != nil {
		t.Fatal(err)
	}
	q := openSchema(t, schema).Queue("q")
	before := time.Now().Truncate(time.Microsecond)
	msgs := receiveNow(t, q, 10)
	if len(msgs) != 2 {
		t.Fatalf("received %d messages, want 2", len(msgs))
	}
	for _, m := range msgs {
		switch string(m.Body) {
		case "new":
			if m.Attempt != 1 || m.FirstReceived.Before(before) || m.FirstReceived.After(time.Now()) {
				t.Errorf("the new message: attempt %d, FirstReceived %v; want 1, the time of this Receive", m.Attempt, m.FirstReceived)
			}
		case "retried":
			if m.Attempt != 3 || !m.FirstReceived.IsZero() {
				t.Errorf("the message received before the migration: attempt %d, FirstReceived %v; want 3 and zero", m.Attempt, m.FirstReceived)
			}
		}
	}
	dead, err := q.Dead(t.Context())
	if err != nil || len(dead) != 1 || !dead[0].Message.FirstReceived.IsZero() {
		t.Fatalf("Dead = %+v, %v; want the dead letter, with no FirstReceived", dead, err)
	}
	if n, err := q.Redrive(t.Context()); n != 1 || err != nil {
		t.Fatalf("Redrive = %d, %v", n, err)
	}
	if again := receiveNow(t, q, 1); len(again) != 1 || again[0].FirstReceived.Before(before) {
		t.Errorf("after Redrive received %v, want the dead letter, received anew", again)
	}
}

// A message moved to the dead letters keeps its first-received time.
func TestDeadLetterKeepsFirstReceived(t *testing.T) {
	q := openDB(t).Queue("q")
	if _, err := q.Publish(t.Context(), []byte("x")); err != nil {
		t.Fatal(err)
	}
	msgs := receiveNow(t, q, 1)
	if len(msgs) != 1 || msgs[0].FirstReceived.IsZero() {
		t.Fatalf("received %v, want one message with a FirstReceived", msgs)
	}
	if err := q.DeadLetter(t.Context(), msgs[0], errors.New("no")); err != nil {
		t.Fatal(err)
	}
	dead, err := q.Dead(t.Context())
	if err != nil || len(dead) != 1 || !dead[0].Message.FirstReceived.Equal(msgs[0].FirstReceived) {
		t.Fatalf("Dead = %+v, %v; want the message, first received at %v", dead, err, msgs[0].FirstReceived)
	}
}
