package benchmarks

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/crewgo/crew/wait"
)

// handFirst is First as it is usually written by hand, with a WaitGroup and
// a channel: the baseline for wait.First's overhead. It does less than
// wait.First: it cancels the winner's context too, does not recover panics,
// and reports errors in the order they arrived.
func handFirst(ctx context.Context, tasks []func(context.Context) (int, error)) (index, value int, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		index, value int
		err          error
	}
	results := make(chan result, len(tasks))
	var wg sync.WaitGroup
	for i, task := range tasks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := task(ctx)
			results <- result{i, v, err}
		}()
	}
	index = -1
	var errs []error
	for range tasks {
		r := <-results
		switch {
		case r.err != nil:
			errs = append(errs, r.err)
		case index < 0:
			index, value = r.index, r.value
			cancel()
		}
	}
	wg.Wait()
	if index < 0 {
		return -1, 0, errors.Join(errs...)
	}
	return index, value, nil
}

func TestHandFirstReturnsASuccess(t *testing.T) {
	fail := func(context.Context) (int, error) { return 0, errors.New("no") }
	succeed := func(context.Context) (int, error) { return 7, nil }
	if i, v, err := handFirst(context.Background(), []func(context.Context) (int, error){fail, succeed}); i != 1 || v != 7 || err != nil {
		t.Errorf("handFirst = %d, %d, %v; want 1, 7, nil", i, v, err)
	}
}

// BenchmarkFirst measures a call of First over N tasks that succeed at once,
// against handFirst. With parent=cancel, the parent is a long-lived
// cancellable context (a server's root context), for which wait.First keeps
// the winner's context alive and ties it to the parent through a weak
// reference; with parent=background there is nothing to tie it to.
//
//	go test -run '^$' -bench First -benchmem -count 6 . | tee /tmp/wait-bench.txt
//	benchstat -col /impl /tmp/wait-bench.txt
func BenchmarkFirst(b *testing.B) {
	root, cancel := context.WithCancel(context.Background())
	defer cancel()
	parents := []struct {
		name string
		ctx  context.Context
	}{{"background", context.Background()}, {"cancel", root}}
	for _, parent := range parents {
		for _, n := range []int{2, 4, 8, 16, 32, 64} {
			tasks := make([]wait.Task[int], n)
			plain := make([]func(context.Context) (int, error), n)
			for i := range n {
				tasks[i] = func(context.Context) (int, error) { return i, nil }
				plain[i] = tasks[i]
			}
			b.Run(fmt.Sprintf("parent=%s/N=%d/impl=crew", parent.name, n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := wait.First(parent.ctx, tasks); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(fmt.Sprintf("parent=%s/N=%d/impl=hand", parent.name, n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, _, err := handFirst(parent.ctx, plain); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
