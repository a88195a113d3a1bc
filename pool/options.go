package pool

import "context"

// Option configures a Pool.
type Option func(*config)

type config struct {
	ctx           context.Context
	queue         int
	cancelOnError bool
}

// WithContext makes ctx the parent of the context that tasks receive. When
// ctx ends, running tasks see it through their context, queued tasks are
// skipped, and Go refuses new tasks with context.Cause(ctx).
func WithContext(ctx context.Context) Option {
	return func(c *config) { c.ctx = ctx }
}

// Queue sets how many accepted tasks may wait for a free goroutine beyond
// the limit that run. With Queue(0), Go hands each task straight to a
// goroutine and blocks while limit tasks are running. A negative n restores
// the default, max(limit, 1024).
func Queue(n int) Option {
	return func(c *config) { c.queue = n }
}

// CancelOnError cancels the pool's context when a task fails or panics, as
// errgroup.WithContext does: running tasks see the failure as their
// context's cause, queued tasks are skipped, and Go refuses new tasks.
func CancelOnError() Option {
	return func(c *config) { c.cancelOnError = true }
}
