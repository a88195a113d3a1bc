// Package sqlitequeue opens sqlite:// queue URLs with the module
// github.com/crewgo/crew/queue/sqlite, crew's embedded durable queue.
//
// The URL names a file, relative to the working directory or absolute, and
// its query selects the queue and tunes the database:
//
//	sqlite://crew.db                     queue "default" of ./crew.db
//	sqlite://data/jobs.db?queue=emails   queue "emails" of ./data/jobs.db
//	sqlite:///var/lib/crew/jobs.db       an absolute path
//
// Query parameters: queue (default "default"), synchronous (FULL, the
// default, or NORMAL), busy_timeout (such as 5s) and poll_interval (how
// often a waiting worker looks for messages that other processes published,
// such as 100ms). Any other parameter is an error.
//
// Commands that only read or tidy a queue open the file without creating
// it: a path that does not exist is an error naming it. Commands that
// publish, and a long-running worker, create the file on first use.
//
// Importing the package registers the sqlite scheme with package backend.
package sqlitequeue

import (
	"context"
	"maps"
	"net/url"
	"slices"
	"strings"

	"github.com/crewgo/crew/cmd/crew/internal/backend"
	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/sqlite"
)

// DefaultQueue is the queue a URL without ?queue= selects.
const DefaultQueue = "default"

func init() {
	backend.Register("sqlite", []string{"queue", "synchronous", "busy_timeout", "poll_interval"}, Open)
}

// Open opens the queue that r names. See the package documentation for the
// URL's form. Wrong parameter values are *backend.URLError errors; a file
// that cannot be opened, or is not a queue database, is another error. When
// r.Create is false, a file that does not exist is an error that names it,
// and nothing is created.
func Open(_ context.Context, r backend.Request) (backend.Backend, error) {
	u := r.URL
	path := u.Opaque
	if path == "" {
		path = u.Host + u.Path
	}
	if path == "" {
		return nil, backend.BadURL("queue URL %q names no file: want sqlite://FILE, such as sqlite://crew.db", u.Redacted())
	}
	name, opts, err := options(u, r.Params)
	if err != nil {
		return nil, err
	}
	if !r.Create {
		opts = append(opts, sqlite.MustExist())
	}
	db, err := sqlite.Open(path, opts...)
	if err != nil {
		return nil, err
	}
	return &queueBackend{Queue: db.Queue(name), db: db}, nil
}

// options reads the query parameters into a queue name and Open's options.
func options(u *url.URL, params map[string]string) (name string, opts []sqlite.Option, err error) {
	name = DefaultQueue
	for _, k := range slices.Sorted(maps.Keys(params)) {
		v := params[k]
		switch k {
		case "queue":
			if name, err = backend.NamedParam(u, k, v); err != nil {
				return "", nil, err
			}
		case "synchronous":
			if m := strings.ToUpper(v); m != "FULL" && m != "NORMAL" {
				return "", nil, backend.BadURL("queue URL %q: synchronous must be FULL or NORMAL, not %q", u.Redacted(), v)
			}
			opts = append(opts, sqlite.Synchronous(v))
		case "busy_timeout", "poll_interval":
			d, err := backend.DurationParam(u, k, v, "5s")
			if err != nil {
				return "", nil, err
			}
			if k == "busy_timeout" {
				opts = append(opts, sqlite.BusyTimeout(d))
			} else {
				opts = append(opts, sqlite.PollInterval(d))
			}
		}
	}
	return name, opts, nil
}

// queueBackend is one queue of an open database.
type queueBackend struct {
	*sqlite.Queue // Source, Publisher and Name
	db            *sqlite.DB
}

func (b *queueBackend) Queues(ctx context.Context) ([]string, error) { return b.db.Queues(ctx) }

func (b *queueBackend) Stats(ctx context.Context, name string) (queue.Depth, error) {
	return b.db.Queue(name).Stats(ctx)
}

func (b *queueBackend) Close() error { return b.db.Close() }
