package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// This file holds the two limits a Consumer can put on handler starts
// beyond Concurrency: a rate (RateLimit) and a number per key (Key,
// PerKey). Both act before a lease is taken where they can, so that a
// message that cannot start soon stays in the queue, where another
// consumer may take it.

// checkLimits rejects a limit that would stop the consumer for ever, or
// that says nothing.
func (c *Consumer) checkLimits() error {
	if l := c.RateLimit; l != nil && l.Limit() != rate.Inf && l.Burst() < 1 {
		return errors.New("queue: Consumer.RateLimit has a burst of 0: no handler could ever start")
	}
	switch {
	case c.PerKey < 0:
		return fmt.Errorf("queue: Consumer.PerKey is %d; it must not be negative", c.PerKey)
	case c.PerKey > 0 && c.Key == "":
		return errors.New("queue: Consumer.PerKey needs Key, the attribute that names a message's key")
	}
	return nil
}

// pausedPoll is how long a consumer waits for its RateLimit at a time
// before it looks at the limiter again.
const pausedPoll = time.Second

// sleep waits for d or until ctx ends, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// startGate spends RateLimit's tokens on messages as they are received:
// the consumer receives no more messages than it may start now, so that a
// message waiting for the limiter stays in the queue, unleased.
type startGate struct {
	lim *rate.Limiter

	mu     sync.Mutex
	credit int // tokens taken from lim and not yet spent on a message
}

func newStartGate(lim *rate.Limiter) *startGate {
	if lim == nil {
		return nil
	}
	return &startGate{lim: lim}
}

// allow waits until at least one handler may start and returns how many of
// want may start now, or 0 once ctx ends. The tokens it takes stay the
// gate's credit until spent, so that a Receive that returns fewer messages
// than asked for wastes none.
func (g *startGate) allow(ctx context.Context, want int) int {
	if g == nil || g.lim.Limit() == rate.Inf {
		return want
	}
	g.mu.Lock()
	have := g.credit
	g.mu.Unlock()
	if have == 0 {
		// Wait for one token, but no more than pausedPoll at a time, so
		// that a SetLimit that shortens the wait (or ends a pause: a limit
		// of 0) is seen.
		res := g.lim.Reserve()
		if d := res.Delay(); !res.OK() || d > pausedPoll {
			res.Cancel()
			sleep(ctx, pausedPoll)
			return 0
		} else if !sleep(ctx, d) {
			res.Cancel()
			return 0
		}
		have = 1
		g.mu.Lock()
		g.credit++
		g.mu.Unlock()
	}
	// Take at once what else the limiter has, up to want.
	now := time.Now()
	if extra := min(want-have, int(g.lim.TokensAt(now))); extra > 0 && g.lim.AllowN(now, extra) {
		have += extra
		g.mu.Lock()
		g.credit += extra
		g.mu.Unlock()
	}
	return min(have, want)
}

// spend accounts for n messages received. Credit left over is capped at the
// limiter's burst, so that tokens taken before a long poll do not add to
// the next burst.
func (g *startGate) spend(n int) {
	if g == nil {
		return
	}
	g.mu.Lock()
	g.credit = min(max(g.credit-n, 0), g.lim.Burst())
	g.mu.Unlock()
}

// refund gives back the token of a message that was received but not
// started, because its key was busy.
func (g *startGate) refund() {
	if g == nil {
		return
	}
	g.mu.Lock()
	g.credit = min(g.credit+1, g.lim.Burst())
	g.mu.Unlock()
}

// keyLimit runs at most per handlers at once for each value of a message
// attribute. A message whose key is busy waits, leased and extended, in
// that key's line, when the line is short enough that the message should
// start soon: within about one handler's run (per waiting for the key), or
// within shortWait by the measured pace of handlers, at most maxWaiting in
// all; otherwise it is postponed: given back to the
// queue with a delay, so that it holds no lease it cannot use, and the
// consumer goes on receiving messages of other keys.
//
// A handler that finishes hands its slot straight to the next message in
// its key's line, so a busy key keeps its pace without the dispatcher.
type keyLimit struct {
	attr       string
	per        int
	maxWaiting int

	mu        sync.Mutex
	keys      map[string]*keyState // the keys with handlers running
	waiting   int                  // messages in all lines
	postponed map[string]int       // message ID: deliveries postponed by this consumer
	avg       time.Duration        // moving average of a handler's run
}

// keyState is one busy key.
type keyState struct {
	started []time.Time // when each running handler of the key was admitted
	line    []*delivery // messages waiting for the key, oldest first
	behind  int         // its messages postponed and not back yet

	cycle time.Duration // moving average of how long a message holds a place of the key
}

// maxPostponedIDs bounds the memory of postponed messages; a message that
// another consumer took is never seen again.
const maxPostponedIDs = 1 << 14

// A postponed message stays away for about as long as its key should take
// to run the messages postponed before it, from minPostpone up to
// maxPostpone. The key's pace is a handler's average run, or, when the
// key's oldest handler has run longer, that handler's age: a key whose
// handlers are stuck sees its messages come back more and more rarely,
// and a minute at most after it recovers.
const (
	minPostpone = 10 * time.Millisecond
	maxPostpone = time.Minute
)

// shortWait is how soon a message must be expected to start to wait, leased,
// in its key's line beyond PerKey others: quick handlers get a line long
// enough that a busy key does not wait for postponed messages to return.
const shortWait = 50 * time.Millisecond

func newKeyLimit(c *Consumer, concurrency int) *keyLimit {
	if c.Key == "" {
		return nil
	}
	return &keyLimit{
		attr:       c.Key,
		per:        max(c.PerKey, 1),
		maxWaiting: 4 * concurrency,
		keys:       make(map[string]*keyState),
		postponed:  make(map[string]int),
	}
}

// maxWaitingOrZero is how many messages may wait for their key.
func (k *keyLimit) maxWaitingOrZero() int {
	if k == nil {
		return 0
	}
	return k.maxWaiting
}

// admission is what becomes of a message whose key is checked.
type admission int

const (
	admitted  admission = iota // start it now
	queued                     // it waits in its key's line
	postponed                  // give it back with a delay
)

// admit decides about d, taking its count of earlier postponements.
func (k *keyLimit) admit(d *delivery) admission {
	key, ok := d.m.Attributes[k.attr]
	k.mu.Lock()
	defer k.mu.Unlock()
	d.postponed = k.postponed[d.m.ID]
	delete(k.postponed, d.m.ID)
	if !ok {
		return admitted // a message without the attribute has no key to limit
	}
	d.key, d.keyed = key, true
	ks := k.keys[key]
	if ks == nil {
		ks = &keyState{}
		k.keys[key] = ks
	}
	if d.postponed > 0 && ks.behind > 0 {
		ks.behind--
	}
	switch {
	case len(ks.started) < k.per:
		ks.started = append(ks.started, time.Now())
		d.admitted = ks.started[len(ks.started)-1]
		return admitted
	case k.waiting < k.maxWaiting && (len(ks.line) < k.per || k.soon(ks)):
		ks.line = append(ks.line, d)
		k.waiting++
		return queued
	}
	d.delay = k.postpone(d, ks)
	return postponed
}

// soon reports whether one more message in ks's line would still start
// within shortWait, by the measured pace of handlers. k.mu is held.
func (k *keyLimit) soon(ks *keyState) bool {
	return k.avg > 0 && k.wait(ks, len(ks.line)) <= shortWait
}

// wait is how long a message should wait for its key ks with ahead
// messages of the key before it: rounds of the key's places, each as long
// as a message holds a place (all that the consumer does for it, not only
// its handler), or as the key's oldest handler has run, if longer. k.mu is
// held.
func (k *keyLimit) wait(ks *keyState, ahead int) time.Duration {
	rounds := time.Duration(ahead/k.per + 1)
	return rounds * max(ks.cycle, k.pace(ks))
}

// pace is how long one round of ks's handlers should take: a handler's
// average run, or, when the key's oldest handler looks stuck, its age. It
// looks stuck once it has run longer than minPostpone and four times as
// long as handlers and the key's rounds take: below that, its age is
// mostly how long it waited to be scheduled, and counting it sent a busy
// key's quick messages away for seconds (BenchmarkConsumerLimits, one
// tenant: 2,600 messages per second, 0.9 postponements per message).
// k.mu is held.
func (k *keyLimit) pace(ks *keyState) time.Duration {
	if len(ks.started) == 0 {
		return k.avg
	}
	age := time.Since(slices.MinFunc(ks.started, time.Time.Compare))
	if age > minPostpone && age > 4*max(k.avg, ks.cycle) {
		return age
	}
	return k.avg
}

// next is called when d's handler has finished: it returns the next
// message of d's key to run in the same slot, or nil, when none waits or
// stopping says that nothing more may start.
func (k *keyLimit) next(d *delivery, stopping bool) *delivery {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.avg += (d.elapsed - k.avg) / 8
	if !d.keyed {
		return nil
	}
	ks := k.keys[d.key]
	ks.cycle += (time.Since(d.admitted) - ks.cycle) / 8
	if len(ks.line) == 0 || stopping {
		k.leave(d)
		return nil
	}
	n := ks.line[0]
	ks.line = ks.line[1:]
	k.waiting--
	n.admitted = time.Now()
	ks.started[slices.Index(ks.started, d.admitted)] = n.admitted
	return n
}

// leave gives up d's place among its key's running handlers. k.mu is held.
func (k *keyLimit) leave(d *delivery) {
	ks := k.keys[d.key]
	i := slices.Index(ks.started, d.admitted)
	ks.started = slices.Delete(ks.started, i, i+1)
	if len(ks.started) == 0 && len(ks.line) == 0 {
		delete(k.keys, d.key) // the key is idle: what comes back starts
	}
}

// unadmit gives up the place of an admitted message that did not start.
func (k *keyLimit) unadmit(d *delivery) {
	if !d.keyed {
		return
	}
	k.mu.Lock()
	k.leave(d)
	k.mu.Unlock()
}

// closeLines empties every line and returns what waited in them.
func (k *keyLimit) closeLines() []*delivery {
	k.mu.Lock()
	defer k.mu.Unlock()
	var all []*delivery
	for _, ks := range k.keys {
		all = append(all, ks.line...)
		ks.line = nil
	}
	k.waiting = 0
	return all
}

// postpone remembers that d, of the busy key ks, is given back unstarted,
// and returns how long it should stay away: until its key should have run
// the messages postponed before it. k.mu is held.
func (k *keyLimit) postpone(d *delivery, ks *keyState) time.Duration {
	if len(k.postponed) >= maxPostponedIDs {
		clear(k.postponed)
	}
	k.postponed[d.m.ID] = d.postponed + 1
	delay := k.wait(ks, ks.behind+len(ks.line))
	ks.behind++
	return min(max(delay, minPostpone), maxPostpone)
}

// waiting counts the messages waiting for their key, which do not take a
// handler slot and so do not stop the consumer from receiving.
func (r *run) waiting() int {
	if r.keys == nil {
		return 0
	}
	r.keys.mu.Lock()
	defer r.keys.mu.Unlock()
	return r.keys.waiting
}

// start starts d's handler, or puts it in its key's line, or postpones it.
// It reports false, having started nothing, when ctx ended while it waited
// for a slot.
func (r *run) start(ctx context.Context, d *delivery) bool {
	if r.keys == nil {
		return r.pool.Go(ctx, d.handle) == nil
	}
	switch r.keys.admit(d) {
	case queued:
		r.signalFreed() // it takes no slot: receive for the slot it left
		return true
	case postponed:
		r.postpone(d)
		return true
	}
	if r.pool.Go(ctx, r.handleKey(ctx, d)) == nil {
		return true
	}
	r.keys.unadmit(d)
	return false
}

// handleKey returns a pool task that handles d and then, in the same slot,
// each message that waits for d's key, until none does or ctx, the
// dispatcher's, ends: then the dispatcher releases what still waits.
func (r *run) handleKey(dctx context.Context, d *delivery) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		for d != nil {
			_ = d.handle(ctx)
			d = r.keys.next(d, dctx.Err() != nil)
		}
		return nil
	}
}

// postpone gives d back to the queue, unstarted, for a while.
func (r *run) postpone(d *delivery) {
	d.beat.stop()
	r.src.nack(d.m, d.delay, "postpone")
	r.starts.refund()
	r.c.n.postponed.Add(1)
	r.finish()
}

// releaseWaiting gives back the messages that still wait for their key
// when the consumer stops.
func (r *run) releaseWaiting() {
	if r.keys == nil {
		return
	}
	for _, d := range r.keys.closeLines() {
		d.beat.stop()
		r.releaseHeld([]*Message{d.m}, ErrStopping)
	}
}
