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

	"github.com/crewgo/crew/queue"
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
	// A '#' starts a fragment, which names nothing in a queue store: say so
	// rather than let the path silently end before it.
	if i := strings.IndexByte(rawURL, '#'); i >= 0 {
		return Request{}, nil, BadURL("queue URL %q has a fragment %q: a '#' in a path or value must be written %%23", redact(rawURL[:i]), rawURL[i:])
	}
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" {
		return Request{}, nil, BadURL("invalid queue URL %q: want SCHEME://..., such as sqlite://crew.db (supported: %s)", rawURL, supported)
	}
	mu.RLock()
	s, ok := schemes[u.Scheme] // url.Parse lower-cases the scheme
	mu.RUnlock()
	if !ok {
		return Request{}, nil, BadURL("unknown queue scheme %q (supported: %s)", u.Scheme, supported)
	}
	params, err := parseQuery(u, s.params)
	if err != nil {
		return Request{}, nil, err
	}
	return Request{URL: u, Params: params}, s.open, nil
}

// parseQuery reads u's query strictly. Unlike url.ParseQuery, which drops
// what it cannot read and keeps every repetition, it fails on the first
// bad part and on a name that is not in known.
func parseQuery(u *url.URL, known []string) (map[string]string, error) {
	params := map[string]string{}
	if u.RawQuery == "" {
		return params, nil
	}
	where := u.Redacted()
	for part := range strings.SplitSeq(u.RawQuery, "&") {
		if strings.ContainsRune(part, ';') {
			return nil, BadURL("queue URL %q: a ';' in the query part %q: separate parameters with '&', and write a ';' in a value as %%3B", where, part)
		}
		rawName, rawValue, _ := strings.Cut(part, "=")
		name, err := url.QueryUnescape(rawName)
		if err == nil && name == "" {
			return nil, BadURL("queue URL %q: the query part %q has no parameter name", where, part)
		}
		value, err2 := url.QueryUnescape(rawValue)
		if err != nil || err2 != nil {
			return nil, BadURL("queue URL %q: bad %%-escape in the query part %q", where, part)
		}
		if !slices.Contains(known, name) {
			return nil, BadURL("queue URL %q: unknown parameter %q (known: %s)", where, name, knownList(known))
		}
		if _, dup := params[name]; dup {
			return nil, BadURL("queue URL %q: parameter %q given twice", where, name)
		}
		params[name] = value
	}
	return params, nil
}

// redact returns rawURL with any password replaced by "xxxxx", for error
// messages.
func redact(rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil {
		return u.Redacted()
	}
	return rawURL
}

func knownList(known []string) string {
	if len(known) == 0 {
		return "none"
	}
	return strings.Join(known, ", ")
}
