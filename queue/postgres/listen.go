package postgres

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/crewgo/crew/backoff"
)

// listener holds a DB's one listening connection, and wakes the DB's
// waiting Receives when a notification names their queue. Publishes send
// the notification in their own transaction, so it arrives only once the
// message is committed. Notifications sent while the connection is down
// are lost: after every reconnection the listener wakes every waiter, and
// waiters also look again every PollInterval.
type listener struct {
	cfg     *pgx.ConnConfig
	channel string
	cancel  context.CancelFunc
	done    chan struct{}

	mu      sync.Mutex
	waiters map[string]chan struct{} // closed to wake the queue's waiters
}

func newListener(cfg *pgx.ConnConfig, channel string) *listener {
	ctx, cancel := context.WithCancel(context.Background())
	l := &listener{cfg: cfg, channel: channel, cancel: cancel, done: make(chan struct{}), waiters: map[string]chan struct{}{}}
	go l.run(ctx)
	return l
}

// watch returns a channel that is closed at the next notification for the
// queue.
func (l *listener) watch(queue string) <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.waiters[queue]
	if c == nil {
		c = make(chan struct{})
		l.waiters[queue] = c
	}
	return c
}

// wake wakes the waiters of queue, or of every queue if all is set.
func (l *listener) wake(queue string, all bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for name, c := range l.waiters {
		if all || name == queue {
			close(c)
			delete(l.waiters, name)
		}
	}
}

// run listens until ctx ends, reconnecting after failures with backoff.
func (l *listener) run(ctx context.Context) {
	defer close(l.done)
	delay := backoff.FullJitter(backoff.Exponential(100*time.Millisecond, 5*time.Second))
	for failures := 0; ; {
		listening, _ := l.listen(ctx)
		if ctx.Err() != nil {
			return
		}
		if listening {
			failures = 0
		}
		failures++
		if backoff.Sleep(ctx, delay(failures)) != nil {
			return
		}
	}
}

// listen connects, listens, and wakes waiters until the connection fails
// or ctx ends. It reports whether it got as far as listening.
func (l *listener) listen(ctx context.Context) (bool, error) {
	conn, err := pgx.ConnectConfig(ctx, l.cfg)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{l.channel}.Sanitize()); err != nil {
		return false, err
	}
	// Anything published while no connection listened went unheard.
	l.wake("", true)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true, err
		}
		l.wake(n.Payload, false)
	}
}

// close stops listening and waits for the listening goroutine to end.
func (l *listener) close() {
	l.cancel()
	<-l.done
}
