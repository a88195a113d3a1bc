package queue

// adaptivePrefetch is how many messages a Consumer whose Prefetch is zero
// receives beyond its free handler slots. It starts at none and grows only
// while handlers finish during Receive calls, that is, while a slot that
// frees up would otherwise wait a round trip for its next message; it
// shrinks while none does. Handlers slower than a Receive thus never make
// the consumer hold more messages than it can start, and quick ones get
// receives large enough to share a round trip (and, on a database, a
// commit) among many messages. It doubles and shrinks by one, so that a
// Receive that happens to see no handler finish (on a busy machine, say)
// costs quick handlers little.
type adaptivePrefetch struct {
	n   int // the current prefetch
	max int // min(2×Concurrency, DefaultPrefetch), or the Source's PrefetchLimit
}

// PrefetchLimiter is implemented by a Source whose Receive costs more than
// the default adaptive prefetch assumes. A Consumer whose Prefetch is zero
// lets its prefetch grow up to PrefetchLimit(concurrency) instead of
// min(2×concurrency, DefaultPrefetch); it still grows only while handlers
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
	return adaptivePrefetch{max: min(2*concurrency, DefaultPrefetch)}
}

// observe adapts the prefetch to a Receive during which finished handlers
// of concurrency finished.
func (p *adaptivePrefetch) observe(finished, concurrency int) {
	switch {
	case 2*finished >= concurrency:
		p.n = min(max(2*p.n, finished), p.max)
	case finished == 0 && p.n > 0:
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

// adaptPrefetch adapts the prefetch, if it adapts, after a Receive that
// began when held messages were held.
func (r *run) adaptPrefetch(held int64) {
	if r.adaptive != nil {
		r.adaptive.observe(int(held-r.held.Load()), r.concurrency)
	}
}
