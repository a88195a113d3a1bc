// Package sqsqueue opens sqs:// and sqs+http:// queue URLs with the module
// github.com/crewgo/crew/queue/sqs, on Amazon SQS or a local SQS endpoint.
//
// The URL is the queue's URL with the scheme sqs (https) or sqs+http:
//
//	sqs://sqs.eu-west-1.amazonaws.com/123456789012/emails
//	sqs+http://127.0.0.1:9324/000000000000/jobs?region=us-east-1
//
// Query parameters: region (else AWS_REGION or the configuration's, else the
// one in an amazonaws.com host name), dlq (the URL of the dead-letter queue,
// else the queue's RedrivePolicy's) and wait (the longest long poll, from 1s
// to 20s, such as 5s; 20s by default). Credentials come from the standard AWS chain. crew
// never creates or deletes an SQS queue: one that does not exist is an
// error naming it, whatever the command.
//
// Importing the package registers the schemes with package backend.
package sqsqueue

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/crewgo/crew/cmd/crew/internal/backend"
	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/sqs"
)

func init() {
	for _, scheme := range []string{"sqs", "sqs+http"} {
		backend.Register(scheme, []string{"region", "dlq", "wait"}, Open)
	}
}

// Open opens the SQS queue that r names; see the package documentation.
// Wrong parameter values and a URL that names no queue are
// *backend.URLError errors; a queue that does not exist, or that SQS does
// not let the credentials read, is another error, which names the queue.
func Open(ctx context.Context, r backend.Request) (backend.Backend, error) {
	u := r.URL
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if u.Host == "" || u.User != nil || len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return nil, backend.BadURL("queue URL %q: want %s://HOST/ACCOUNT/QUEUE, such as sqs://sqs.us-east-1.amazonaws.com/123456789012/jobs", u.Redacted(), u.Scheme)
	}
	q := url.Values{}
	var opts []sqs.Option
	for k, v := range r.Params {
		switch k {
		case "region", "dlq":
			if v == "" {
				return nil, backend.BadURL("queue URL %q: %s must not be empty", u.Redacted(), k)
			}
			q.Set(k, v)
		case "wait":
			d, err := time.ParseDuration(v)
			if err != nil || d < time.Second || d > sqs.MaxWaitTime {
				return nil, backend.BadURL("queue URL %q: wait must be a duration from 1s to 20s (SQS waits in whole seconds), such as 5s, not %q", u.Redacted(), v)
			}
			opts = append(opts, sqs.WaitTime(d))
		}
	}
	raw := (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: "/" + parts[0] + "/" + parts[1], RawQuery: q.Encode()}).String()
	queue, err := sqs.Open(ctx, raw, opts...)
	if err != nil {
		return nil, fmt.Errorf("queue %s: %w", parts[1], err)
	}
	return &queueBackend{Queue: queue, name: parts[1]}, nil
}

// queueBackend is one SQS queue.
type queueBackend struct {
	*sqs.Queue // Source, Publisher, Redrive, Purge, Close
	name       string
}

func (b *queueBackend) Name() string { return b.name }

// Queues lists the queue of the URL: crew does not look at the account's
// other queues.
func (b *queueBackend) Queues(context.Context) ([]string, error) { return []string{b.name}, nil }

// Stats reads SQS's approximate counts of the queue, which must be the
// URL's.
func (b *queueBackend) Stats(ctx context.Context, name string) (queue.Depth, error) {
	if name != b.name {
		return queue.Depth{}, fmt.Errorf("sqs: only the queue of the URL, %s, can be read, not %s", b.name, name)
	}
	return b.Queue.Stats(ctx)
}
