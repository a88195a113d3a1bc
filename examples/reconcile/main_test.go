package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/crewgo/crew/backoff"
	"github.com/crewgo/crew/batch"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fastConfig is the default job against a fast partner, so that a run
// takes a fraction of a second.
func fastConfig() config {
	cfg := defaultConfig()
	cfg.Payments = 120
	cfg.Workers = 4
	cfg.Rate, cfg.Burst = 2000, 4
	cfg.ItemTimeout = 200 * time.Millisecond
	cfg.Backoff = backoff.Constant(time.Millisecond)
	cfg.Deadline, cfg.Margin = time.Minute, time.Second
	cfg.Partner.MinLatency, cfg.Partner.MaxLatency = time.Millisecond, 3*time.Millisecond
	return cfg
}

func TestReconcileChecksEveryPaymentWithinItsLimits(t *testing.T) {
	cfg := fastConfig()
	var out bytes.Buffer
	sum, err := reconcile(t.Context(), cfg, &out)
	rep := sum.Report
	if rep.Skipped != 0 || rep.Succeeded+rep.Failed != cfg.Payments {
		t.Fatalf("report %d/%d/%d, want every one of %d payments checked\n%s", rep.Succeeded, rep.Failed, rep.Skipped, cfg.Payments, &out)
	}
	if sum.MaxInFlight > int64(cfg.Workers) {
		t.Errorf("%d requests in flight at once, want at most %d", sum.MaxInFlight, cfg.Workers)
	}
	for i, p := range sum.Payments {
		h, o := hash(p.ID), rep.Items[i]
		switch {
		case every(h, cfg.Partner.Unknown, 2):
			// A 404 is final, and the payment stays pending.
			if o.Status != batch.Failed || !strings.Contains(o.Err.Error(), "404") || sum.Store.status[p.ID] != "PENDING" {
				t.Errorf("%s (unknown to the partner): %v after %d attempts, %v", p.ID, o.Status, o.Attempts, o.Err)
			}
		case every(h, cfg.Partner.Stuck, 1), every(h, cfg.Partner.Unavailable, 3), every(h, cfg.Partner.Throttled, 4):
			// A hung request, a 503 or a 429 is retried until it succeeds.
			if o.Status != batch.Succeeded || o.Attempts < 2 {
				t.Errorf("%s (transient failures): %v after %d attempts, %v", p.ID, o.Status, o.Attempts, o.Err)
			}
		default:
			if o.Status != batch.Succeeded {
				t.Errorf("%s: %v after %d attempts, %v", p.ID, o.Status, o.Attempts, o.Err)
			}
		}
	}
	if err == nil || len(err.(interface{ Unwrap() []error }).Unwrap()) != rep.Failed {
		t.Errorf("err = %v, want one line per failed payment", err)
	}
	if !strings.Contains(out.String(), "0 skipped") {
		t.Errorf("the summary does not say that nothing was skipped:\n%s", &out)
	}
}

func TestReconcileStopsStartingPaymentsBeforeTheDeadline(t *testing.T) {
	cfg := fastConfig()
	cfg.Payments = 500
	cfg.Rate, cfg.Burst = 100, 1 // 5s of requests
	cfg.Deadline, cfg.Margin = time.Second, 300*time.Millisecond
	var out bytes.Buffer
	start := time.Now()
	sum, err := reconcile(context.Background(), cfg, &out)
	elapsed := time.Since(start)
	rep := sum.Report
	if rep.Skipped == 0 || rep.Succeeded+rep.Failed+rep.Skipped != cfg.Payments {
		t.Fatalf("report %d/%d/%d, want some of the %d payments skipped\n%s", rep.Succeeded, rep.Failed, rep.Skipped, cfg.Payments, &out)
	}
	if elapsed >= cfg.Deadline {
		t.Errorf("the job took %v, want it done before its %v deadline", elapsed, cfg.Deadline)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want it to say the deadline was near", err)
	}
	for i, p := range sum.Payments {
		if rep.Items[i].Status == batch.Skipped && sum.Store.status[p.ID] != "PENDING" {
			t.Errorf("%s was skipped but is marked %s", p.ID, sum.Store.status[p.ID])
		}
	}
	if !strings.Contains(out.String(), "stay pending for the next run") {
		t.Errorf("summary:\n%s", &out)
	}
}
