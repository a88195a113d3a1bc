package benchmarks

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/crewgo/crew/queue"
)

// consumeN runs c, with a handler that does nothing and no logging,
// until it has handled n messages, then stops it and returns what Run
// returned. Every backend's crew benchmark consumes through it, so that
// they differ only in the Source and the options they set.
func consumeN(ctx context.Context, c *queue.Consumer, n int) error {
	var handled atomic.Int64
	all := make(chan struct{})
	c.Handler = func(context.Context, *queue.Message) error {
		if handled.Add(1) == int64(n) {
			close(all)
		}
		return nil
	}
	c.Logger = slog.New(slog.DiscardHandler)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	select {
	case <-all:
	case err := <-done: // a Run that ends early would leave the benchmark waiting
		return fmt.Errorf("the consumer returned after %d of %d messages: %v", handled.Load(), n, err)
	}
	stop()
	return <-done
}
