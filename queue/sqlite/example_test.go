package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/sqlite"
)

// exampleDB opens a queue file in a new temporary directory; the returned
// function closes it and removes the directory.
func exampleDB(opts ...sqlite.Option) (*sqlite.DB, func()) {
	dir, err := os.MkdirTemp("", "crew-sqlite-example")
	if err != nil {
		log.Fatal(err)
	}
	db, err := sqlite.Open(filepath.Join(dir, "crew.db"), opts...)
	if err != nil {
		log.Fatal(err)
	}
	return db, func() {
		db.Close()
		os.RemoveAll(dir)
	}
}

// A consumer handles what was published, and drains when its context ends.
func Example() {
	db, done := exampleDB()
	defer done()
	q := db.Queue("emails")
	ctx := context.Background()
	for _, to := range []string{"ada@example.com", "grace@example.com"} {
		if _, err := q.Publish(ctx, []byte(to)); err != nil {
			log.Fatal(err)
		}
	}

	runCtx, stop := context.WithCancel(ctx)
	sent := 0
	c := &queue.Consumer{
		Source:      q,
		Concurrency: 1,
		Handler: func(ctx context.Context, m *queue.Message) error {
			fmt.Println("sending to", string(m.Body))
			if sent++; sent == 2 {
				stop() // as SIGTERM would: the consumer drains and returns
			}
			return nil
		},
		Logger: slog.New(slog.DiscardHandler),
	}
	if err := c.Run(runCtx); err != nil {
		log.Fatal(err)
	}
	s, _ := q.Stats(ctx)
	fmt.Printf("%+v\n", s)
	// Output:
	// sending to ada@example.com
	// sending to grace@example.com
	// {Ready:0 Leased:0 Delayed:0 Dead:0}
}

func ExampleOpen() {
	dir, _ := os.MkdirTemp("", "crew-sqlite-example")
	defer os.RemoveAll(dir)

	// The file is created if needed. NORMAL trades the last commits before
	// a power cut for speed; the default, FULL, loses nothing.
	db, err := sqlite.Open(filepath.Join(dir, "crew.db"),
		sqlite.Synchronous("NORMAL"),
		sqlite.BusyTimeout(10*time.Second),
		sqlite.PollInterval(250*time.Millisecond))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	_, err = sqlite.Open(filepath.Join(dir, "crew.db"), sqlite.Synchronous("OFF"))
	fmt.Println(err)
	// Output:
	// sqlite: Synchronous("OFF"): the mode must be FULL or NORMAL
}

func ExampleSynchronous() {
	db, done := exampleDB(sqlite.Synchronous("NORMAL"))
	defer done()
	id, _ := db.Queue("thumbnails").Publish(context.Background(), []byte("img-7.png"))
	fmt.Println("published", id)
	// Output:
	// published 1
}

func ExampleDB_Queue() {
	db, done := exampleDB()
	defer done()
	ctx := context.Background()
	// Queues share the file but not their messages.
	_, _ = db.Queue("emails").Publish(ctx, []byte("hello"))
	fmt.Println(db.Queue("emails").Name(), "and", db.Queue("reports").Name())
	s, _ := db.Queue("reports").Stats(ctx)
	fmt.Println("reports ready:", s.Ready)
	// Output:
	// emails and reports
	// reports ready: 0
}

func ExampleDB_Queues() {
	db, done := exampleDB()
	defer done()
	ctx := context.Background()
	_, _ = db.Queue("reports").Publish(ctx, []byte("q3"))
	_, _ = db.Queue("emails").Publish(ctx, []byte("hello"))
	names, _ := db.Queues(ctx)
	fmt.Println(names)
	// Output:
	// [emails reports]
}

func ExampleDB_Close() {
	db, done := exampleDB()
	defer done()
	q := db.Queue("emails")
	received := make(chan error)
	go func() {
		_, err := q.Receive(context.Background(), 1, time.Minute) // waits: the queue is empty
		received <- err
	}()
	db.Close()
	err := <-received
	fmt.Println(errors.Is(err, sqlite.ErrClosed))
	// Output:
	// true
}

func ExampleQueue_Publish() {
	db, done := exampleDB()
	defer done()
	q := db.Queue("jobs")
	ctx := context.Background()
	_, _ = q.Publish(ctx, []byte("routine"))
	_, _ = q.Publish(ctx, []byte("urgent"), queue.Priority(10), queue.Attribute("tenant", "acme"))
	_, _ = q.Publish(ctx, []byte("tomorrow"), queue.Delay(24*time.Hour))

	msgs, _ := q.Receive(ctx, 10, time.Minute)
	for _, m := range msgs {
		fmt.Println(m.ID, string(m.Body), m.Attributes)
	}
	s, _ := q.Stats(ctx)
	fmt.Printf("%+v\n", s)
	// Output:
	// 2 urgent map[tenant:acme]
	// 1 routine map[]
	// {Ready:0 Leased:2 Delayed:1 Dead:0}
}

func ExampleQueue_PublishBatch() {
	db, done := exampleDB()
	defer done()
	q := db.Queue("lines")
	ids, err := q.PublishBatch(context.Background(), [][]byte{[]byte("a"), []byte("b"), []byte("c")})
	fmt.Println(ids, err)
	// Output:
	// [1 2 3] <nil>
}

func ExampleQueue_Stats() {
	db, done := exampleDB()
	defer done()
	q := db.Queue("jobs")
	ctx := context.Background()
	_, _ = q.PublishBatch(ctx, [][]byte{[]byte("a"), []byte("b"), []byte("c")})
	msgs, _ := q.Receive(ctx, 1, time.Minute)
	_ = q.Nack(ctx, msgs[0], time.Hour) // retry in an hour

	s, _ := q.Stats(ctx)
	fmt.Printf("%+v\n", s)
	// Output:
	// {Ready:2 Leased:0 Delayed:1 Dead:0}
}

func ExampleQueue_Dead() {
	db, done := exampleDB()
	defer done()
	q := db.Queue("jobs")
	ctx := context.Background()
	_, _ = q.Publish(ctx, []byte("{not json"))
	msgs, _ := q.Receive(ctx, 1, time.Minute)
	_ = q.DeadLetter(ctx, msgs[0], errors.New("cannot parse"))

	dead, _ := q.Dead(ctx)
	for _, d := range dead {
		fmt.Printf("%s %q after %d attempt: %s\n", d.Message.ID, d.Message.Body, d.Message.Attempt, d.Reason)
	}
	// Output:
	// 1 "{not json" after 1 attempt: cannot parse
}

func ExampleQueue_Redrive() {
	db, done := exampleDB()
	defer done()
	q := db.Queue("jobs")
	ctx := context.Background()
	_, _ = q.Publish(ctx, []byte("charge card 42"))
	msgs, _ := q.Receive(ctx, 1, time.Minute)
	_ = q.DeadLetter(ctx, msgs[0], errors.New("payment service down"))

	// The outage is over: put every dead letter back (or name some IDs).
	n, _ := q.Redrive(ctx)
	fmt.Println("redriven:", n)
	msgs, _ = q.Receive(ctx, 1, time.Minute)
	fmt.Println(string(msgs[0].Body), "attempt", msgs[0].Attempt)
	// Output:
	// redriven: 1
	// charge card 42 attempt 1
}

func ExampleQueue_Purge() {
	db, done := exampleDB()
	defer done()
	q := db.Queue("jobs")
	ctx := context.Background()
	_, _ = q.Publish(ctx, []byte("obsolete"))
	msgs, _ := q.Receive(ctx, 1, time.Minute)
	_ = q.DeadLetter(ctx, msgs[0], errors.New("no longer needed"))

	n, _ := q.Purge(ctx)
	s, _ := q.Stats(ctx)
	fmt.Println("purged:", n, "dead left:", s.Dead)
	// Output:
	// purged: 1 dead left: 0
}

// Two DBs on one file stand for two processes: the second one's waiting
// Receive sees the first one's publish at its next poll.
func ExamplePollInterval() {
	dir, _ := os.MkdirTemp("", "crew-sqlite-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "crew.db")
	producer, _ := sqlite.Open(path)
	defer producer.Close()
	worker, _ := sqlite.Open(path, sqlite.PollInterval(20*time.Millisecond))
	defer worker.Close()

	got := make(chan string)
	go func() {
		msgs, _ := worker.Queue("jobs").Receive(context.Background(), 1, time.Minute)
		got <- string(msgs[0].Body)
	}()
	_, _ = producer.Queue("jobs").Publish(context.Background(), []byte("from another process"))
	fmt.Println(<-got)
	// Output:
	// from another process
}

// Receive and the settling calls can be used without a queue.Consumer; a
// copy whose lease has passed on can no longer settle the message.
func ExampleQueue_Receive() {
	db, done := exampleDB()
	defer done()
	q := db.Queue("jobs")
	ctx := context.Background()
	_, _ = q.Publish(ctx, []byte("resize"))

	first, _ := q.Receive(ctx, 10, 50*time.Millisecond)
	again, _ := q.Receive(ctx, 10, time.Minute) // waits for the first lease to end
	fmt.Println("attempt", again[0].Attempt)
	fmt.Println(errors.Is(q.Ack(ctx, first[0]), queue.ErrLeaseLost))
	fmt.Println(q.Ack(ctx, again[0]))
	// Output:
	// attempt 2
	// true
	// <nil>
}
