// Package pgqueue opens postgres:// and postgresql:// queue URLs with the
// module github.com/crewgo/crew/queue/postgres: queues in a PostgreSQL
// database that workers on many machines share.
//
// The URL is a PostgreSQL connection URL, as libpq and pgx read it, with
// crew's own parameters added to its query:
//
//	postgres://app@db.internal:5432/app?sslmode=require&queue=emails
//	postgresql://localhost/app?schema=jobs
//
// crew's parameters are queue (default "default"), schema (the PostgreSQL
// schema that holds the queues, default "crew") and poll_interval (how
// often a waiting worker looks for messages whose delay or lease ran out,
// such as 250ms). They are removed before the rest reaches pgx, which
// accepts the connection parameters listed in Params. The password comes
// from the URL or, better, from $PGPASSWORD or a ~/.pgpass file, as with
// psql.
//
// A command that may create the queue store (crew enqueue, crew work)
// creates the schema on first use; the others (crew stats, crew dead, crew
// work --exit-when-empty) fail with an error naming it when it does not
// exist, and create nothing.
package pgqueue

import (
	"context"
	"maps"
	"net/url"
	"slices"

	"github.com/crewgo/crew/cmd/crew/internal/backend"
	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/postgres"
)

// DefaultQueue is the queue a URL without ?queue= selects.
const DefaultQueue = "default"

// crewParams are the query parameters that crew reads itself.
var crewParams = []string{"queue", "schema", "poll_interval"}

// Params are the connection parameters that a URL may give, passed on to
// pgx as they are.
var Params = []string{
	"application_name", "connect_timeout", "options", "password", "sslcert", "sslkey",
	"sslmode", "sslpassword", "sslrootcert", "sslsni", "target_session_attrs",
	"pool_max_conns", "pool_min_conns", "pool_max_conn_lifetime", "pool_max_conn_idle_time",
	"pool_health_check_period",
}

func init() {
	params := append(slices.Clone(crewParams), Params...)
	backend.Register("postgres", params, Open)
	backend.Register("postgresql", params, Open)
}

// Open connects to the database that r names and opens its queue. See the
// package documentation for the URL's form. Wrong values of crew's
// parameters are *backend.URLError errors; a database that cannot be
// reached, a connection parameter that pgx rejects, and (when r.Create is
// false) a schema that does not exist are other errors. It gives up when
// ctx ends.
func Open(ctx context.Context, r backend.Request) (backend.Backend, error) {
	name, opts, err := options(r.URL, r.Params)
	if err != nil {
		return nil, err
	}
	if !r.Create {
		opts = append(opts, postgres.MustExist())
	}
	db, err := postgres.Open(ctx, connString(r.URL, r.Params), opts...)
	if err != nil {
		return nil, err
	}
	return &queueBackend{Queue: db.Queue(name), db: db}, nil
}

// connString returns the URL with only the connection parameters in its
// query, for pgx.
func connString(u *url.URL, params map[string]string) string {
	q := url.Values{}
	for k, v := range params {
		if !slices.Contains(crewParams, k) {
			q.Set(k, v)
		}
	}
	c := *u
	c.RawQuery = q.Encode()
	return c.String()
}

// options reads crew's own parameters.
func options(u *url.URL, params map[string]string) (name string, opts []postgres.Option, err error) {
	name = DefaultQueue
	for _, k := range slices.Sorted(maps.Keys(params)) {
		v := params[k]
		switch k {
		case "queue":
			if name, err = backend.NamedParam(u, k, v); err != nil {
				return "", nil, err
			}
		case "schema":
			if _, err := backend.NamedParam(u, k, v); err != nil {
				return "", nil, err
			}
			opts = append(opts, postgres.Schema(v))
		case "poll_interval":
			d, err := backend.DurationParam(u, k, v, "250ms")
			if err != nil {
				return "", nil, err
			}
			opts = append(opts, postgres.PollInterval(d))
		}
	}
	return name, opts, nil
}

// queueBackend is one queue of an open DB.
type queueBackend struct {
	*postgres.Queue // Source, Publisher and Name
	db              *postgres.DB
}

func (b *queueBackend) Queues(ctx context.Context) ([]string, error) { return b.db.Queues(ctx) }

func (b *queueBackend) Stats(ctx context.Context, name string) (queue.Depth, error) {
	return b.db.Queue(name).Stats(ctx)
}

func (b *queueBackend) Close() error {
	b.db.Close()
	return nil
}
