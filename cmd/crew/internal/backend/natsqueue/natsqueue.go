// Package natsqueue opens nats:// queue URLs with the module
// github.com/crewgo/crew/queue/jetstream: queues on NATS JetStream, shared
// by workers on many machines.
//
// The URL names one server of the cluster (the client learns the others
// from it), and its query selects the queue:
//
//	nats://127.0.0.1:4222?queue=emails
//	nats://crew:PASSWORD@nats.internal:4222?queue=emails        user and password
//	nats://TOKEN@nats.internal:4222?queue=emails                a token
//	nats://nats.internal:4222?queue=emails&creds=/etc/crew.creds a credentials file
//	nats://nats.internal:4222?queue=emails&tls_ca=ca.pem        TLS
//	nats://nats.internal:4222?queue=invoices&stream=ORDERS&subject=orders.invoice
//
// Parameters: queue (default "default"); stream, consumer and subject, to
// use a stream (and consumer) that exists already instead of the stream
// CREW_<queue> with the subject crew.<queue> and the consumer
// crew_<queue>; ack_wait, the AckWait of a consumer that crew creates
// (default 30s, which equals crew work's default lease: keep them alike);
// creds, nkey, tls_ca, tls_cert and tls_key, files as the nats command
// takes them.
//
// A command that may create the queue (crew enqueue, crew work) creates
// the stream and the consumer on first use; the others (crew stats, crew
// dead, crew work --exit-when-empty) fail with an error naming the stream
// when it does not exist, and create nothing.
package natsqueue

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"

	"github.com/crewgo/crew/cmd/crew/internal/backend"
	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/jetstream"
)

func init() {
	backend.Register("nats", jetstream.URLParams, Open)
}

// Open connects to the server that r names and opens its queue. See the
// package documentation for the URL's form. A wrong parameter is a
// *backend.URLError; a server that cannot be reached, refused credentials
// and (when r.Create is false) a queue that does not exist are other
// errors. It gives up when ctx ends.
func Open(ctx context.Context, r backend.Request) (backend.Backend, error) {
	var opts []jetstream.Option
	if !r.Create {
		opts = append(opts, jetstream.NoCreate())
	}
	q, err := jetstream.Open(ctx, rawURL(r), opts...)
	if errors.Is(err, jetstream.ErrBadURL) {
		return nil, backend.BadURL("%v", err)
	}
	if err != nil {
		return nil, err
	}
	return &queueBackend{Queue: q}, nil
}

// rawURL returns r's URL with its checked parameters as its query.
func rawURL(r backend.Request) string {
	q := url.Values{}
	for k, v := range r.Params {
		q.Set(k, v)
	}
	u := *r.URL
	u.RawQuery = q.Encode()
	return u.String()
}

// queueBackend is one queue of a JetStream server.
type queueBackend struct {
	*jetstream.Queue // Source, Publisher, Name, Redrive, Purge, Close
}

// Queues lists the queues that crew created (the streams CREW_<queue>)
// and that hold any message, and this queue if it does.
func (b *queueBackend) Queues(ctx context.Context) ([]string, error) {
	lister := b.JetStream().StreamNames(ctx)
	var streams []string
	for name := range lister.Name() { // read to the end, or the lister's goroutine waits
		if queue, ok := strings.CutPrefix(name, "CREW_"); ok && queue != b.Name() {
			streams = append(streams, name)
		}
	}
	if err := lister.Err(); err != nil {
		return nil, err
	}
	var out []string
	for _, name := range streams {
		s, err := b.JetStream().Stream(ctx, name)
		if err != nil {
			return nil, err
		}
		if s.CachedInfo().State.Msgs > 0 {
			out = append(out, strings.TrimPrefix(name, "CREW_"))
		}
	}
	if s, err := b.Queue.Stats(ctx); err != nil {
		return nil, err
	} else if s != (jetstream.Stats{}) {
		out = append(out, b.Name())
	}
	slices.Sort(out)
	return out, nil
}

// Stats counts the messages of the named queue, opened as crew names its
// stream and consumer.
func (b *queueBackend) Stats(ctx context.Context, name string) (queue.Depth, error) {
	q := b.Queue
	if name != b.Name() {
		var err error
		if q, err = jetstream.New(b.JetStream(), name, jetstream.NoCreate()); err != nil {
			return queue.Depth{}, err
		}
		defer q.Close()
	}
	return q.Stats(ctx)
}
