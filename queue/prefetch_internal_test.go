package queue

import "testing"

// The prefetch doubles while handlers finish during Receives, up to its
// bound, and shrinks by one for each Receive during which busy handlers
// do not.
func TestAdaptivePrefetchGrowsFastAndShrinksSlowly(t *testing.T) {
	p := newAdaptivePrefetch(nil, 8)
	if p.max != DefaultPrefetch {
		t.Fatalf("bound = %d, want DefaultPrefetch", p.max)
	}
	steps := []struct {
		held, running, finished, want int
	}{
		{8, 8, 3, 0},  // fewer than half finished
		{8, 8, 4, 4},  // half did
		{12, 8, 8, 8}, // doubles
		{16, 8, 8, 16},
		{24, 8, 8, 32},
		{40, 8, 8, 64}, // up to the bound
		{72, 8, 8, 64},
		{72, 8, 0, 63}, // every slot busy, none finished: one less
		{71, 8, 0, 62},
		{70, 8, 2, 62}, // a few finished: no change
		{70, 8, 0, 61},
	}
	for i, s := range steps {
		p.observe(receiveStart{held: s.held, running: s.running}, s.finished, 8)
		if p.n != s.want {
			t.Fatalf("after Receive %d (%+v): prefetch %d, want %d", i, s, p.n, s.want)
		}
	}
	if small := newAdaptivePrefetch(nil, 2); small.max != 16 {
		t.Errorf("bound with Concurrency 2 = %d, want 16", small.max)
	}
}

// A Receive is judged by what could finish during it: half of the messages
// held finishing counts even when they filled only half the slots, and a
// Receive that saw none finish counts against the handlers only if half the
// slots were running.
func TestAdaptivePrefetchJudgesWhatCouldFinish(t *testing.T) {
	cases := []struct {
		name                       string
		n, held, running, finished int
		want                       int
	}{
		{"half the slots held, half of them finished", 0, 4, 4, 2, 2},
		{"none running yet, all finished", 4, 6, 0, 6, 8},
		{"received messages not started yet, none finished", 16, 12, 0, 0, 16},
		{"one slot running, none finished", 16, 1, 1, 0, 16},
		{"fewer than half the slots held, all finished", 2, 3, 3, 3, 2},
		{"half the slots running, none finished", 16, 12, 4, 0, 15},
		{"nothing held", 16, 0, 0, 0, 16},
	}
	for _, c := range cases {
		p := newAdaptivePrefetch(nil, 8)
		p.n = c.n
		p.observe(receiveStart{held: c.held, running: c.running}, c.finished, 8)
		if p.n != c.want {
			t.Errorf("%s: prefetch %d became %d, want %d", c.name, c.n, p.n, c.want)
		}
	}
}

// limitedSource is a Source that sets its own bound on the adaptive prefetch.
type limitedSource struct {
	Source
	limit func(concurrency int) int
}

func (s limitedSource) PrefetchLimit(concurrency int) int { return s.limit(concurrency) }

// A Source that is a PrefetchLimiter sets the adaptive prefetch's bound, and
// a negative bound means none.
func TestAPrefetchLimiterSetsTheBound(t *testing.T) {
	var asked int
	src := limitedSource{limit: func(c int) int { asked = c; return 9 * c }}
	if p := newAdaptivePrefetch(src, 8); p.max != 72 || asked != 8 {
		t.Errorf("bound = %d (asked for concurrency %d), want 72 (for 8)", p.max, asked)
	}
	src.limit = func(int) int { return -1 }
	if p := newAdaptivePrefetch(src, 8); p.max != 0 {
		t.Errorf("bound for a negative limit = %d, want 0", p.max)
	}
}
