// Package backend is the registry of the queue URL schemes that the crew
// command understands. A backend package registers its scheme with
// [Register]; the commands open a queue with [Open], from a URL such as
// sqlite://crew.db?queue=emails.
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
	Stats(ctx context.Context, queue string) (Stats, error)
	// Dead lists the dead letters of this queue, oldest first.
	Dead(ctx context.Context) ([]DeadMessage, error)
	// Redrive makes the named dead letters of this queue ready again (all of
	// them when no ID is given) and returns how many it moved.
	Redrive(ctx context.Context, ids ...string) (int, error)
	// Purge deletes every dead letter of this queue and returns how many it
	// deleted.
	Purge(ctx context.Context) (int, error)
	// Close releases the store. No method may be called after it.
	Close() error
}

// Stats counts the messages of one queue by state.
type Stats struct {
	Ready   int // can be received now
	Leased  int // received and not yet settled
	Delayed int // published with a delay, or waiting out a retry backoff
	Dead    int // dead letters
}

// DeadMessage is one dead letter: the message as it was last delivered, why
// it was given up, and when.
type DeadMessage struct {
	Message *queue.Message
	Reason  string
	At      time.Time
}

// OpenFunc opens the queue that u names. The URL's scheme is the one the
// function was registered under.
type OpenFunc func(u *url.URL) (Backend, error)

var (
	mu      sync.RWMutex
	schemes = map[string]OpenFunc{}
)

// Register makes scheme (such as "sqlite") open queues with open. It panics
// if scheme is empty or registered already, or if open is nil: these are
// programming errors.
func Register(scheme string, open OpenFunc) {
	scheme = strings.ToLower(scheme)
	if scheme == "" || open == nil {
		panic("backend: Register needs a scheme and an OpenFunc")
	}
	mu.Lock()
	defer mu.Unlock()
	if _, dup := schemes[scheme]; dup {
		panic(fmt.Sprintf("backend: scheme %q registered twice", scheme))
	}
	schemes[scheme] = open
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
// a parameter that its backend does not accept.
type URLError struct {
	Msg string
}

func (e *URLError) Error() string { return e.Msg }

// BadURL returns a *URLError with a formatted message, for an OpenFunc to
// reject its URL with.
func BadURL(format string, args ...any) error {
	return &URLError{Msg: fmt.Sprintf(format, args...)}
}

// Open parses rawURL and opens the queue it names with the function
// registered for its scheme. An unparsable URL, a URL without a scheme and
// an unknown scheme are *URLError errors that name the supported schemes.
func Open(rawURL string) (Backend, error) {
	supported := strings.Join(Schemes(), ", ")
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" {
		return nil, BadURL("invalid queue URL %q: want SCHEME://..., such as sqlite://crew.db (supported: %s)", rawURL, supported)
	}
	mu.RLock()
	open := schemes[strings.ToLower(u.Scheme)]
	mu.RUnlock()
	if open == nil {
		return nil, BadURL("unknown queue scheme %q (supported: %s)", u.Scheme, supported)
	}
	return open(u)
}
