package sqs_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/sqs"
)

// pollWatcher is an HTTP transport that closes answered once SQS has
// answered the first ReceiveMessage request.
type pollWatcher struct {
	once     sync.Once
	answered chan struct{}
}

func (p *pollWatcher) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if strings.HasSuffix(req.Header.Get("X-Amz-Target"), ".ReceiveMessage") {
		p.once.Do(func() { close(p.answered) })
	}
	return resp, err
}

// TestReceiveWithASubSecondWaitTimeKeepsPolling checks that a WaitTime
// shorter than SQS's one-second unit does not make a Receive that found
// nothing stop polling: a message published after its first, empty poll
// is received long before the Receive's context ends.
func TestReceiveWithASubSecondWaitTimeKeepsPolling(t *testing.T) {
	watch := &pollWatcher{answered: make(chan struct{})}
	client := server.Client(func(o *awssqs.Options) { o.HTTPClient = &http.Client{Transport: watch} })
	q := sqs.New(client, newQueueURL(t), sqs.WaitTime(0))
	t.Cleanup(func() { _ = q.Close() })
	type result struct {
		msgs []*queue.Message
		took time.Duration
	}
	got := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		start := time.Now()
		msgs, _ := q.Receive(ctx, 1, time.Minute)
		got <- result{msgs, time.Since(start)}
	}()
	<-watch.answered // the first poll found the queue empty
	id, err := q.Publish(t.Context(), []byte("late"))
	if err != nil {
		t.Fatal(err)
	}
	r := <-got
	if len(r.msgs) != 1 || r.msgs[0].ID != id {
		t.Fatalf("Receive returned %v after %v, want the message published after its first poll", bodies(r.msgs), r.took)
	}
	if r.took > 10*time.Second {
		t.Errorf("Receive took %v, want about a one-second poll", r.took)
	}
	if err := q.Ack(t.Context(), r.msgs...); err != nil {
		t.Fatal(err)
	}
}

// falseEmpty is an HTTP transport that answers the first short poll (a
// ReceiveMessage without a wait) with no messages, as an SQS server that
// the poll did not ask may, whatever the queue holds.
type falseEmpty struct {
	once sync.Once
}

func (f *falseEmpty) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.HasSuffix(req.Header.Get("X-Amz-Target"), ".ReceiveMessage") && req.Body != nil {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		short := !bytes.Contains(body, []byte(`"WaitTimeSeconds"`)) || bytes.Contains(body, []byte(`"WaitTimeSeconds":0`))
		answered := false
		if short {
			f.once.Do(func() { answered = true })
		}
		if answered {
			return &http.Response{
				StatusCode: http.StatusOK,
				Header:     http.Header{"Content-Type": {"application/x-amz-json-1.0"}},
				Body:       io.NopCloser(strings.NewReader(`{}`)),
				Request:    req,
			}, nil
		}
	}
	return http.DefaultTransport.RoundTrip(req)
}

// TestDeadListsEveryDeadLetterDespiteAFalseEmptyShortPoll checks that a
// scan of the dead-letter queue does not stop at the first empty answer
// of a short poll, which SQS may give while messages remain.
func TestDeadListsEveryDeadLetterDespiteAFalseEmptyShortPoll(t *testing.T) {
	url := newQueueURL(t)
	q := sqs.New(server.Client(), url, sqs.WaitTime(time.Second))
	t.Cleanup(func() { _ = q.Close() })
	ctx := t.Context()
	for _, body := range []string{"a", "b", "c"} {
		if _, err := q.Publish(ctx, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range receiveWithin(t, q, 3) {
		if err := q.DeadLetter(ctx, m, errors.New("bad")); err != nil {
			t.Fatal(err)
		}
	}
	flaky := sqs.New(server.Client(func(o *awssqs.Options) { o.HTTPClient = &http.Client{Transport: &falseEmpty{}} }), url)
	t.Cleanup(func() { _ = flaky.Close() })
	if ids := deadIDs(t, flaky); len(ids) != 3 {
		t.Errorf("Dead listed %v after a false empty answer, want all 3 dead letters", ids)
	}
}
