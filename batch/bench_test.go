package batch_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/crewgo/crew/batch"
)

// The benchmarks run batches of no-op items, so that what they measure is
// the batch's own cost per item. Each op is one batch of benchItems items;
// ns/item is the figure to compare.
const benchItems = 10000

func nop(context.Context, int, int) error { return nil }

func perItem(b *testing.B) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchItems), "ns/item")
}

func BenchmarkEach(b *testing.B) {
	items := make([]int, benchItems)
	for _, w := range []int{1, batch.DefaultWorkers} {
		b.Run(fmt.Sprintf("workers=%d", w), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				batch.Each(context.Background(), items, nop, batch.Workers(w))
			}
			perItem(b)
		})
	}
}

func BenchmarkMap(b *testing.B) {
	items := make([]int, benchItems)
	b.ReportAllocs()
	for b.Loop() {
		batch.Map(context.Background(), items, func(_ context.Context, i, in int) (int, error) { return in + i, nil })
	}
	perItem(b)
}

func BenchmarkEachSeq(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		batch.EachSeq(context.Background(), count(benchItems, nil), nop)
	}
	perItem(b)
}

func BenchmarkMapSeq(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		for range batch.MapSeq(context.Background(), count(benchItems, nil), func(_ context.Context, i, in int) (int, error) { return in + i, nil }) {
		}
	}
	perItem(b)
}

func TestAllocationsDoNotGrowWithItems(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	allocs := func(n int) float64 {
		items := make([]int, n)
		return testing.AllocsPerRun(20, func() {
			batch.Each(context.Background(), items, nop, batch.Workers(4))
			batch.EachSeq(context.Background(), count(n, nil), nop, batch.Workers(4))
			for range batch.MapSeq(context.Background(), count(n, nil), func(context.Context, int, int) (int, error) { return 0, nil }, batch.Workers(4)) {
			}
		})
	}
	small, large := allocs(100), allocs(10000)
	// The batches' own allocations (workers, the ring, Report.Items) do not
	// depend on the number of items; leave a little room for the runtime.
	if large > small+5 {
		t.Errorf("%v allocations for 100 items, %v for 10000: something allocates per item", small, large)
	}
}
