package backoff_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/crewgo/crew/backoff"
)

func ExampleExponential() {
	p := backoff.Exponential(100*time.Millisecond, time.Second)
	for attempt := 1; attempt <= 6; attempt++ {
		fmt.Println(attempt, p(attempt))
	}
	// Output:
	// 1 100ms
	// 2 200ms
	// 3 400ms
	// 4 800ms
	// 5 1s
	// 6 1s
}

func ExampleConstant() {
	p := backoff.Constant(time.Second)
	fmt.Println(p(1), p(10))
	// Output: 1s 1s
}

// Jitter spreads the retries of many clients that failed together.
func ExampleFullJitter() {
	p := backoff.FullJitter(backoff.Exponential(100*time.Millisecond, 10*time.Second))
	d := p(3) // somewhere in [0, 400ms]
	fmt.Println(d >= 0 && d <= 400*time.Millisecond)
	// Output: true
}

func ExampleEqualJitter() {
	p := backoff.EqualJitter(backoff.Constant(time.Second))
	d := p(1) // somewhere in [500ms, 1s]
	fmt.Println(d >= 500*time.Millisecond && d <= time.Second)
	// Output: true
}

// Clamp shortens a wait to the time a context has left, for a caller that
// wants to use all of it (a poller's last wait before one final check).
func ExampleClamp() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	d := backoff.Clamp(ctx, time.Minute)
	fmt.Println(d > 2*time.Second && d <= 3*time.Second)
	// Output: true
}

// Sleep is the wait between the attempts of a retry loop: it fails at once
// when the next attempt could not start before the deadline, so the loop
// returns its last error without idling until the deadline.
func ExampleSleep() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	// A wait that cannot finish before the deadline fails at once.
	err := backoff.Sleep(ctx, time.Minute)
	fmt.Println(errors.Is(err, context.DeadlineExceeded))
	// Output: true
}
