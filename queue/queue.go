package queue

import (
	"context"
	"errors"
	"time"
)

// ErrLeaseLost is returned by Ack, Nack and Extend for a message whose lease
// has passed on: the message was received again (by this consumer or
// another) after the lease this receipt belongs to, or it was deleted or
// dead-lettered. Such a call changes nothing.
var ErrLeaseLost = errors.New("queue: lease lost")

// LeaseLostError names one message whose lease had passed on when it was
// acknowledged. A Source's Ack joins one for each such message of a batch
// (errors.Join), so that a Consumer reports exactly those messages as
// LeaseLost and the rest of the batch, which was deleted, as Succeeded.
// errors.Is(err, ErrLeaseLost) holds for it.
type LeaseLostError struct {
	ID  string // the message's ID
	Err error  // the Source's description of the loss, wrapping ErrLeaseLost; may be nil
}

// Error returns Err's text, or one naming the message if Err is nil.
func (e *LeaseLostError) Error() string {
	if e.Err != nil {
		return e.Err.Error()
	}
	return "queue: message " + e.ID + ": lease lost"
}

// Unwrap returns ErrLeaseLost and Err.
func (e *LeaseLostError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrLeaseLost}
	}
	return []error{ErrLeaseLost, e.Err}
}

// Message is one message received from a Source.
type Message struct {
	ID         string
	Body       []byte
	Attributes map[string]string
	// Attempt counts deliveries: 1 on the first, and one more on every
	// later one, including redeliveries after a lease expired under a worker
	// that crashed.
	Attempt int
	// FirstReceived is when the message was first received: when its
	// first lease began. It is the same on every later delivery, so
	// time.Since(m.FirstReceived) tells how long the message has been
	// worked on, retries and their waits included. It is the zero Time
	// when the Source cannot know it: queue/jetstream sets it only on a
	// message's first delivery (JetStream keeps no time of first
	// delivery), and a message that an older version of a store had
	// already received before the store recorded the time has none.
	// Redriving a dead letter starts it over, as it does Attempt.
	FirstReceived time.Time
	// Receipt identifies the lease under which this copy was received. It
	// belongs to the Source that set it: handlers must not change it.
	Receipt any
}

// Source is a queue that a Consumer receives from. Every method must be safe
// for concurrent use. Package memqueue and the module queue/sqlite implement
// it, and package queuetest checks an implementation against the semantics
// below.
//
// A Source that can tell when a message was first received sets each
// Message's FirstReceived, the same on every delivery of the message; one
// that cannot leaves it zero.
//
// A Source tells an error that will never clear from one that may: a
// corrupt or read-only store, a full disk, bad credentials, a queue that
// does not exist are returned wrapping crew.ErrPermanent (errors.Is(err,
// crew.ErrPermanent)), with a message that names the store and the cause.
// A Consumer stops on such an error from any method, releases what it
// holds, and returns it from Run. Every other error (a busy database, a
// network blip, a timeout) is taken as transient and retried.
type Source interface {
	// Receive waits until at least one message is ready, or ctx ends, and
	// returns up to max ready messages, each leased for lease: invisible to
	// every other Receive until the lease ends, is extended, or is given up
	// with Nack. Higher priorities come first, then older messages. It
	// returns ctx's error (and no messages) if ctx ends while it waits.
	// Messages it returns together with an error are leased all the same:
	// a Consumer gives them back at once.
	Receive(ctx context.Context, max int, lease time.Duration) ([]*Message, error)
	// Ack deletes messages that were handled. A message whose lease has
	// passed on is left alone and reported in the error as a
	// *LeaseLostError naming it, one for each such message, joined with
	// errors.Join (and possibly wrapped); the others are still deleted. An
	// error that names no message says nothing of which were deleted: a
	// Consumer then counts every message of the batch as LeaseLost.
	Ack(ctx context.Context, msgs ...*Message) error
	// Nack gives up the lease on m: it becomes ready again after delay
	// (at once for zero) and keeps its attempt count.
	Nack(ctx context.Context, m *Message, delay time.Duration) error
	// Extend makes m's lease end lease from now.
	Extend(ctx context.Context, m *Message, lease time.Duration) error
	// DeadLetter moves m out of the queue into its dead letters, recording
	// reason, so that it is never received again unless redriven.
	DeadLetter(ctx context.Context, m *Message, reason error) error
}

// Publisher adds messages to a queue.
type Publisher interface {
	// Publish adds a message with body and returns its ID.
	Publish(ctx context.Context, body []byte, opts ...PublishOption) (id string, err error)
}

// PublishOption sets how a message is published.
type PublishOption func(*PublishOptions)

// PublishOptions holds what the PublishOption values of one Publish call
// ask for. Publisher implementations read it with NewPublishOptions.
type PublishOptions struct {
	Delay      time.Duration     // the message becomes ready this long after Publish
	Priority   int               // higher first; 0 by default
	Attributes map[string]string // copied into the message
}

// NewPublishOptions applies opts to the zero PublishOptions.
func NewPublishOptions(opts ...PublishOption) PublishOptions {
	var o PublishOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Delay makes the message ready only d after it is published.
func Delay(d time.Duration) PublishOption {
	return func(o *PublishOptions) { o.Delay = d }
}

// Priority sets the message's priority: among ready messages, higher ones
// are received first. The default is 0; negative priorities are allowed.
func Priority(p int) PublishOption {
	return func(o *PublishOptions) { o.Priority = p }
}

// Attribute sets one attribute of the message.
func Attribute(key, value string) PublishOption {
	return func(o *PublishOptions) {
		if o.Attributes == nil {
			o.Attributes = make(map[string]string)
		}
		o.Attributes[key] = value
	}
}

// Handler handles one message. Returning nil acknowledges it (it is deleted);
// returning an error retries it later, with backoff, until the Consumer's
// MaxAttempts is reached, after which it is dead-lettered. An error wrapping
// crew.ErrPermanent dead-letters it at once. A panic counts as an error.
//
// The context is not cancelled when the consumer stops: it ends only at the
// consumer's drain deadline, at the HandlerTimeout, or when the message's
// lease is lost.
type Handler func(ctx context.Context, m *Message) error

// Middleware wraps a Handler with behaviour of its own, such as logging,
// tracing or metrics.
type Middleware func(Handler) Handler

// Chain returns h wrapped in mw, the first of mw outermost.
func Chain(h Handler, mw ...Middleware) Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}
