package queue

import "testing"

// The prefetch doubles while handlers finish during Receives, up to its
// bound, and shrinks by one for each Receive during which none does.
func TestAdaptivePrefetchGrowsFastAndShrinksSlowly(t *testing.T) {
	p := newAdaptivePrefetch(nil, 8)
	if p.max != DefaultPrefetch {
		t.Fatalf("bound = %d, want DefaultPrefetch", p.max)
	}
	var got []int
	for _, finished := range []int{3, 4, 8, 8, 8, 0, 0, 2, 0} {
		p.observe(finished, 8)
		got = append(got, p.n)
	}
	want := []int{0, 4, 8, 16, 16, 15, 14, 14, 13}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("prefetch after each Receive = %v, want %v", got, want)
		}
	}
	if small := newAdaptivePrefetch(nil, 2); small.max != 4 {
		t.Errorf("bound with Concurrency 2 = %d, want 4", small.max)
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
