package batch_test

import (
	"context"
	"errors"
	"iter"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/crewgo/crew/batch"
)

// count yields 0, 1, ..., n-1, and counts in read how many it has yielded.
func count(n int, read *atomic.Int64) iter.Seq[int] {
	return func(yield func(int) bool) {
		for i := range n {
			if read != nil {
				read.Add(1)
			}
			if !yield(i) {
				return
			}
		}
	}
}

func TestMapSeqYieldsOutcomesInInputOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 40
		var g gauge
		next := 0
		for i, o := range batch.MapSeq(t.Context(), count(n, nil), func(_ context.Context, i, in int) (int, error) {
			g.enter()
			defer g.exit()
			time.Sleep(time.Duration((i*7)%5) * time.Second) // finish out of order
			if i%9 == 4 {
				return 0, errBoom
			}
			return in * in, nil
		}, batch.Workers(4)) {
			if i != next {
				t.Fatalf("yielded index %d, want %d", i, next)
			}
			next++
			switch {
			case i%9 == 4:
				if o.Status != batch.Failed || o.Err != errBoom {
					t.Errorf("item %d: %+v, want Failed with errBoom", i, o)
				}
			case o.Status != batch.Succeeded || o.Value != i*i || o.Attempts != 1:
				t.Errorf("item %d: %+v, want %d", i, o, i*i)
			}
		}
		if next != n {
			t.Fatalf("%d outcomes, want %d", next, n)
		}
		if got := g.max.Load(); got != 4 {
			t.Errorf("at most %d items ran at once, want 4", got)
		}
	})
}

func TestMapSeqMemoryStaysBoundedOverTenMillionItems(t *testing.T) {
	const workers = 4
	n := 10_000_000
	if raceEnabled {
		// The race detector makes every item ~15 times slower; the bound
		// does not depend on the length, so a shorter run proves it too.
		n = 1_000_000
	}
	var read atomic.Int64
	yielded, maxHeld := int64(0), int64(0)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	peak := before.HeapAlloc
	for i, o := range batch.MapSeq(t.Context(), count(n, &read), func(_ context.Context, i, in int) (int, error) {
		return in + 1, nil
	}, batch.Workers(workers)) {
		if int64(i) != yielded || o.Value != i+1 {
			t.Fatalf("outcome %d: %+v, want index %d", i, o, yielded)
		}
		yielded++
		maxHeld = max(maxHeld, read.Load()-yielded)
		if yielded%(int64(n)/10) == 0 {
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapAlloc)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if yielded != int64(n) {
		t.Fatalf("%d outcomes, want %d", yielded, n)
	}
	// Read from seq and not yet yielded: at most the window of 256 slots
	// (4*workers is less), plus the item being read.
	if maxHeld > 256+1 {
		t.Errorf("up to %d items were held at once, want at most 257", maxHeld)
	}
	// Holding every item would take 10M * (8-byte input + 48-byte outcome).
	if grown := int64(peak) - int64(before.HeapAlloc); grown > 1<<20 {
		t.Errorf("live heap grew by %d bytes while the batch ran, want under 1 MiB", grown)
	}
}

func TestMapSeqReadsOnlyAsFastAsTheLoopConsumes(t *testing.T) {
	var read atomic.Int64
	yielded := int64(0)
	for range batch.MapSeq(t.Context(), count(5000, &read), func(_ context.Context, i, in int) (int, error) {
		return in, nil
	}, batch.Workers(2)) {
		yielded++
		if ahead := read.Load() - yielded; ahead > 256+1 {
			t.Fatalf("%d items read ahead of the loop, want at most 257", ahead)
		}
		if yielded%100 == 0 {
			runtime.Gosched() // a slower loop body now and then
		}
	}
}

func TestMapSeqBreakStopsTheBatchAndWaitsForRunningItems(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var read, running, started atomic.Int64
		causes := make(chan error, 8)
		for i, o := range batch.MapSeq(t.Context(), count(1000, &read), func(ctx context.Context, i, in int) (int, error) {
			started.Add(1)
			running.Add(1)
			defer running.Add(-1)
			if i == 0 {
				time.Sleep(time.Second) // items 1 and 2 start meanwhile
				return 0, nil
			}
			<-ctx.Done() // the others run until the loop breaks
			causes <- context.Cause(ctx)
			return 0, ctx.Err()
		}, batch.Workers(3)) {
			if i != 0 || o.Status != batch.Succeeded {
				t.Fatalf("first outcome %d %+v", i, o)
			}
			break
		}
		if n := running.Load(); n != 0 {
			t.Fatalf("the loop ended with %d items still running", n)
		}
		// Items 1 and 2, and maybe item 3 if its worker took it before the
		// loop broke; nothing after the break.
		n := started.Load()
		if n != 3 && n != 4 {
			t.Errorf("%d items started, want 3 or 4", n)
		}
		close(causes)
		k := 0
		for c := range causes {
			k++
			if !strings.Contains(c.Error(), "ended early") {
				t.Errorf("a running item saw cause %v, want one saying the loop ended early", c)
			}
		}
		if int64(k) != n-1 {
			t.Errorf("%d items saw the break, want %d", k, n-1)
		}
		if read.Load() > 256+1 {
			t.Errorf("%d items read, want no more than the window", read.Load())
		}
	})
}

func TestMapSeqAfterCancelYieldsSkippedAndStopsReading(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	var read atomic.Int64
	var got []batch.Status
	for i, o := range batch.MapSeq(ctx, count(1000, &read), func(_ context.Context, i, in int) (int, error) {
		if i == 2 {
			cancel()
		}
		return in, nil
	}, batch.Workers(1)) {
		if i != len(got) {
			t.Fatalf("index %d, want %d", i, len(got))
		}
		got = append(got, o.Status)
		if o.Status == batch.Skipped {
			if o.Attempts != 0 || !errors.Is(o.Err, batch.ErrSkipped) || !errors.Is(o.Err, context.Canceled) {
				t.Errorf("skipped outcome %d: %+v", i, o)
			}
		}
	}
	if len(got) < 4 || !slices.Equal(got[:3], []batch.Status{batch.Succeeded, batch.Succeeded, batch.Succeeded}) {
		t.Fatalf("statuses %v, want three Succeeded, then Skipped", got)
	}
	for _, s := range got[3:] {
		if s != batch.Skipped {
			t.Fatalf("statuses %v, want only Skipped after the cancel", got)
		}
	}
	if int64(len(got)) != read.Load() {
		t.Errorf("%d items read but %d yielded: every item read must be accounted for", read.Load(), len(got))
	}
}

func TestMapSeqWithStopOnErrorStopsReading(t *testing.T) {
	var read atomic.Int64
	var last batch.Outcome[int]
	n := 0
	for _, o := range batch.MapSeq(t.Context(), count(100000, &read), func(_ context.Context, i, in int) (int, error) {
		if i == 10 {
			return 0, errBoom
		}
		return in, nil
	}, batch.Workers(2), batch.StopOnError()) {
		n++
		last = o
	}
	if read.Load() > 10+256+1 {
		t.Errorf("%d items read after a stop at item 10", read.Load())
	}
	if int64(n) != read.Load() || last.Status != batch.Skipped && last.Status != batch.Failed {
		t.Errorf("%d outcomes for %d items read, last %+v", n, read.Load(), last)
	}
}

func TestMapSeqInvalidOptionYieldsTheFirstItemSkipped(t *testing.T) {
	var outcomes []batch.Outcome[int]
	for i, o := range batch.MapSeq(t.Context(), count(10, nil), func(context.Context, int, int) (int, error) {
		t.Error("an item started")
		return 0, nil
	}, batch.Workers(-1)) {
		if i != 0 {
			t.Errorf("index %d", i)
		}
		outcomes = append(outcomes, o)
	}
	if len(outcomes) != 1 || !errors.Is(outcomes[0].Err, batch.ErrSkipped) || !strings.Contains(outcomes[0].Err.Error(), "Workers(-1)") {
		t.Errorf("outcomes %+v, want one Skipped naming the option", outcomes)
	}
}

func TestMapSeqRunsTheBatchAgainOnEveryLoop(t *testing.T) {
	var calls atomic.Int64
	s := batch.MapSeq(t.Context(), count(10, nil), func(_ context.Context, _, in int) (int, error) {
		calls.Add(1)
		return in, nil
	})
	for range 3 {
		k := 0
		for i := range s {
			if i != k {
				t.Fatalf("index %d, want %d", i, k)
			}
			k++
		}
	}
	if calls.Load() != 30 {
		t.Errorf("%d calls, want 30", calls.Load())
	}
}

func TestMapSeqPanicInLoopBodyWaitsForRunningItems(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var running atomic.Int64
		func() {
			defer func() {
				if v := recover(); v != "loop body" {
					t.Errorf("recovered %v", v)
				}
			}()
			for i := range batch.MapSeq(t.Context(), count(100, nil), func(ctx context.Context, i, in int) (int, error) {
				running.Add(1)
				defer running.Add(-1)
				if i > 0 {
					<-ctx.Done()
				}
				return in, nil
			}, batch.Workers(4)) {
				if i == 0 {
					time.Sleep(time.Second) // the other workers are busy now
					panic("loop body")
				}
			}
		}()
		if n := running.Load(); n != 0 {
			t.Errorf("%d items still running after the panic left the loop", n)
		}
	})
}

func TestEachSeqPanicInSeqWaitsForRunningItems(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var running atomic.Int64
		seq := func(yield func(int) bool) {
			for i := range 3 {
				yield(i)
			}
			time.Sleep(time.Second)
			panic("seq")
		}
		func() {
			defer func() {
				if v := recover(); v != "seq" {
					t.Errorf("recovered %v", v)
				}
			}()
			batch.EachSeq(t.Context(), seq, func(ctx context.Context, i, in int) error {
				running.Add(1)
				defer running.Add(-1)
				<-ctx.Done()
				return ctx.Err()
			})
		}()
		if n := running.Load(); n != 0 {
			t.Errorf("%d items still running after the panic", n)
		}
	})
}

func TestEachSeqCountsOutcomesAndJoinsErrors(t *testing.T) {
	rep, err := batch.EachSeq(t.Context(), count(1000, nil), func(_ context.Context, i, in int) error {
		if i%100 == 7 {
			return errBoom
		}
		return nil
	}, batch.Workers(3))
	if rep.Items != nil || rep.Succeeded != 990 || rep.Failed != 10 || rep.Skipped != 0 {
		t.Fatalf("report %+v, want 990/10/0 and no Items", rep)
	}
	errs := joined(t, err)
	for k, e := range errs {
		var ie *batch.ItemError
		if !errors.As(e, &ie) || ie.Index != 100*k+7 {
			t.Errorf("error %d is %v, want item %d", k, e, 100*k+7)
		}
	}
}

func TestEachSeqHonoursWorkersUnderLoad(t *testing.T) {
	var g gauge
	_, err := batch.EachSeq(t.Context(), count(20000, nil), func(_ context.Context, i, in int) error {
		g.enter()
		defer g.exit()
		for range i % 3 {
			runtime.Gosched()
		}
		return nil
	}, batch.Workers(3))
	if err != nil {
		t.Fatal(err)
	}
	if got := g.max.Load(); got > 3 || got < 1 {
		t.Errorf("at most %d items ran at once, want between 1 and 3", got)
	}
}

func TestEachSeqKeepsEveryWorkerBusy(t *testing.T) {
	for range 20 { // the interleavings differ from run to run
		synctest.Test(t, func(t *testing.T) {
			var g gauge
			start := time.Now()
			rep, _ := batch.EachSeq(t.Context(), count(20, nil), func(context.Context, int, int) error {
				g.enter()
				defer g.exit()
				time.Sleep(time.Second)
				return nil
			}, batch.Workers(5))
			if got := g.max.Load(); got != 5 || rep.Succeeded != 20 {
				t.Errorf("max %d at once, %d succeeded; want 5 and 20", got, rep.Succeeded)
			}
			// 20 one-second items on 5 workers: 4s, unless an item waited
			// while a worker was free.
			if got := time.Since(start); got != 4*time.Second {
				t.Errorf("took %v, want 4s", got)
			}
		})
	}
}

func TestMapSeqKeepsEveryWorkerBusy(t *testing.T) {
	for range 20 {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			for range batch.MapSeq(t.Context(), count(30, nil), func(_ context.Context, i, _ int) (int, error) {
				time.Sleep(time.Duration(1+i%2) * time.Second)
				return 0, nil
			}, batch.Workers(3)) {
			}
			// 1s and 2s items in turn on 3 workers, each item taken by the
			// first free worker: 16s, unless an item waited while a worker
			// was free.
			if got := time.Since(start); got != 16*time.Second {
				t.Errorf("took %v, want 16s", got)
			}
		})
	}
}

func TestEachSeqSlowItemDoesNotHoldBackTheOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		// Item 0 takes an hour; the other 2000 take a second each, two
		// workers at a time. Were the reader to wait for item 0 to leave
		// its slot, the batch would take over an hour plus.
		rep, err := batch.EachSeq(t.Context(), count(2001, nil), func(_ context.Context, i, _ int) error {
			if i == 0 {
				time.Sleep(time.Hour)
			} else {
				time.Sleep(time.Second)
			}
			return nil
		}, batch.Workers(3))
		if err != nil || rep.Succeeded != 2001 {
			t.Fatalf("err %v, %d succeeded", err, rep.Succeeded)
		}
		if got := time.Since(start); got != time.Hour {
			t.Errorf("took %v, want 1h: the others finish meanwhile", got)
		}
	})
}

func TestEachSeqStopsReadingOnceStopped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		var read atomic.Int64
		rep, err := batch.EachSeq(ctx, count(1_000_000, &read), func(context.Context, int, int) error {
			time.Sleep(time.Second)
			return nil
		}, batch.Workers(2), batch.Margin(3*time.Second))
		// Two at a time, starting at 0s..7s with at least 3s left: 16 items.
		if rep.Succeeded != 16 {
			t.Errorf("%d succeeded, want 16", rep.Succeeded)
		}
		// Read ahead: the ring (256), the items the two workers took, and
		// the one read after the stop.
		if int64(rep.Succeeded+rep.Skipped) != read.Load() || read.Load() > 16+256+2+1 {
			t.Errorf("%d read, report %+v: every item read must be counted, and reading must stop", read.Load(), rep)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want DeadlineExceeded", err)
		}
	})
}

func TestOnProgressForASequenceHasNoTotal(t *testing.T) {
	var last batch.Progress
	calls := 0
	batch.EachSeq(t.Context(), count(50, nil), func(context.Context, int, int) error { return nil },
		batch.OnProgress(func(p batch.Progress) { calls++; last = p }))
	if calls != 50 || last.Total != -1 || last.Done != 50 || last.Succeeded != 50 {
		t.Errorf("%d calls, last %+v; want 50 calls ending at Done 50, Total -1", calls, last)
	}
}
