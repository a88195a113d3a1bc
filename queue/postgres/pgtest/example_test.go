package pgtest_test

import (
	"context"
	"fmt"
	"log"

	"github.com/jackc/pgx/v5"

	"github.com/crewgo/crew/queue/postgres/pgtest"
)

// A test binary starts one server, in TestMain, and gives each test a
// database of its own.
func ExampleStart() {
	ctx := context.Background()
	srv, err := pgtest.Start(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Stop()

	url, err := srv.NewDatabase(ctx)
	if err != nil {
		log.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT 6 * 7`).Scan(&n); err != nil {
		log.Fatal(err)
	}
	fmt.Println(n)
	// Output: 42
}
