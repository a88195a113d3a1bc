package jetstream

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/crewgo/crew/queue/queueurl"
)

// ErrBadURL is wrapped by Open's errors for a URL that is wrong in itself,
// whatever the servers say: a malformed query, an unknown or repeated
// parameter, a bad value.
var ErrBadURL = errors.New("jetstream: bad queue URL")

// URLParams lists the query parameters that Open accepts.
var URLParams = []string{"queue", "stream", "consumer", "subject", "ack_wait", "creds", "nkey", "tls_ca", "tls_cert", "tls_key"}

// Open connects to the NATS servers of rawURL and opens the queue it names:
//
//	nats://HOST:PORT?queue=NAME
//	nats://USER:PASSWORD@HOST:PORT?queue=NAME      user and password
//	nats://TOKEN@HOST:PORT?queue=NAME              a token
//	tls://HOST:PORT?queue=NAME                     TLS, with the system's CAs
//	nats://H1:4222,nats://H2:4222?queue=NAME       several servers of a cluster
//
// The query selects the queue (queue, "default" if absent), an existing
// stream and consumer (stream, consumer; see the Stream and Consumer
// options), the subject (subject) and the AckWait of a consumer that Open
// creates (ack_wait, such as 1m). It takes credentials from files, as the
// nats command does: creds (a .creds file), nkey (an nkey seed file),
// tls_ca, tls_cert and tls_key (PEM files; any of them makes the
// connection use TLS). Any other parameter, a parameter given twice, a
// malformed query, a fragment or a bad value is an error that names it
// (package queueurl reads the query, as for every crew backend).
//
// Options given to Open apply after those of the URL.
//
// The client reconnects without end after a lost connection; until it has,
// Receive and Publish fail with errors that clear. Close closes the
// connection. Open returns when the queue is ready, or with ctx's error.
func Open(ctx context.Context, rawURL string, options ...Option) (*Queue, error) {
	servers, params, err := queueurl.Parse(rawURL, URLParams)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrBadURL, redact(servers), err)
	}
	name := params["queue"]
	if name == "" {
		name = "default"
	}
	if !validName.MatchString(name) {
		return nil, fmt.Errorf("%w %q: invalid queue name %q: use letters, digits, '-' and '_'", ErrBadURL, redact(servers), name)
	}
	var opts []Option
	if v, ok := params["stream"]; ok {
		opts = append(opts, Stream(v))
	}
	if v, ok := params["consumer"]; ok {
		opts = append(opts, Consumer(v))
	}
	if v, ok := params["subject"]; ok {
		opts = append(opts, Subject(v))
	}
	if v, ok := params["ack_wait"]; ok {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second {
			return nil, fmt.Errorf("%w %q: ack_wait must be a duration of at least 1s, such as 30s, not %q", ErrBadURL, redact(servers), v)
		}
		opts = append(opts, AckWait(d))
	}
	opts = append(opts, options...)
	nc, err := connect(ctx, servers, params)
	if err != nil {
		return nil, err
	}
	js, err := natsjs.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	q, err := newQueue(ctx, js, name, opts...)
	if err != nil {
		nc.Close()
		return nil, err
	}
	q.owned = true
	return q, nil
}

func connect(ctx context.Context, servers string, params map[string]string) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name("crew"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(false),
	}
	if v := params["creds"]; v != "" {
		opts = append(opts, nats.UserCredentials(v))
	}
	if v := params["nkey"]; v != "" {
		o, err := nats.NkeyOptionFromSeed(v)
		if err != nil {
			return nil, fmt.Errorf("jetstream: nkey %s: %w", v, err)
		}
		opts = append(opts, o)
	}
	if v := params["tls_ca"]; v != "" {
		opts = append(opts, nats.RootCAs(v))
	}
	cert, key := params["tls_cert"], params["tls_key"]
	if (cert == "") != (key == "") {
		return nil, fmt.Errorf("%w %q: tls_cert and tls_key go together", ErrBadURL, redact(servers))
	}
	if cert != "" {
		opts = append(opts, nats.ClientCert(cert, key))
	}
	if deadline, ok := ctx.Deadline(); ok {
		opts = append(opts, nats.Timeout(time.Until(deadline)))
	}
	nc, err := nats.Connect(servers, opts...)
	if err != nil {
		return nil, fmt.Errorf("jetstream: connect to %s: %w", redact(servers), err)
	}
	return nc, nil
}

// redact hides passwords and tokens in a server list, for error messages.
func redact(servers string) string {
	parts := strings.Split(servers, ",")
	for i, p := range parts {
		if u, err := url.Parse(p); err == nil && u.User != nil {
			u.User = url.User("xxxxx")
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}
