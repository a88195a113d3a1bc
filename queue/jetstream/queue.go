package jetstream

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/work"
)

// DefaultAckWait is the AckWait of the consumers that New creates: the lease
// of a message received with a lease of that length costs no extra round
// trip. It equals queue.DefaultLease.
const DefaultAckWait = queue.DefaultLease

// ErrNoPriority is the error of a Publish with a priority other than 0:
// JetStream delivers a consumer's messages in stream order and has no
// message priorities.
var ErrNoPriority = fmt.Errorf("jetstream: JetStream has no message priorities: %w", errors.ErrUnsupported)

// ErrNoSchedules is the error of a Publish with a delay on a stream that
// does not allow message schedules (AllowMsgSchedules, NATS 2.12 or later),
// or that does not take the queue's delay subjects.
var ErrNoSchedules = fmt.Errorf("jetstream: the stream cannot schedule delayed messages: %w", errors.ErrUnsupported)

// Headers that crew keeps on messages. Every other header, except those
// that NATS reserves (Nats-...), is an attribute of the message.
const (
	hdrID       = "Crew-Id"       // the message's ID when it is not its stream sequence
	hdrReason   = "Crew-Reason"   // a dead letter's reason
	hdrAttempts = "Crew-Attempts" // a dead letter's deliveries
)

// Queue is one crew queue on JetStream: a subject of a stream, consumed
// through one durable pull consumer shared by every process that handles
// the queue. It is a queue.Source and a queue.Publisher; every method is
// safe for concurrent use.
//
// A method that waits for the server returns ctx's error when ctx ends
// first, or after 5 seconds when ctx has no deadline (Receive waits as
// long as ctx lets it). An acknowledgement sent before then may still take
// effect: the consumer treats the message as unsettled, and a message
// acknowledged twice is acknowledged once.
type Queue struct {
	js      natsjs.JetStream
	nc      *nats.Conn
	owned   bool // Close closes nc: Open made it
	name    string
	stream  natsjs.Stream
	cons    natsjs.Consumer
	subject string // where messages are published and consumed
	dead    string // where dead letters are kept
	delayed string // prefix of the subjects of scheduled messages; "" if the stream cannot schedule
	ackWait time.Duration
	mux     mux
	pullAPI string // the subject of the consumer's pull requests

	mu   sync.Mutex
	held map[uint64]*receipt // by stream sequence: the latest receipt handed out
}

// Option configures New and Open.
type Option func(*config)

type config struct {
	stream, consumer, subject string
	ackWait                   time.Duration
	noCreate                  bool
}

// Stream makes the queue use the existing stream name instead of the
// stream CREW_<queue> that New creates. crew never creates or changes it:
// it must take the queue's subject and dead-letter subject, and, for delayed
// messages, allow message schedules and take the delay subjects (see the
// package documentation).
func Stream(name string) Option { return func(c *config) { c.stream = name } }

// Consumer makes the queue use the durable pull consumer name, created
// when absent, instead of crew_<queue>. An existing consumer is used as it
// is: its filter subject is the queue's subject and its AckWait the
// lease that costs no extra round trip. It must acknowledge explicitly.
func Consumer(name string) Option { return func(c *config) { c.consumer = name } }

// Subject sets the subject that the queue's messages are published to and
// consumed from, instead of crew.<queue>. Dead letters go to the subject
// with ".dead" appended, delayed messages wait on subjects that begin with
// it followed by ".delayed.".
func Subject(subject string) Option { return func(c *config) { c.subject = subject } }

// AckWait sets the AckWait of a consumer that New creates (DefaultAckWait
// by default). Receive calls whose lease equals it cost one round trip less.
// It does not change an existing consumer.
func AckWait(d time.Duration) Option { return func(c *config) { c.ackWait = d } }

// NoCreate makes New fail, with an error wrapping crew.ErrPermanent, when
// the stream or the consumer does not exist, instead of creating it. Tools
// that only look at a queue use it, so that a typo in a name creates
// nothing.
func NoCreate() Option { return func(c *config) { c.noCreate = true } }

var validName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// New opens the queue name on js: the subject crew.<name> of the stream
// CREW_<name>, consumed by the durable pull consumer crew_<name>. The
// stream (work-queue retention, file storage, message schedules allowed)
// and the consumer are created when absent, unless opts say otherwise. A
// name is letters, digits, '-' and '_'.
//
// New returns when the stream and consumer are ready, or with an error
// after js's default API timeout. The Queue uses js's connection and never
// closes it.
func New(js natsjs.JetStream, name string, opts ...Option) (*Queue, error) {
	return newQueue(context.Background(), js, name, opts...)
}

func newQueue(ctx context.Context, js natsjs.JetStream, name string, opts ...Option) (*Queue, error) {
	if !validName.MatchString(name) {
		return nil, fmt.Errorf("jetstream: invalid queue name %q: use letters, digits, '-' and '_': %w", name, work.ErrPermanent)
	}
	c := config{ackWait: DefaultAckWait}
	for _, o := range opts {
		o(&c)
	}
	q := &Queue{js: js, nc: js.Conn(), name: name, held: map[uint64]*receipt{}}
	q.mux.nc = q.nc
	if err := q.openStream(ctx, c); err != nil {
		return nil, err
	}
	if err := q.openConsumer(ctx, c); err != nil {
		return nil, err
	}
	return q, nil
}

func (q *Queue) openStream(ctx context.Context, c config) error {
	q.subject = c.subject
	if q.subject == "" {
		q.subject = "crew." + q.name
	}
	q.dead = q.subject + ".dead"
	name := c.stream
	if name == "" {
		name = "CREW_" + q.name
	}
	s, err := q.js.Stream(ctx, name)
	if errors.Is(err, natsjs.ErrStreamNotFound) && c.stream == "" && !c.noCreate {
		s, err = q.js.CreateStream(ctx, natsjs.StreamConfig{
			Name:              name,
			Description:       "crew queue " + q.name,
			Subjects:          []string{q.subject, q.dead, q.subject + ".delayed.*"},
			Retention:         natsjs.WorkQueuePolicy,
			Storage:           natsjs.FileStorage,
			AllowMsgSchedules: true,
			AllowRollup:       true,
		})
		if errors.Is(err, natsjs.ErrStreamNameAlreadyInUse) { // created meanwhile by another process
			s, err = q.js.Stream(ctx, name)
		}
	}
	if err != nil {
		return notFound(fmt.Errorf("jetstream: queue %s: stream %s: %w", q.name, name, err))
	}
	q.stream = s
	cfg := s.CachedInfo().Config
	if !covers(cfg.Subjects, q.subject) || !covers(cfg.Subjects, q.dead) {
		return fmt.Errorf("jetstream: queue %s: stream %s (subjects %v) must take %s and %s: %w",
			q.name, name, cfg.Subjects, q.subject, q.dead, work.ErrPermanent)
	}
	if cfg.AllowMsgSchedules && covers(cfg.Subjects, q.subject+".delayed.x") {
		q.delayed = q.subject + ".delayed."
	}
	return nil
}

func (q *Queue) openConsumer(ctx context.Context, c config) error {
	name := c.consumer
	if name == "" {
		name = "crew_" + q.name
	}
	cons, err := q.stream.Consumer(ctx, name)
	if errors.Is(err, natsjs.ErrConsumerNotFound) && !c.noCreate {
		cons, err = q.stream.CreateConsumer(ctx, natsjs.ConsumerConfig{
			Durable:       name,
			Description:   "crew queue " + q.name,
			FilterSubject: q.subject,
			AckPolicy:     natsjs.AckExplicitPolicy,
			AckWait:       c.ackWait,
			// crew counts attempts and dead-letters; a MaxDeliver would
			// leave exhausted messages in the stream unseen.
			MaxDeliver: -1,
			// Each process fetches only what it can start, so the server
			// need not bound what is in flight.
			MaxAckPending: -1,
		})
		if errors.Is(err, natsjs.ErrConsumerExists) {
			cons, err = q.stream.Consumer(ctx, name)
		}
	}
	if err != nil {
		return notFound(fmt.Errorf("jetstream: queue %s: consumer %s: %w", q.name, name, err))
	}
	info := cons.CachedInfo().Config
	if info.AckPolicy != natsjs.AckExplicitPolicy {
		return fmt.Errorf("jetstream: queue %s: consumer %s must acknowledge explicitly: %w", q.name, name, work.ErrPermanent)
	}
	if info.FilterSubject != "" {
		q.subject = info.FilterSubject
	}
	q.cons, q.ackWait = cons, info.AckWait
	q.pullAPI = apiPrefix(q.js) + "CONSUMER.MSG.NEXT." + q.stream.CachedInfo().Config.Name + "." + name
	return nil
}

// apiPrefix returns the prefix of js's API subjects, as nats.go computes
// it for NewWithDomain, NewWithAPIPrefix and New.
func apiPrefix(js natsjs.JetStream) string {
	o := js.Options()
	switch {
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	case o.APIPrefix != "":
		return strings.TrimSuffix(o.APIPrefix, ".") + "."
	}
	return natsjs.DefaultAPIPrefix
}

// notFound marks err permanent if it says a stream or consumer is missing.
func notFound(err error) error {
	if errors.Is(err, natsjs.ErrStreamNotFound) || errors.Is(err, natsjs.ErrConsumerNotFound) {
		return fmt.Errorf("%w: %w", err, work.ErrPermanent)
	}
	return err
}

// covers reports whether one of the subject patterns matches subject.
func covers(patterns []string, subject string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return matches(p, subject) })
}

func matches(pattern, subject string) bool {
	pt, st := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, p := range pt {
		if p == ">" {
			return len(st) > i
		}
		if i >= len(st) || p != "*" && p != st[i] {
			return false
		}
	}
	return len(pt) == len(st)
}

// JetStream returns the JetStream handle that the queue uses, for what crew
// does not cover: other queues of the same servers, stream settings.
func (q *Queue) JetStream() natsjs.JetStream { return q.js }

// Name returns the queue's name.
func (q *Queue) Name() string { return q.name }

// Close closes the NATS connection if Open made it; a Queue from New leaves
// its connection alone. No method may be called after Close.
func (q *Queue) Close() error {
	q.mux.stop()
	if q.owned {
		q.nc.Close()
	}
	return nil
}

// Publish adds a message to the queue and returns its ID, after the
// server confirmed that the stream stored it. The ID is the message's
// stream sequence, or a unique token for a delayed message.
//
// A delay uses JetStream's message schedules: the message waits on a
// subject of its own until the server publishes it to the queue. It fails
// with ErrNoSchedules if the stream cannot schedule. A priority other than
// 0 fails with ErrNoPriority. Attribute keys become NATS headers: a key
// that NATS reserves (Nats-...), that crew keeps (Crew-...), or that is not
// a valid header name is an error.
func (q *Queue) Publish(ctx context.Context, body []byte, opts ...queue.PublishOption) (string, error) {
	o := queue.NewPublishOptions(opts...)
	if o.Priority != 0 {
		return "", ErrNoPriority
	}
	msg := nats.NewMsg(q.subject)
	msg.Data = body
	if err := setAttributes(msg.Header, o.Attributes); err != nil {
		return "", err
	}
	if o.Delay <= 0 {
		ack, err := q.js.PublishMsg(ctx, msg)
		if err != nil {
			return "", fmt.Errorf("jetstream: publish to %s: %w", q.subject, err)
		}
		return strconv.FormatUint(ack.Sequence, 10), nil
	}
	if q.delayed == "" {
		return "", ErrNoSchedules
	}
	id := nuid.Next()
	msg.Subject = q.delayed + id
	msg.Header.Set(hdrID, id)
	// The server parses fractions of a second, which nats.go's
	// WithScheduleAt drops.
	msg.Header.Set("Nats-Schedule", "@at "+time.Now().Add(o.Delay).UTC().Format(time.RFC3339Nano))
	msg.Header.Set("Nats-Schedule-Target", q.subject)
	if _, err := q.js.PublishMsg(ctx, msg); err != nil {
		return "", fmt.Errorf("jetstream: publish to %s: %w", msg.Subject, err)
	}
	return id, nil
}

func setAttributes(h nats.Header, attrs map[string]string) error {
	for k, v := range attrs {
		if k == "" || strings.ContainsAny(k, ": \t\r\n") || strings.ContainsAny(v, "\r\n") {
			return fmt.Errorf("jetstream: attribute %q=%q cannot be a NATS header", k, v)
		}
		if strings.HasPrefix(k, "Nats-") || strings.HasPrefix(k, "Crew-") {
			return fmt.Errorf("jetstream: attribute %q: the Nats- and Crew- headers are reserved", k)
		}
		h.Set(k, v)
	}
	return nil
}

// attributes returns h's headers that are attributes, nil if none.
func attributes(h nats.Header) map[string]string {
	var out map[string]string
	for k, v := range h {
		if len(v) == 0 || strings.HasPrefix(k, "Nats-") || strings.HasPrefix(k, "Crew-") {
			continue
		}
		if out == nil {
			out = make(map[string]string)
		}
		out[k] = v[0]
	}
	return out
}
