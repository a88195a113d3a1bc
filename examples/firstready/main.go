// Command firstready waits for the first of several instances to reach
// status "ok", runs its setup there, and stops waiting for the others at
// once: a deployment tool's wait for one EC2 instance of an autoscaling
// group to be ready before it runs SSM commands there, written with
// wait.First, against a fake instance-status API on 127.0.0.1 that makes each
// instance ready after a random delay.
//
//	go run ./firstready -instances 5
//
// Written by hand, such a tool easily passes context.TODO() to each waiter:
// cancelling the waiters then never reaches them, and the program waits for
// the slowest instance. wait.First hands every task its own context and
// cancels it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/crewgo/crew/backoff"
	"github.com/crewgo/crew/wait"
)

func main() {
	instances := flag.Int("instances", 3, "number of instances in the group")
	maxWait := flag.Duration("max-wait", 5*time.Minute, "how long each waiter waits, as in waiter.Wait")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	readyIn := func(int) time.Duration { return 200*time.Millisecond + rand.N(3*time.Second) }
	if err := run(ctx, os.Stdout, *instances, *maxWait, readyIn); err != nil {
		fmt.Fprintln(os.Stderr, "firstready:", err)
		os.Exit(1)
	}
}

// run starts the fake API with n instances, instance i ready after
// readyIn(i), and waits for the first of them to be ready.
func run(ctx context.Context, w io.Writer, n int, maxWait time.Duration, readyIn func(i int) time.Duration) error {
	api := newFakeAPI()
	srv := httptest.NewServer(api.handler())
	defer srv.Close()
	start := time.Now()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("i-%04d", i)
		api.add(ids[i], start.Add(readyIn(i)))
		fmt.Fprintf(w, "%s will be ready in %v\n", ids[i], readyIn(i).Round(time.Millisecond))
	}

	ready, err := firstReady(ctx, srv.Client(), srv.URL, ids, maxWait)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s is ready after %v; the %d other waiters have stopped\n",
		ready, time.Since(start).Round(10*time.Millisecond), n-1)
	fmt.Fprintf(w, "running setup on %s\n", ready)
	return nil
}

// firstReady returns the first of the instances to reach status ok. The
// other waiters are cancelled as soon as one is ready, and firstReady returns
// once every one of them has stopped.
func firstReady(ctx context.Context, client *http.Client, api string, ids []string, maxWait time.Duration) (string, error) {
	waiters := make([]wait.Task[string], len(ids))
	for i, id := range ids {
		// What ec2.NewInstanceStatusOkWaiter(client).Wait(ctx, input, maxWait)
		// does, with the ctx that First hands to this waiter.
		waiters[i] = func(ctx context.Context) (string, error) {
			_, err := wait.Until(ctx, describeStatus(client, api, id), statusOK,
				wait.MaxWait(maxWait),
				wait.Delay(backoff.EqualJitter(backoff.Exponential(50*time.Millisecond, time.Second))),
				wait.Terminal(isClientError)) // AccessDenied will not go away by retrying
			return id, err
		}
	}
	win, err := wait.First(ctx, waiters)
	return win.Value, err
}

// statusOK is the waiter's acceptor: done at "ok", failed at "impaired",
// retried otherwise.
func statusOK(status string, err error) wait.State {
	switch {
	case err != nil:
		return wait.Retry
	case status == "ok":
		return wait.Done
	case status == "impaired":
		return wait.Fail
	}
	return wait.Retry
}

// describeStatus returns a probe that asks the API for one instance's status.
func describeStatus(client *http.Client, api, id string) wait.Task[string] {
	return func(ctx context.Context) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, api+"/instances/"+id+"/status", nil)
		if err != nil {
			return "", err
		}
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			return "", &apiError{Code: resp.StatusCode, Message: strings.TrimSpace(string(msg))}
		}
		var s instanceStatus
		if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
			return "", err
		}
		return s.Status, nil
	}
}

// apiError is an error response of the API.
type apiError struct {
	Code    int
	Message string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s", e.Code, e.Message) }

// isClientError reports errors that retrying cannot fix: 4xx responses other
// than 429 Too Many Requests.
func isClientError(err error) bool {
	var e *apiError
	return errors.As(err, &e) && e.Code >= 400 && e.Code < 500 && e.Code != http.StatusTooManyRequests
}
