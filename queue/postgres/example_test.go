package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/postgres"
)

// A worker that sends e-mails queued in PostgreSQL. Run it on as many
// machines as you like: they share the queue.
func Example() {
	ctx := context.Background()
	db, err := postgres.Open(ctx, os.Getenv("DATABASE_URL"), postgres.Schema("example"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	q := db.Queue("emails")
	for _, to := range []string{"ada@example.com", "alan@example.com"} {
		if _, err := q.Publish(ctx, []byte(to)); err != nil {
			log.Fatal(err)
		}
	}

	ctx, stop := context.WithCancel(ctx) // in a service: crew.Main's signals
	var sent atomic.Int32
	c := &queue.Consumer{
		Source:      q,
		Concurrency: 1,
		Handler: func(ctx context.Context, m *queue.Message) error {
			fmt.Println("send to", string(m.Body))
			if sent.Add(1) == 2 {
				stop() // the consumer drains: the acknowledgements are sent
			}
			return nil
		},
	}
	if err := c.Run(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// send to ada@example.com
	// send to alan@example.com
}

// An order and the e-mail about it are written in one transaction: the
// e-mail is queued if and only if the order is saved.
func ExampleQueue_PublishTx() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	db, err := postgres.New(pool, postgres.Schema("example_tx"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	q := db.Queue("emails")
	if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS example_tx.orders (id bigint PRIMARY KEY, email text NOT NULL)`); err != nil {
		log.Fatal(err)
	}

	placeOrder := func(id int, email string, fail bool) error {
		tx, err := pool.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx) // after Commit, does nothing
		if _, err := tx.Exec(ctx, `INSERT INTO example_tx.orders VALUES ($1, $2)`, id, email); err != nil {
			return err
		}
		if _, err := q.PublishTx(ctx, tx, []byte(email), queue.Attribute("order", fmt.Sprint(id))); err != nil {
			return err
		}
		if fail {
			return errors.New("payment declined") // rolls back the order and its e-mail
		}
		return tx.Commit(ctx)
	}
	fmt.Println(placeOrder(1, "ada@example.com", false))
	fmt.Println(placeOrder(2, "alan@example.com", true))

	s, err := q.Stats(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("e-mails queued:", s.Ready)
	// Output:
	// <nil>
	// payment declined
	// e-mails queued: 1
}

// PublishBatch adds many messages with one statement and one commit.
func ExampleQueue_PublishBatch() {
	ctx := context.Background()
	db, err := postgres.Open(ctx, os.Getenv("DATABASE_URL"), postgres.Schema("example_batch"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	q := db.Queue("thumbnails")
	ids, err := q.PublishBatch(ctx, [][]byte{[]byte("a.jpg"), []byte("b.jpg"), []byte("c.jpg")}, queue.Priority(1))
	if err != nil {
		log.Fatal(err)
	}
	later, err := q.Publish(ctx, []byte("d.jpg"), queue.Delay(time.Hour))
	if err != nil {
		log.Fatal(err)
	}
	s, err := q.Stats(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(ids), "published;", later != "", "delayed")
	fmt.Printf("%+v\n", s)
	// Output:
	// 3 published; true delayed
	// {Ready:3 Leased:0 Delayed:1 Dead:0}
}

// A message that cannot be handled is dead-lettered with its reason, looked
// at, and put back once the bug is fixed.
func ExampleQueue_Redrive() {
	ctx := context.Background()
	db, err := postgres.Open(ctx, os.Getenv("DATABASE_URL"), postgres.Schema("example_dead"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	q := db.Queue("invoices")
	if _, err := q.Publish(ctx, []byte(`{"amount": "twelve"}`)); err != nil {
		log.Fatal(err)
	}
	msgs, err := q.Receive(ctx, 1, time.Minute)
	if err != nil {
		log.Fatal(err)
	}
	if err := q.DeadLetter(ctx, msgs[0], errors.New("amount is not a number")); err != nil {
		log.Fatal(err)
	}

	dead, err := q.Dead(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, d := range dead {
		fmt.Printf("%s after %d attempt: %s\n", d.Message.Body, d.Message.Attempt, d.Reason)
	}
	n, err := q.Redrive(ctx) // all of them
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("redriven:", n)
	purged, err := q.Purge(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("purged:", purged)
	// Output:
	// {"amount": "twelve"} after 1 attempt: amount is not a number
	// redriven: 1
	// purged: 0
}

// Queues lists the queues that hold messages, for an operator's overview.
func ExampleDB_Queues() {
	ctx := context.Background()
	db, err := postgres.Open(ctx, os.Getenv("DATABASE_URL"), postgres.Schema("example_queues"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	for _, name := range []string{"reports", "emails"} {
		if _, err := db.Queue(name).Publish(ctx, []byte("x")); err != nil {
			log.Fatal(err)
		}
	}
	names, err := db.Queues(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(names)
	// Output: [emails reports]
}
