package pool_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/crewgo/crew/pool"
)

func Example() {
	p := pool.New(4)
	var sum atomic.Int64
	for i := 1; i <= 100; i++ {
		_ = p.Go(context.Background(), func(ctx context.Context) error {
			sum.Add(int64(i))
			return nil
		})
	}
	p.Close()
	if err := p.Wait(); err != nil {
		fmt.Println(err)
	}
	fmt.Println(sum.Load())
	// Output: 5050
}

// A library calls back with events; the callback feeds a pool and must
// never panic, even when it races with shutdown.
func ExamplePool_Go() {
	p := pool.New(2)
	onEvent := func(event int) {
		err := p.Go(context.Background(), func(ctx context.Context) error {
			return nil // handle the event
		})
		if errors.Is(err, pool.ErrClosed) {
			fmt.Println("event", event, "refused: shutting down")
		}
	}
	onEvent(1)
	p.Close() // SIGTERM arrived
	onEvent(2)
	fmt.Println("in-flight events finished:", p.Wait() == nil)
	// Output:
	// event 2 refused: shutting down
	// in-flight events finished: true
}

func ExamplePool_TryGo() {
	p := pool.New(1, pool.Queue(0))
	release := make(chan struct{})
	fmt.Println(p.TryGo(func(ctx context.Context) error { <-release; return nil }))
	fmt.Println(p.TryGo(func(ctx context.Context) error { return nil })) // full: refused at once
	close(release)
	p.Close()
	_ = p.Wait()
	// Output:
	// true
	// false
}

// Wait reports every failure, not only the first.
func ExamplePool_Wait() {
	p := pool.New(1)
	for _, name := range []string{"a", "b", "c"} {
		_ = p.Go(context.Background(), func(ctx context.Context) error {
			if name == "b" {
				return nil
			}
			return fmt.Errorf("%s failed", name)
		})
	}
	p.Close()
	fmt.Println(p.Wait())
	// Output:
	// a failed
	// c failed
}

// Shutdown drains within a deadline, then cancels what is still running.
func ExamplePool_Shutdown() {
	p := pool.New(1)
	_ = p.Go(context.Background(), func(ctx context.Context) error {
		<-ctx.Done() // a task that runs until it is told to stop
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	fmt.Println(p.Shutdown(ctx))
	_ = p.Wait()
	// Output: pool: shutdown: 1 tasks still running: context deadline exceeded
}

// With CancelOnError the first failure cancels the others, as
// errgroup.WithContext does, and tasks not yet started are skipped.
func ExampleCancelOnError() {
	p := pool.New(1, pool.CancelOnError())
	second := make(chan struct{})
	_ = p.Go(context.Background(), func(ctx context.Context) error {
		<-second // fail only once the second task waits in the queue
		return errors.New("bad input")
	})
	_ = p.Go(context.Background(), func(ctx context.Context) error { return nil })
	close(second)
	err := p.Wait()
	fmt.Println(err, "| skipped:", p.Stats().Skipped)
	p.Close()
	// Output: bad input | skipped: 1
}

// WithContext ties the pool's tasks to a parent context.
func ExampleWithContext() {
	ctx, cancel := context.WithCancel(context.Background())
	p := pool.New(2, pool.WithContext(ctx))
	cancel()
	fmt.Println(p.Go(context.Background(), func(ctx context.Context) error { return nil }))
	p.Close()
	_ = p.Wait()
	// Output: context canceled
}

// Queue(0) makes every Go a hand-off: it returns only once a goroutine has
// taken the task.
func ExampleQueue() {
	p := pool.New(1, pool.Queue(0))
	started := make(chan struct{})
	_ = p.Go(context.Background(), func(ctx context.Context) error { close(started); return nil })
	<-started
	p.Close()
	_ = p.Wait()
	fmt.Println("handed off")
	// Output: handed off
}

func ExamplePool_SetLimit() {
	p := pool.New(1)
	p.SetLimit(16) // the downstream service can take more now
	fmt.Println(p.Stats().Limit)
	p.Close()
	_ = p.Wait()
	// Output: 16
}

func ExamplePool_Stats() {
	p := pool.New(2)
	for range 5 {
		_ = p.Go(context.Background(), func(ctx context.Context) error { return nil })
	}
	_ = p.Wait()
	st := p.Stats()
	fmt.Printf("done %d, failed %d, running %d\n", st.Done, st.Failed, st.Running)
	p.Close()
	// Output: done 5, failed 0, running 0
}
