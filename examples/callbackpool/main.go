// Command callbackpool handles the events that a third-party library
// delivers through a callback: a bounded pool handles them against a slow
// service, and on SIGTERM every event already accepted is finished
// while new ones are refused. Nothing can send on a closed channel: there
// is no channel to close, and Go after Close returns pool.ErrClosed.
//
//	go run ./examples/callbackpool -workers 4
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/crewgo/crew"
	"github.com/crewgo/crew/pool"
)

func main() {
	workers := flag.Int("workers", 4, "events handled at once")
	every := flag.Duration("every", 50*time.Millisecond, "how often the library delivers an event")
	flag.Parse()
	crew.Main(newGroup(*workers, *every, slowService, slog.Default()))
}

// Event is what the third-party library delivers.
type Event struct{ ID int }

// subscribe stands for the third-party library: it calls onEvent for each
// event, blocking until the callback returns, until ctx ends.
func subscribe(ctx context.Context, every time.Duration, onEvent func(Event)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for id := 1; ; id++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			onEvent(Event{ID: id})
		}
	}
}

// slowService stands for the external service: slow, but fine with many
// concurrent requests.
func slowService(ctx context.Context, e Event) error {
	select {
	case <-time.After(time.Duration(100+rand.IntN(400)) * time.Millisecond):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// newGroup wires the library's callback to a pool under one worker.
func newGroup(workers int, every time.Duration, handle func(context.Context, Event) error, log *slog.Logger) *crew.Group {
	g := &crew.Group{StopTimeout: 20 * time.Second, Logger: log}
	g.Add("events", crew.Func(func(ctx context.Context) error {
		p := pool.New(workers)
		var accepted, refused, done atomic.Int64
		subscribe(ctx, every, func(e Event) {
			err := p.Go(ctx, func(taskCtx context.Context) error {
				// taskCtx is the pool's: SIGTERM does not cancel an event
				// already accepted.
				if err := handle(taskCtx, e); err != nil {
					return err
				}
				done.Add(1)
				log.Info("event handled", "event", e.ID)
				return nil
			})
			if err != nil { // ctx ended or the pool closed: never a panic
				refused.Add(1)
				return
			}
			accepted.Add(1)
		})
		// The subscription has ended: accept nothing more, finish the rest.
		p.Close()
		err := p.Wait()
		log.Info("events drained", "accepted", accepted.Load(), "handled", done.Load(), "refused", refused.Load())
		if err != nil {
			return errors.Join(errors.New("some events failed"), err)
		}
		return nil
	}))
	return g
}
