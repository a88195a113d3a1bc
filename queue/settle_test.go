package queue_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/crewgo/crew"
	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/memqueue"
)

// failing wraps a Source and fails the operations named in errs, each with
// its error, from the call after the first `after` calls of that operation.
type failing struct {
	queue.Source
	mu    sync.Mutex
	errs  map[string]error
	calls map[string]int
	after int
}

func (f *failing) fail(op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[op]++
	if err := f.errs[op]; err != nil && f.calls[op] > f.after {
		return err
	}
	return nil
}

func (f *failing) Receive(ctx context.Context, max int, lease time.Duration) ([]*queue.Message, error) {
	if err := f.fail("receive"); err != nil {
		return nil, err
	}
	return f.Source.Receive(ctx, max, lease)
}

func (f *failing) Ack(ctx context.Context, msgs ...*queue.Message) error {
	if err := f.fail("ack"); err != nil {
		return err
	}
	return f.Source.Ack(ctx, msgs...)
}

func (f *failing) Nack(ctx context.Context, m *queue.Message, delay time.Duration) error {
	if err := f.fail("nack"); err != nil {
		return err
	}
	return f.Source.Nack(ctx, m, delay)
}

func (f *failing) Extend(ctx context.Context, m *queue.Message, lease time.Duration) error {
	if err := f.fail("extend"); err != nil {
		return err
	}
	return f.Source.Extend(ctx, m, lease)
}

func (f *failing) DeadLetter(ctx context.Context, m *queue.Message, reason error) error {
	if err := f.fail("deadletter"); err != nil {
		return err
	}
	return f.Source.DeadLetter(ctx, m, reason)
}

func TestSuccessIsReportedOnlyOnceTheAckCommits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := memqueue.New()
		publishN(t, q, 1)
		commit := make(chan struct{})
		src := &source{Source: q, ackErr: func(int) error { <-commit; return nil }}
		results := make(chan queue.Result, 1)
		c := &queue.Consumer{
			Source: src, Logger: quiet,
			Handler:  func(context.Context, *queue.Message) error { return nil },
			OnResult: func(r queue.Result) { results <- r },
		}
		stop := start(c)
		synctest.Wait() // the handler has returned; the ack waits to commit
		if s := c.Stats(); s.Succeeded != 0 {
			t.Errorf("Stats.Succeeded = %d while the ack has not committed, want 0", s.Succeeded)
		}
		select {
		case r := <-results:
			t.Errorf("OnResult(%v) before the ack committed", r.Outcome)
		default:
		}
		close(commit)
		if r := <-results; r.Outcome != queue.Succeeded {
			t.Errorf("outcome %v once the ack committed, want Succeeded", r.Outcome)
		}
		if s := c.Stats(); s.Succeeded != 1 {
			t.Errorf("Stats.Succeeded = %d, want 1", s.Succeeded)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestAFailedAckIsNotReportedAsSuccess(t *testing.T) {
	for name, ackErr := range map[string]error{
		"lease lost":      fmt.Errorf("message 1: %w", queue.ErrLeaseLost),
		"database failed": errors.New("disk I/O error"),
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				q := memqueue.New()
				publishN(t, q, 1)
				src := &failing{Source: q, errs: map[string]error{"ack": ackErr}}
				results := make(chan queue.Result, 1)
				c := &queue.Consumer{
					Source: src, Logger: quiet,
					Handler:  func(context.Context, *queue.Message) error { return nil },
					OnResult: func(r queue.Result) { results <- r },
				}
				stop := start(c)
				r := <-results
				if err := stop(); err != nil {
					t.Fatal(err)
				}
				if r.Outcome != queue.LeaseLost || !errors.Is(r.Err, ackErr) {
					t.Errorf("Result %v, %v; want LeaseLost with the ack's error", r.Outcome, r.Err)
				}
				if s := c.Stats(); s.Succeeded != 0 || s.LeaseLost != 1 {
					t.Errorf("Stats %+v, want no success and one lost lease", s)
				}
			})
		})
	}
}

// TestPermanentSourceErrorsStopTheConsumer makes each Source operation fail
// for good in turn: Run must return that error on its own (its context
// never ends), with the message it held given back or left leased, never
// lost.
func TestPermanentSourceErrorsStopTheConsumer(t *testing.T) {
	broken := fmt.Errorf("sqlite: /data/q.db: database disk image is malformed: %w", crew.ErrPermanent)
	fails := func(context.Context, *queue.Message) error { return errors.New("handler failed") }
	for _, tc := range []struct {
		op      string
		handler queue.Handler
		max     int
	}{
		{"receive", nil, 0},
		{"ack", nil, 0},
		{"nack", fails, 0},
		{"deadletter", fails, 1},
		{"extend", func(ctx context.Context, _ *queue.Message) error {
			<-ctx.Done() // runs until its lease is lost
			return context.Cause(ctx)
		}, 0},
	} {
		t.Run(tc.op, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				q := memqueue.New()
				publishN(t, q, 3)
				h := tc.handler
				if h == nil {
					h = func(context.Context, *queue.Message) error { return nil }
				}
				c := &queue.Consumer{
					Source:  &failing{Source: q, errs: map[string]error{tc.op: broken}},
					Handler: h, Concurrency: 1, MaxAttempts: tc.max, Logger: quiet,
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
				defer cancel()
				begin := time.Now()
				err := c.Run(ctx)
				if !errors.Is(err, crew.ErrPermanent) || !strings.Contains(err.Error(), "/data/q.db: database disk image is malformed") {
					t.Fatalf("Run = %v, want the permanent error", err)
				}
				if d := time.Since(begin); d >= time.Hour {
					t.Errorf("Run returned only when its context ended (%v)", d)
				}
				if got := q.Counts(); got.Ready+got.Leased+got.Delayed+got.Dead < 2 {
					t.Errorf("queue %+v: messages that were never handled are gone", got)
				}
			})
		})
	}
}

func TestTransientSourceErrorsAreRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := memqueue.New()
		publishN(t, q, 1)
		src := &failing{Source: q, errs: map[string]error{"receive": errors.New("database is locked (5) (SQLITE_BUSY)")}}
		handled := make(chan struct{})
		c := &queue.Consumer{
			Source: src, Logger: quiet,
			Handler: func(context.Context, *queue.Message) error { close(handled); return nil },
		}
		stop := start(c)
		time.Sleep(time.Minute) // Receive fails, again and again
		src.mu.Lock()
		delete(src.errs, "receive")
		failures := src.calls["receive"]
		src.mu.Unlock()
		<-handled
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if failures < 3 {
			t.Errorf("Receive failed %d times in a minute, want it retried", failures)
		}
	})
}
