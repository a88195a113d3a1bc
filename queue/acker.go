package queue

import (
	"context"
	"errors"
	"time"

	"github.com/crewgo/crew/backoff"
)

// acker sends acknowledgements in batches: up to size at once, each waiting
// at most delay for others to join it. Failed batches are retried a few
// times; a message whose ack is finally lost will be delivered again.
type acker struct {
	r       *run
	size    int
	delay   time.Duration
	pending chan *Message
	done    chan struct{}
}

func newAcker(r *run, size int, delay time.Duration) *acker {
	if size <= 0 {
		size = DefaultAckBatch
	}
	if delay <= 0 {
		delay = DefaultAckDelay
	}
	a := &acker{r: r, size: size, delay: delay, pending: make(chan *Message, size), done: make(chan struct{})}
	go a.loop()
	return a
}

func (a *acker) add(m *Message) { a.pending <- m }

// close flushes what is pending and waits for the acker to stop.
func (a *acker) close() {
	close(a.pending)
	<-a.done
}

func (a *acker) loop() {
	defer close(a.done)
	batch := make([]*Message, 0, a.size)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var m *Message
		var ok bool
		if len(batch) == 0 {
			m, ok = <-a.pending
		} else {
			select {
			case m, ok = <-a.pending:
			case <-timer.C:
				a.send(batch)
				batch = batch[:0]
				continue
			}
		}
		if !ok {
			if len(batch) > 0 {
				a.send(batch)
			}
			return
		}
		batch = append(batch, m)
		if len(batch) == 1 {
			timer.Reset(a.delay)
		}
		if len(batch) == a.size {
			timer.Stop()
			a.send(batch)
			batch = batch[:0]
		}
	}
}

// ackAttempts is how often a batch is tried before its failure is logged.
const ackAttempts = 4

func (a *acker) send(batch []*Message) {
	r := a.r
	var err error
	for attempt := 1; attempt <= ackAttempts; attempt++ {
		ctx, cancel := context.WithTimeout(r.ops, r.lease/3)
		err = r.c.Source.Ack(ctx, batch...)
		cancel()
		if err == nil || errors.Is(err, ErrLeaseLost) {
			break
		}
		if attempt < ackAttempts {
			_ = backoff.Sleep(r.ops, backoff.FullJitter(backoff.Exponential(50*time.Millisecond, time.Second))(attempt))
		}
	}
	if err != nil {
		r.log.Warn("queue: ack failed; the messages will be delivered again", "messages", len(batch), "err", err)
	}
}
