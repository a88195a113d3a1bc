package wait_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/crewgo/crew"
	"github.com/crewgo/crew/backoff"
	"github.com/crewgo/crew/wait"
)

// Wait for the first of three instances to be ready. The other waiters are
// cancelled as soon as one succeeds, and First returns only once they have
// stopped.
func ExampleFirst() {
	ready := map[string]bool{"i-0a": false, "i-0b": true, "i-0c": false}
	waitReady := func(id string) wait.Task[string] {
		return func(ctx context.Context) (string, error) {
			if !ready[id] {
				<-ctx.Done() // a waiter that only cancellation stops
				return "", ctx.Err()
			}
			return id, nil
		}
	}
	win, err := wait.First(context.Background(), []wait.Task[string]{
		waitReady("i-0a"), waitReady("i-0b"), waitReady("i-0c"),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("task %d: %s is ready\n", win.Index, win.Value)
	// Output: task 1: i-0b is ready
}

// When every task fails, the error lists them all, in task order.
func ExampleFirst_allFail() {
	fail := func(msg string) wait.Task[int] {
		return func(context.Context) (int, error) { return 0, errors.New(msg) }
	}
	_, err := wait.First(context.Background(), []wait.Task[int]{fail("connection refused"), fail("503 Service Unavailable")})
	fmt.Println(err)
	// Output:
	// task 0: connection refused
	// task 1: 503 Service Unavailable
}

// The winner's context is not cancelled when First returns, so its response
// body can still be read.
func ExampleFirst_responseBody() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-r.Context().Done()
			return
		}
		io.WriteString(w, "hello from the fast mirror")
	}))
	defer srv.Close()
	get := func(path string) wait.Task[*http.Response] {
		return func(ctx context.Context) (*http.Response, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
			if err != nil {
				return nil, err
			}
			return srv.Client().Do(req)
		}
	}
	win, err := wait.First(context.Background(), []wait.Task[*http.Response]{get("/slow"), get("/fast")},
		wait.Discard(func(r *http.Response) { r.Body.Close() })) // a loser that answered anyway
	if err != nil {
		fmt.Println(err)
		return
	}
	defer win.Value.Body.Close()
	body, err := io.ReadAll(win.Value.Body)
	fmt.Println(string(body), err)
	// Output: hello from the fast mirror <nil>
}

// Hedge sends a second request when the first is slow, and takes whichever
// answers first.
func ExampleHedge() {
	ask := func(ctx context.Context, attempt int) (string, error) {
		if attempt == 0 {
			<-ctx.Done() // the first replica is stuck
			return "", ctx.Err()
		}
		return fmt.Sprintf("answered by attempt %d", attempt), nil
	}
	answer, err := wait.Hedge(context.Background(), ask, wait.HedgeAfter(10*time.Millisecond, 2))
	fmt.Println(answer, err)
	// Output: answered by attempt 1 <nil>
}

// Until polls until the state function says Done.
func ExampleUntil() {
	statuses := []string{"pending", "initializing", "ok"}
	probes := 0
	describe := func(context.Context) (string, error) {
		status := statuses[probes]
		probes++
		return status, nil
	}
	statusOK := func(status string, err error) wait.State {
		switch {
		case err != nil:
			return wait.Retry
		case status == "ok":
			return wait.Done
		case status == "terminated":
			return wait.Fail
		}
		return wait.Retry
	}
	status, err := wait.Until(context.Background(), describe, statusOK, wait.Delay(backoff.Constant(time.Millisecond)))
	fmt.Println(status, err, "after", probes, "probes")
	// Output: ok <nil> after 3 probes
}

// A wait that runs out of time keeps the probe's last error.
func ExampleMaxWait() {
	refused := errors.New("connection refused")
	probe := func(context.Context) (int, error) { return 0, refused }
	_, err := wait.Until(context.Background(), probe, nil,
		wait.MaxWait(20*time.Millisecond), wait.Delay(backoff.Constant(5*time.Millisecond)))
	fmt.Println(errors.Is(err, wait.ErrMaxWait), errors.Is(err, context.DeadlineExceeded), errors.Is(err, refused))
	// Output: true true true
}

// AttemptTimeout stops one hung probe from using up the whole wait.
func ExampleAttemptTimeout() {
	probes := 0
	probe := func(ctx context.Context) (string, error) {
		probes++
		if probes == 1 {
			<-ctx.Done() // the first call hangs
			return "", ctx.Err()
		}
		return "ok", nil
	}
	status, err := wait.Until(context.Background(), probe, nil,
		wait.AttemptTimeout(10*time.Millisecond), wait.Delay(backoff.Constant(time.Millisecond)))
	fmt.Println(status, err, "after", probes, "probes")
	// Output: ok <nil> after 2 probes
}

// Delay sets the backoff between probes: here 1ms, 2ms, 4ms... with jitter.
func ExampleDelay() {
	probes := 0
	probe := func(context.Context) (int, error) {
		probes++
		if probes < 4 {
			return 0, errors.New("not yet")
		}
		return probes, nil
	}
	n, err := wait.Until(context.Background(), probe, nil,
		wait.Delay(backoff.EqualJitter(backoff.Exponential(time.Millisecond, 10*time.Millisecond))))
	fmt.Println(n, err)
	// Output: 4 <nil>
}

// With a delay of zero, HedgeAfter starts every attempt at once.
func ExampleHedgeAfter() {
	started := make(chan int, 3)
	ask := func(ctx context.Context, attempt int) (int, error) {
		started <- attempt
		if attempt < 2 {
			<-ctx.Done()
			return 0, ctx.Err()
		}
		return attempt, nil
	}
	answer, err := wait.Hedge(context.Background(), ask, wait.HedgeAfter(0, 2))
	fmt.Println(answer, err, len(started), "attempts")
	// Output: 2 <nil> 3 attempts
}

// Terminal stops retrying an error that retrying cannot fix.
func ExampleTerminal() {
	denied := errors.New("AccessDenied: not authorized to perform ec2:DescribeInstanceStatus")
	probe := func(context.Context) (string, error) { return "", denied }
	_, err := wait.Until(context.Background(), probe, nil,
		wait.MaxWait(time.Hour), wait.Terminal(func(err error) bool { return errors.Is(err, denied) }))
	fmt.Println(err)
	// Output: attempt 0: AccessDenied: not authorized to perform ec2:DescribeInstanceStatus
}

// Discard releases what losers return after the winner, such as a response
// body that must be closed.
func ExampleDiscard() {
	type conn struct{ name string }
	tasks := []wait.Task[*conn]{
		func(context.Context) (*conn, error) { return &conn{"primary"}, nil },
		func(ctx context.Context) (*conn, error) {
			<-ctx.Done()
			return &conn{"replica"}, nil // connected just as it was cancelled
		},
	}
	win, _ := wait.First(context.Background(), tasks, wait.Discard(func(c *conn) { fmt.Println("closing", c.name) }))
	fmt.Println("using", win.Value.name)
	// Output:
	// closing replica
	// using primary
}

// PanicAsError returns a panic as the task's error instead of re-raising it.
func ExamplePanicAsError() {
	tasks := []wait.Task[int]{
		func(context.Context) (int, error) { panic("nil map") },
	}
	_, err := wait.First(context.Background(), tasks, wait.PanicAsError())
	var pe *crew.PanicError
	if errors.As(err, &pe) {
		fmt.Println("recovered:", pe.Value)
	}
	// Output: recovered: nil map
}

func ExampleState_String() {
	fmt.Println(wait.Retry, wait.Done, wait.Fail)
	// Output: Retry Done Fail
}
