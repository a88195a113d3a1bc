package main

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/crewgo/crew/wait"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var instances = []string{"i-0000", "i-0001", "i-0002"}

// startAPI serves a fake API whose instances never become ready on their own.
func startAPI(t *testing.T) (*fakeAPI, *httptest.Server) {
	api := newFakeAPI()
	for _, id := range instances {
		api.add(id, time.Now().Add(time.Hour))
	}
	srv := httptest.NewServer(api.handler())
	t.Cleanup(srv.Close)
	return api, srv
}

func TestFirstReadyReturnsTheReadyInstanceAndStopsEveryOtherWaiter(t *testing.T) {
	api, srv := startAPI(t)
	type result struct {
		id  string
		err error
	}
	done := make(chan result, 1)
	go func() {
		id, err := firstReady(t.Context(), srv.Client(), srv.URL, instances, time.Hour)
		done <- result{id, err}
	}()
	for _, id := range instances {
		<-api.polledOnce(id) // every waiter is polling
	}
	api.setReady("i-0001")
	// The other two instances never become ready and their waiters would
	// poll for an hour: firstReady returns only because they were stopped.
	r := <-done
	if r.err != nil || r.id != "i-0001" {
		t.Fatalf("firstReady = %q, %v; want i-0001", r.id, r.err)
	}
	if n := api.inFlight.Load(); n != 0 {
		t.Errorf("%d status requests still in flight after firstReady returned", n)
	}
}

func TestFirstReadyGivesUpAtOnceOnAccessDenied(t *testing.T) {
	api, srv := startAPI(t)
	api.denyAll()
	_, err := firstReady(t.Context(), srv.Client(), srv.URL, instances, time.Hour)
	errs := err.(interface{ Unwrap() []error }).Unwrap()
	if len(errs) != len(instances) {
		t.Fatalf("error = %v, want one per instance", err)
	}
	for i, e := range errs {
		var te *wait.TaskError
		if !errors.As(e, &te) || te.Index != i || !strings.Contains(e.Error(), "AccessDenied") {
			t.Errorf("error %d = %v, want task %d: attempt 0: 403 AccessDenied", i, e, i)
		}
	}
}

func TestRunSetsUpTheFastestInstance(t *testing.T) {
	var out bytes.Buffer
	readyIn := []time.Duration{time.Hour, 10 * time.Millisecond, time.Hour}
	err := run(context.Background(), &out, 3, time.Hour, func(i int) time.Duration { return readyIn[i] })
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, want := range []string{"i-0001 is ready after", "the 2 other waiters have stopped", "running setup on i-0001\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
