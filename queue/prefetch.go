package queue

// adaptivePrefetch is how many messages a Consumer whose Prefetch is zero
// receives beyond its free handler slots. It starts at none and grows only
// while handlers finish during Receive calls, that is, while a slot that
// frees up would otherwise wait a round trip for its next message; it
// shrinks while busy handlers do not. Handlers slower than a Receive thus
// never make the consumer hold more messages than it can start, and quick
// ones get receives large enough to share a round trip (and, on a database,
// a commit) among many messages.
//
// Each Receive is judged by what could finish during it. A Receive that
// begins while fewer than half the slots have a message tells nothing of
// the handlers' pace, and one during which none finishes counts against
// them only if at least half the slots were running: on a busy machine the
// messages of the previous Receive may not have started yet, and counting
// such a Receive against them kept quick handlers far below the bound
// (see the SQLite benchmark in benchmarks/README.md). The prefetch doubles
// and shrinks by one, so that an unlucky Receive costs quick handlers
// little.
type adaptivePrefetch struct {
	n   int // the current prefetch
	max int // min(8×Concurrency, DefaultPrefetch), or the Source's PrefetchLimit
}

// PrefetchLimiter is implemented by a Source whose Receive costs more than
// the default adaptive prefetch assumes. A Consumer whose Prefetch is zero
// lets its prefetch grow up to PrefetchLimit(concurrency) instead of
// min(8×concurrency, DefaultPrefetch); it still grows only while handlers
// finish during Receive calls, so slow handlers hold no more than before.
// The SQS backend uses it: every SQS request is billed, and a Receive gets
// at most ten messages, so quick handlers are served best by receives that
// fill several requests of ten (see the SQS benchmark in benchmarks/).
type PrefetchLimiter interface {
	PrefetchLimit(concurrency int) int
}

func newAdaptivePrefetch(src Source, concurrency int) adaptivePrefetch {
	if l, ok := src.(PrefetchLimiter); ok {
		return adaptivePrefetch{max: max(l.PrefetchLimit(concurrency), 0)}
	}
	// Eight messages per handler, at most 64: on the SQLite benchmark (8
	// quick handlers, AckBatch 64), each Receive and each commit serving
	// more messages, Prefetch 32 handled 6–36% more messages per second
	// than 16 in the same runs, and 64 a median 8% more than 32 with
	// synchronous=NORMAL, 29–47% more with FULL. Slow handlers never
	// reach it.
	return adaptivePrefetch{max: min(8*concurrency, DefaultPrefetch)}
}

// receiveStart is what a consumer was doing when a Receive began: the
// messages it held, and how many of their handlers were running.
type receiveStart struct{ held, running int }

// observe adapts the prefetch to a Receive that began as start says and
// during which finished of the held messages finished, with concurrency
// handler slots.
func (p *adaptivePrefetch) observe(start receiveStart, finished, concurrency int) {
	switch {
	case 2*start.held >= concurrency && 2*finished >= min(start.held, concurrency):
		// Half of what could finish did: a handler takes about two
		// Receives or less.
		p.n = min(max(2*p.n, finished), p.max)
	case finished == 0 && 2*start.running >= concurrency && p.n > 0:
		// Busy handlers, none of them done: slower than a Receive.
		p.n--
	}
}

// capacityNow returns how many messages the consumer may hold now: capacity,
// unless its prefetch adapts, and then its slots and the current prefetch.
func (r *run) capacityNow(capacity int) int {
	if r.adaptive == nil {
		return capacity
	}
	return r.concurrency + r.adaptive.n
}

// receiveStarts returns what the consumer is doing as a Receive begins.
func (r *run) receiveStarts() receiveStart {
	return receiveStart{held: int(r.held.Load()), running: int(r.c.n.running.Load())}
}

// adaptPrefetch adapts the prefetch, if it adapts, after a Receive that
// began as start says.
func (r *run) adaptPrefetch(start receiveStart) {
	if r.adaptive != nil {
		r.adaptive.observe(start, start.held-int(r.held.Load()), r.concurrency)
	}
}
