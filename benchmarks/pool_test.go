package benchmarks

// Side-by-side benchmarks of crew's pool against the worker pools it
// replaces, on the five workloads of benchmarks/README.md. One benchmark
// operation runs a whole workload on a fresh pool and waits for every task;
// the metrics that matter are reported per task:
//
//	ns/task      wall time per task
//	allocs/task  heap allocations per task (runtime.MemStats.Mallocs)
//	peak-MiB     peak resident memory above the level at the start of the run
//
// Run them with:
//
//	go test -run '^$' -bench Pool -benchtime 3x -count 6 . | tee pool.txt
//	benchstat -col /lib -row /workload pool.txt
//
// peak-MiB depends on what earlier benchmarks of the same process left
// behind; BenchmarkPeakRSS measures workload a in a fresh process per run.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	pondv1 "github.com/alitto/pond"
	pond "github.com/alitto/pond/v2"
	"github.com/crewgo/crew/pool"
	"github.com/gammazero/workerpool"
	"github.com/panjf2000/ants/v2"
	concpool "github.com/sourcegraph/conc/pool"
	"golang.org/x/sync/errgroup"
)

// spin burns CPU for n iterations and is never inlined or optimised away.
//
//go:noinline
func spin(n int) int {
	s := 0
	for i := range n {
		s += i ^ s
	}
	return s
}

var (
	calibrateOnce sync.Once
	spinPerMicro  int // iterations of spin that take about 1µs
)

func microSpin() int {
	calibrateOnce.Do(func() {
		const n = 1_000_000
		best := time.Duration(1 << 62)
		for range 5 {
			start := time.Now()
			_ = spin(n)
			best = min(best, time.Since(start))
		}
		spinPerMicro = max(1, int(int64(n)*int64(time.Microsecond)/int64(best)))
	})
	return spinPerMicro
}

// workload describes one row of the README's table.
type workload struct {
	name       string
	limit      int
	submitters int
	bursts     int // per submitter; 1 means submit everything at once
	perBurst   int // tasks per burst per submitter
	kind       func(i int) func()
}

func (w workload) tasks() int { return w.submitters * w.bursts * w.perBurst }

var (
	tiny  = func() { _ = spin(8) }
	micro = func() { _ = spin(microSpin()) }
	nap   = func() { time.Sleep(10 * time.Millisecond) }
	short = func() { time.Sleep(100 * time.Microsecond) }
)

func workloads() []workload {
	procs := runtime.GOMAXPROCS(0)
	return []workload{
		{"a-tiny-1M", 1000, 1, 1, 1_000_000, func(int) func() { return tiny }},
		{"b-100-submitters", 1000, 100, 1, 10_000, func(int) func() { return tiny }},
		{"c-sleep-10ms", 10_000, 1, 1, 100_000, func(int) func() { return nap }},
		{"d-cpu-1us", procs, 1, 1, 1_000_000, func(int) func() { return micro }},
		{"e-bursts", 64, 8, 25, 1000, func(i int) func() {
			switch {
			case i%100 == 0:
				return short // 1%: waits on I/O for 100µs
			case i%5 == 0:
				return micro // 19%: 1µs of CPU
			default:
				return tiny
			}
		}},
	}
}

// distinct returns the distinct task functions of a workload, prepared once so
// that submitting a task allocates nothing on the benchmark's side.
func distinct(w workload) []func() {
	var out []func()
	seen := map[string]bool{}
	for i := range 100 {
		f := w.kind(i)
		key := fmt.Sprintf("%p", f)
		if !seen[key] {
			seen[key] = true
			out = append(out, f)
		}
	}
	return out
}

// picker returns a function giving the index in kinds of the function for task i.
func picker(w workload, kinds []func()) func(i int) int {
	idx := map[string]int{}
	for j, f := range kinds {
		idx[fmt.Sprintf("%p", f)] = j
	}
	table := make([]int, 100)
	for i := range table {
		table[i] = idx[fmt.Sprintf("%p", w.kind(i))]
	}
	return func(i int) int { return table[i%100] }
}

// runner runs one workload on a fresh pool of one library.
type runner interface {
	name() string
	run(w workload)
}

// adapter drives one library. T is the library's own task type, so that
// tasks are built once, before the timer starts, and submitting one
// allocates nothing on the benchmark's side. open returns the library's
// submit, its wait for every submitted task (nil if it has none: then each
// submitter counts its tasks with a WaitGroup, as a user would), and a
// release for what is left after that.
type adapter[T any] struct {
	lib  string
	wrap func(f func()) T
	open func(limit int) (submit func(T), wait, release func())
}

func (a adapter[T]) name() string { return a.lib }

func (a adapter[T]) run(w workload) {
	kinds := distinct(w)
	pick := picker(w, kinds)
	submit, wait, release := a.open(w.limit)
	// A submitter that waits between bursts needs its own count of its
	// tasks, and so does every submitter of a library without a wait.
	counted := w.bursts > 1 || wait == nil
	groups := make([]sync.WaitGroup, w.submitters)
	tasks := make([][]T, w.submitters)
	for s := range tasks {
		for _, f := range kinds {
			if counted {
				wg := &groups[s]
				tasks[s] = append(tasks[s], a.wrap(func() { f(); wg.Done() }))
			} else {
				tasks[s] = append(tasks[s], a.wrap(f))
			}
		}
	}
	var subs sync.WaitGroup
	for s := range w.submitters {
		subs.Go(func() {
			wg := &groups[s]
			for range w.bursts {
				for i := range w.perBurst {
					if counted {
						wg.Add(1)
					}
					submit(tasks[s][pick(i)])
				}
				if counted {
					wg.Wait()
				}
			}
		})
	}
	subs.Wait()
	if wait != nil {
		wait()
	}
	if release != nil {
		release()
	}
}

func same(f func()) func() { return f }

func libraries() []runner {
	ctx := context.Background()
	return []runner{
		adapter[func(context.Context) error]{"crew",
			func(f func()) func(context.Context) error {
				return func(context.Context) error { f(); return nil }
			},
			func(limit int) (func(func(context.Context) error), func(), func()) {
				p := pool.New(limit)
				return func(t func(context.Context) error) { _ = p.Go(ctx, t) },
					func() { p.Close(); _ = p.Wait() }, nil
			}},
		adapter[func()]{"ants", same, func(limit int) (func(func()), func(), func()) {
			p, _ := ants.NewPool(limit)
			return func(f func()) { _ = p.Submit(f) }, nil, p.Release
		}},
		adapter[func()]{"ants-func", same, func(limit int) (func(func()), func(), func()) {
			p, _ := ants.NewPoolWithFunc(limit, func(arg any) { arg.(func())() })
			return func(f func()) { _ = p.Invoke(f) }, nil, p.Release
		}},
		adapter[func()]{"pond-v2", same, func(limit int) (func(func()), func(), func()) {
			p := pond.NewPool(limit)
			return func(f func()) { _ = p.Go(f) }, p.StopAndWait, nil
		}},
		adapter[func()]{"pond-v2-bounded", same, func(limit int) (func(func()), func(), func()) {
			p := pond.NewPool(limit, pond.WithQueueSize(limit))
			return func(f func()) { _ = p.Go(f) }, p.StopAndWait, nil
		}},
		adapter[func()]{"pond-v1", same, func(limit int) (func(func()), func(), func()) {
			p := pondv1.New(limit, limit)
			return p.Submit, p.StopAndWait, nil
		}},
		adapter[func()]{"conc", same, func(limit int) (func(func()), func(), func()) {
			p := concpool.New().WithMaxGoroutines(limit)
			return p.Go, p.Wait, nil
		}},
		adapter[func() error]{"errgroup",
			func(f func()) func() error { return func() error { f(); return nil } },
			func(limit int) (func(func() error), func(), func()) {
				var g errgroup.Group
				g.SetLimit(limit)
				return g.Go, func() { _ = g.Wait() }, nil
			}},
		adapter[func()]{"workerpool", same, func(limit int) (func(func()), func(), func()) {
			p := workerpool.New(limit)
			return p.Submit, p.StopWait, nil
		}},
		adapter[func()]{"semaphore", same, func(limit int) (func(func()), func(), func()) {
			// The usual hand-written version: a buffered channel as a semaphore.
			sem := make(chan struct{}, limit)
			return func(f func()) {
				sem <- struct{}{}
				go func() {
					f()
					<-sem
				}()
			}, nil, nil
		}},
	}
}

func BenchmarkPool(b *testing.B) {
	for _, w := range workloads() {
		for _, lib := range libraries() {
			b.Run("workload="+w.name+"/lib="+lib.name(), func(b *testing.B) {
				measure(b, w, lib)
			})
		}
	}
}

func measure(b *testing.B, w workload, lib runner) {
	microSpin()
	runtime.GC()
	debug.FreeOSMemory()
	base := resetPeakRSS()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for b.Loop() {
		lib.run(w)
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	n := float64(b.N) * float64(w.tasks())
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/task")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/n, "allocs/task")
	if peak := peakRSS(); peak > 0 && base > 0 {
		b.ReportMetric(float64(max(peak-base, 0))/(1<<20), "peak-MiB")
	}
}

// resetPeakRSS resets the kernel's peak-RSS mark for this process (Linux
// 4.0 and later) and returns the current RSS in bytes, or 0 if unavailable.
func resetPeakRSS() int64 {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return 0
	}
	return procStatus("VmRSS:")
}

func peakRSS() int64 { return procStatus("VmHWM:") }

func procStatus(field string) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// BenchmarkPeakRSS runs workload a once per library in a child process and
// reports the child's peak resident memory (ru_maxrss) in MiB, averaged
// over the runs. It counts the
// whole process, Go runtime included, so that every library starts from the
// same footing, free of what earlier benchmarks left in this process:
//
//	go test -run '^$' -bench PeakRSS -benchtime 3x -count 6 . | tee rss.txt
//	benchstat -col /lib -row /workload rss.txt
func BenchmarkPeakRSS(b *testing.B) {
	w := workloads()[0]
	for _, lib := range libraries() {
		b.Run("workload="+w.name+"/lib="+lib.name(), func(b *testing.B) {
			var sum, n int64
			for b.Loop() {
				sum += childPeakRSS(b, w.name+"/"+lib.name())
				n++
			}
			b.ReportMetric(float64(sum)/float64(n)/(1<<20), "maxrss-MiB")
		})
	}
}

// childPeakRSS runs TestPoolChild for spec in a new process and returns its
// peak resident memory in bytes.
func childPeakRSS(b *testing.B, spec string) int64 {
	cmd := exec.Command(os.Args[0], "-test.run=^TestPoolChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "CREW_POOL_CHILD="+spec)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("child %s: %v\n%s", spec, err, out)
	}
	rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss
	if runtime.GOOS != "darwin" {
		rss <<= 10 // kilobytes, except on macOS
	}
	return rss
}

// TestPoolChild is BenchmarkPeakRSS's child: it runs the workload and
// library that CREW_POOL_CHILD names, as "workload/lib", once.
func TestPoolChild(t *testing.T) {
	spec := os.Getenv("CREW_POOL_CHILD")
	if spec == "" {
		t.Skip("runs only as a child process of BenchmarkPeakRSS")
	}
	wname, lname, _ := strings.Cut(spec, "/")
	for _, w := range workloads() {
		for _, lib := range libraries() {
			if w.name == wname && lib.name() == lname {
				microSpin()
				lib.run(w)
				return
			}
		}
	}
	t.Fatalf("no workload and library %q", spec)
}
