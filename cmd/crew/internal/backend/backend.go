// Package backend is the registry of the queue URL schemes that the crew
// command understands. A backend package registers its scheme with
// [Register], naming every query parameter it accepts; the commands open a
// queue with [Open], from a URL such as sqlite://crew.db?queue=emails.
//
// Every URL is read by one strict parser, whatever its scheme: a query that
// does not parse (a bad %-escape, a ';'), a fragment, a parameter given
// twice or a parameter that the scheme did not register is a [*URLError]
// that names the bad part, and the backend is never asked to open it. A
// typo in a URL therefore fails loudly instead of silently selecting
// another queue or file.
package backend

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/queueurl"
)

// Backend is one named queue of a queue store, opened from a URL. It
// receives and publishes messages, and answers the questions of the
// operator commands (stats, dead letters). Every method must be safe for
// concurrent use.
type Backend interface {
	queue.Source
	queue.Publisher

	// Name is the name of the queue the URL selected.
	Name() string
	// Queues lists, sorted, the queues of the store that hold any message,
	// dead letters included.
	Queues(ctx context.Context) ([]string, error)
	// Stats counts the messages of the named queue of the same store.
	Stats(ctx context.Context, name string) (queue.Depth, error)
	// Dead lists the dead letters of this queue, oldest first.
	Dead(ctx context.Context) ([]queue.DeadMessage, error)
	// Redrive makes the named dead letters of this queue ready again (all of
	// them when no ID is given) and returns how many it moved.
	Redrive(ctx context.Context, ids ...string) (int, error)
	// Purge deletes every dead letter of this queue and returns how many it
	// deleted.
	Purge(ctx context.Context) (int, error)
	// Close releases the store. No method may be called after it.
	Close() error
}

// Request is one queue URL, parsed strictly, as an [OpenFunc] receives it.
type Request struct {
	// URL is the parsed URL. Its fragment is always empty. Its RawQuery
	// must not be read again: Params holds the query, checked.
	URL *url.URL
	// Params is the query: each parameter once, only names that the scheme
	// registered, %-escapes (and '+' for a space) decoded.
	Params map[string]string
	// Create tells whether the command may create the store: true for a
	// command that writes (crew enqueue, a long-running crew work). When
	// false (crew stats, crew dead, crew work --exit-when-empty), a store
	// that does not exist is an error that names it, and nothing is
	// created.
	Create bool
}

// OpenFunc opens the queue that r names. The URL's scheme is the one the
// function was registered under. It should return promptly when ctx ends.
// Wrong parameter values are *URLError errors (see [BadURL]); a store that
// cannot be reached or opened is any other error.
type OpenFunc func(ctx context.Context, r Request) (Backend, error)

type scheme struct {
	params []string // sorted
	open   OpenFunc
}

var (
	mu      sync.RWMutex
	schemes = map[string]scheme{}
)

// Register makes scheme (such as "sqlite") open queues with open; params
// lists every query parameter the scheme accepts, and [Open] rejects any
// other. Register a scheme once per spelling ("postgres" and
// "postgresql"). It panics if scheme is empty or registered already, if a
// parameter is empty or listed twice, or if open is nil: these are
// programming errors.
func Register(name string, params []string, open OpenFunc) {
	name = strings.ToLower(name)
	if name == "" || open == nil {
		panic("backend: Register needs a scheme and an OpenFunc")
	}
	sorted := slices.Sorted(slices.Values(params))
	for i, p := range sorted {
		if p == "" || i > 0 && sorted[i-1] == p {
			panic(fmt.Sprintf("backend: Register(%q): parameter %q empty or listed twice", name, p))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if _, dup := schemes[name]; dup {
		panic(fmt.Sprintf("backend: scheme %q registered twice", name))
	}
	schemes[name] = scheme{params: sorted, open: open}
}

// Schemes returns the registered schemes, sorted.
func Schemes() []string {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]string, 0, len(schemes))
	for s := range schemes {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// URLError is the error for a queue URL that is wrong in itself, whatever
// the state of the store it names: unparsable, of an unknown scheme, or with
// a query or parameter that its backend does not accept. The crew command
// treats it as a usage error.
type URLError struct {
	Msg string
}

func (e *URLError) Error() string { return e.Msg }

// BadURL returns a *URLError with a formatted message, for an OpenFunc to
// reject its URL with.
func BadURL(format string, args ...any) error {
	return &URLError{Msg: fmt.Sprintf(format, args...)}
}

// NamedParam returns value, the value of the query parameter name of u,
// or a *URLError if it is empty: for parameters that name something, such as
// queue or schema.
func NamedParam(u *url.URL, name, value string) (string, error) {
	if value == "" {
		return "", BadURL("queue URL %q: the %s name must not be empty", u.Redacted(), name)
	}
	return value, nil
}

// DurationParam parses value, the value of the query parameter name of u,
// as a duration of at least 1ms, or returns a *URLError that gives example
// (such as "5s").
func DurationParam(u *url.URL, name, value, example string) (time.Duration, error) {
	d, err := time.ParseDuration(value)
	if err != nil || d < time.Millisecond {
		return 0, BadURL("queue URL %q: %s must be a duration of at least 1ms, such as %s, not %q", u.Redacted(), name, example, value)
	}
	return d, nil
}

// Open parses rawURL strictly and opens the queue it names with the
// function registered for its scheme, passing ctx and create through (see
// [Request.Create]). It returns a *URLError, without calling the backend,
// for a URL that does not parse or has no scheme, an unknown scheme, a
// fragment, a malformed query (a bad %-escape, a ';', an empty parameter
// name), a parameter given twice, or a parameter that the scheme did not
// register. Each error names the bad part.
func Open(ctx context.Context, rawURL string, create bool) (Backend, error) {
	r, open, err := parse(rawURL)
	if err != nil {
		return nil, err
	}
	r.Create = create
	return open(ctx, r)
}

// parse checks rawURL and returns its Request and the function that opens
// it.
func parse(rawURL string) (Request, OpenFunc, error) {
	supported := strings.Join(Schemes(), ", ")
	scheme, _, _ := strings.Cut(rawURL, ":")
	mu.RLock()
	s, known := schemes[strings.ToLower(scheme)]
	mu.RUnlock()
	_, params, err := queueurl.Parse(rawURL, s.params)
	if err != nil && known {
		// Name the URL without its fragment, which url.Parse would keep;
		// the error then reads on: queue URL "x" has a fragment "#y".
		where, _, fragment := strings.Cut(rawURL, "#")
		if fragment {
			return Request{}, nil, BadURL("queue URL %q %v", redact(where), err)
		}
		return Request{}, nil, BadURL("queue URL %q: %v", redact(where), err)
	}
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" {
		return Request{}, nil, BadURL("invalid queue URL %q: want SCHEME://..., such as sqlite://crew.db (supported: %s)", rawURL, supported)
	}
	if !known {
		return Request{}, nil, BadURL("unknown queue scheme %q (supported: %s)", u.Scheme, supported)
	}
	return Request{URL: u, Params: params}, s.open, nil
}

// redact returns rawURL with any password replaced by "xxxxx", for error
// messages.
func redact(rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil {
		return u.Redacted()
	}
	return rawURL
}
