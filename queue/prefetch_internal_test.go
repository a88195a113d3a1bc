package queue

import "testing"

// The prefetch doubles while handlers finish during Receives, up to its
// bound, and shrinks by one for each Receive during which none does.
func TestAdaptivePrefetchGrowsFastAndShrinksSlowly(t *testing.T) {
	p := newAdaptivePrefetch(8)
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
	if small := newAdaptivePrefetch(2); small.max != 4 {
		t.Errorf("bound with Concurrency 2 = %d, want 4", small.max)
	}
}
