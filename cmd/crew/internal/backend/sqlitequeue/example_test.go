package sqlitequeue_test

import (
	"context"
	"fmt"

	"github.com/crewgo/crew/cmd/crew/internal/backend"
	_ "github.com/crewgo/crew/cmd/crew/internal/backend/sqlitequeue"
)

// A queue URL is read strictly: a mistyped parameter or a stray '#' is an
// error that names it, and no file is opened or created.
func Example() {
	ctx := context.Background()
	for _, raw := range []string{
		"sqlite://jobs.db?qeueu=emails",
		"sqlite://jobs.db#v2",
		"sqlite://jobs.db?queue=emails;v2",
	} {
		_, err := backend.Open(ctx, raw, true)
		fmt.Println(err)
	}
	// Output:
	// queue URL "sqlite://jobs.db?qeueu=emails": unknown parameter "qeueu" (known: busy_timeout, poll_interval, queue, synchronous)
	// queue URL "sqlite://jobs.db" has a fragment "#v2": a '#' in a path or value must be written %23
	// queue URL "sqlite://jobs.db?queue=emails;v2": a ';' in the query part "queue=emails;v2": separate parameters with '&', and write a ';' in a value as %3B
}
