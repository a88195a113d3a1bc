package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// mux carries the requests whose replies a Queue awaits: acknowledgements
// that the server confirms, and no-wait pulls. Every reply comes to one
// subscription of the Queue's, so that nothing is subscribed and
// unsubscribed per request (as nats.go's Fetch does), and acknowledgements
// are published back to back from one goroutine: the client writes them,
// and the server answers them, in a few system calls rather than one each.
//
// A reply to an acknowledgement, and a status that ends a pull, come on a
// subject of their own per request. Pulled messages keep their stream
// subject, so pulls go one at a time: what arrives belongs to the pull in
// progress. A message that arrives when none is (from a pull abandoned at
// its context's end) is not taken: it is redelivered after its AckWait,
// as it would be after nats.go's Fetch had unsubscribed.
type mux struct {
	nc      *nats.Conn
	once    sync.Once
	sub     *nats.Subscription
	prefix  string // the subscription's subject, less its last token
	err     error  // from subscribing
	pullMu  sync.Mutex
	mu      sync.Mutex
	next    uint64
	waiting map[string]chan *nats.Msg // by token
	pulling chan *nats.Msg            // the pull in progress
}

func (x *mux) start() error {
	x.once.Do(func() {
		x.prefix = x.nc.NewInbox() + "."
		x.waiting = map[string]chan *nats.Msg{}
		x.sub, x.err = x.nc.Subscribe(x.prefix+"*", x.route)
	})
	return x.err
}

// route hands a reply to the request it answers. It never blocks: the
// subscription's goroutine must go on.
func (x *mux) route(m *nats.Msg) {
	x.mu.Lock()
	defer x.mu.Unlock()
	ch := x.pulling
	if token, ok := strings.CutPrefix(m.Subject, x.prefix); ok {
		ch = x.waiting[token]
	}
	if ch != nil {
		select {
		case ch <- m:
		default: // more than was asked for
		}
	}
}

// stop ends the subscription.
func (x *mux) stop() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.sub != nil {
		_ = x.sub.Unsubscribe()
	}
}

// open registers a reply subject for up to size replies.
func (x *mux) open(size int) (subject string, replies chan *nats.Msg) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.next++
	token := strconv.FormatUint(x.next, 36)
	replies = make(chan *nats.Msg, size)
	x.waiting[token] = replies
	return x.prefix + token, replies
}

func (x *mux) close(subject string) {
	x.mu.Lock()
	delete(x.waiting, subject[len(x.prefix):])
	x.mu.Unlock()
}

// confirm publishes body to each of replies and waits until the server has
// answered each, or ctx ends. errs[i] is the error of replies[i].
func (x *mux) confirm(ctx context.Context, replies []string, body []byte) []error {
	errs := make([]error, len(replies))
	if err := x.start(); err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	subjects := make([]string, len(replies))
	chans := make([]chan *nats.Msg, len(replies))
	for i := range replies {
		subjects[i], chans[i] = x.open(1)
		defer x.close(subjects[i])
	}
	for i, reply := range replies {
		errs[i] = x.nc.PublishRequest(reply, subjects[i], body)
	}
	for i, ch := range chans {
		if errs[i] != nil {
			continue
		}
		select {
		case m := <-ch:
			errs[i] = status(m)
		case <-ctx.Done():
			errs[i] = ctx.Err()
		}
	}
	return errs
}

// pull asks the consumer (whose pull requests go to api) for up to max
// messages that are ready now, and returns them once the server has sent
// them all, or with ctx's error and what arrived before.
func (x *mux) pull(ctx context.Context, api string, max int) ([]*nats.Msg, error) {
	if err := x.start(); err != nil {
		return nil, err
	}
	req, _ := json.Marshal(struct {
		Batch  int  `json:"batch"`
		NoWait bool `json:"no_wait"`
	}{max, true})
	x.pullMu.Lock()
	defer x.pullMu.Unlock()
	subject, replies := x.open(max + 1)
	x.mu.Lock()
	x.pulling = replies
	x.mu.Unlock()
	defer func() {
		x.close(subject)
		x.mu.Lock()
		x.pulling = nil
		x.mu.Unlock()
	}()
	if err := x.nc.PublishRequest(api, subject, req); err != nil {
		return nil, err
	}
	var out []*nats.Msg
	for len(out) < max {
		select {
		case m := <-replies:
			if m.Header.Get("Status") == "" {
				out = append(out, m)
				continue
			}
			// The server ends a pull that it cannot fill with a status:
			// 404 when nothing more is ready.
			if err := status(m); !errors.Is(err, errNoMessages) {
				return out, err
			}
			return out, nil
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
	return out, nil
}

var errNoMessages = errors.New("jetstream: no messages")

// status returns the error that a reply's status stands for, nil for none.
func status(m *nats.Msg) error {
	switch m.Header.Get("Status") {
	case "":
		return nil
	case "404", "408":
		return errNoMessages
	case "503":
		return nats.ErrNoResponders
	case "409":
		if m.Header.Get("Description") == "Consumer Deleted" {
			return natsjs.ErrConsumerDeleted
		}
	}
	return errors.New("jetstream: status " + m.Header.Get("Status") + " " + m.Header.Get("Description"))
}
