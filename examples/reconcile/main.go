// Command reconcile is a payment-reconciliation job written with crew's
// batch package: a Kubernetes CronJob that checks the status of pending
// payments with a bank partner whose API is slow and fails now and then, and
// that must be done before the job's activeDeadlineSeconds.
//
// Written by hand, such a job bounds the number of requests with a buffered
// channel used as a semaphore and waits for them with a sync.WaitGroup. That
// leaves out what goes wrong on payday: nothing stops the job from starting
// requests it has no time to finish, a failed request is forgotten (or marks
// a payment failed for a 503), nothing retries, and nothing keeps the job
// within the partner's rate limit. Here batch.Each does all of it: at most
// Workers requests at once and Rate a second, a timeout on each request, a
// retry with backoff for 429 and 503, and a Margin: the job stops starting
// requests when the deadline is near, so that it can record what it did and
// exit on its own; the payments it skipped stay pending for the next run.
//
// The program starts a fake partner API on 127.0.0.1, so it runs anywhere:
//
//	cd examples && go run ./reconcile
//	go run ./reconcile -payments 3000   # more than fits in the deadline
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/crewgo/crew/backoff"
	"github.com/crewgo/crew/batch"
)

// config is what the job is tuned with; on Kubernetes it would come from
// the CronJob's environment.
type config struct {
	Payments    int           // pending payments in the store
	Deadline    time.Duration // the CronJob's activeDeadlineSeconds
	Margin      time.Duration // kept at the end to record results and exit
	Workers     int           // requests in flight at most
	Rate        rate.Limit    // requests per second at most
	Burst       int
	ItemTimeout time.Duration // per request
	Attempts    int           // per payment, the first try included
	Backoff     backoff.Policy
	Partner     partnerConfig
}

func defaultConfig() config {
	return config{
		Payments:    300,
		Deadline:    15 * time.Second,
		Margin:      3 * time.Second,
		Workers:     8,
		Rate:        100,
		Burst:       8,
		ItemTimeout: 400 * time.Millisecond,
		Attempts:    4,
		Backoff:     backoff.FullJitter(backoff.Exponential(20*time.Millisecond, time.Second)),
		Partner: partnerConfig{
			MinLatency:  20 * time.Millisecond,
			MaxLatency:  150 * time.Millisecond,
			Unavailable: 15,
			Throttled:   25,
			Stuck:       40,
			Unknown:     60,
		},
	}
}

func main() {
	cfg := defaultConfig()
	flag.IntVar(&cfg.Payments, "payments", cfg.Payments, "pending payments to reconcile")
	flag.DurationVar(&cfg.Deadline, "deadline", cfg.Deadline, "the job's deadline (activeDeadlineSeconds)")
	flag.DurationVar(&cfg.Margin, "margin", cfg.Margin, "stop starting requests this long before the deadline")
	flag.IntVar(&cfg.Workers, "workers", cfg.Workers, "requests in flight at most")
	flag.Parse()
	if _, err := reconcile(context.Background(), cfg, os.Stdout); err != nil {
		os.Exit(1) // every failure was printed; the CronJob shows the run as failed
	}
}

// Payment is a payment waiting to be reconciled.
type Payment struct{ ID string }

// store stands for the job's database.
type store struct {
	mu     sync.Mutex
	status map[string]string // PENDING, SUCCESS or FAILED
	order  []string
}

func newStore(n int) *store {
	s := &store{status: make(map[string]string, n)}
	for i := range n {
		id := fmt.Sprintf("pay-%04d", i+1)
		s.status[id] = "PENDING"
		s.order = append(s.order, id)
	}
	return s
}

func (s *store) FetchPaymentsToRecon() []Payment {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ps []Payment
	for _, id := range s.order {
		if s.status[id] == "PENDING" {
			ps = append(ps, Payment{id})
		}
	}
	return ps
}

func (s *store) mark(id, status string) {
	s.mu.Lock()
	s.status[id] = status
	s.mu.Unlock()
}

func (s *store) count(status string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, st := range s.status {
		if st == status {
			n++
		}
	}
	return n
}

// summary is what a run did, for the tests.
type summary struct {
	Report      batch.Report[struct{}]
	Payments    []Payment
	Store       *store
	Elapsed     time.Duration
	MaxInFlight int64
}

// retryable says which errors deserve another try: the partner's 429 and
// 503, and a request that timed out. (batch never retries once the job's
// own deadline has passed.)
func retryable(err error) bool {
	return errors.Is(err, errTransient) || errors.Is(err, context.DeadlineExceeded)
}

// reconcile runs the job once against a fresh fake partner and store, and
// prints what it did to out. Its error is the batch's: nil only if every
// payment was checked.
func reconcile(ctx context.Context, cfg config, out io.Writer) (summary, error) {
	url, stop, err := startFakePartner(cfg.Partner)
	if err != nil {
		return summary{}, err
	}
	defer stop()
	transport := &http.Transport{MaxIdleConnsPerHost: cfg.Workers}
	defer transport.CloseIdleConnections()
	partner := &partnerClient{base: url, http: &http.Client{Transport: transport}}
	db := newStore(cfg.Payments)

	// Kubernetes kills the pod at activeDeadlineSeconds; the job holds
	// itself to the same deadline, so that it ends on its own terms.
	ctx, cancel := context.WithTimeout(ctx, cfg.Deadline)
	defer cancel()

	payments := db.FetchPaymentsToRecon()
	fmt.Fprintf(out, "reconciling %d payments: %d requests at a time, at most %v a second, deadline %v, margin %v\n",
		len(payments), cfg.Workers, float64(cfg.Rate), cfg.Deadline, cfg.Margin)

	var inFlight, maxInFlight atomic.Int64
	start := time.Now()
	rep, err := batch.Each(ctx, payments, func(ctx context.Context, i int, p Payment) error {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := maxInFlight.Load(); n > m && !maxInFlight.CompareAndSwap(m, n); m = maxInFlight.Load() {
		}
		status, err := partner.CheckPaymentStatus(ctx, p.ID)
		if err != nil {
			return fmt.Errorf("%s: %w", p.ID, err) // the payment stays PENDING: an API error says nothing about it
		}
		if status != "PENDING" {
			db.mark(p.ID, status)
		}
		return nil
	},
		batch.Workers(cfg.Workers),
		batch.Rate(cfg.Rate, cfg.Burst),
		batch.ItemTimeout(cfg.ItemTimeout),
		batch.Retry(cfg.Attempts, cfg.Backoff, retryable),
		batch.Margin(cfg.Margin),
	)
	sum := summary{Report: rep, Payments: payments, Store: db, Elapsed: time.Since(start), MaxInFlight: maxInFlight.Load()}

	fmt.Fprintf(out, "done in %v, at most %d requests in flight: %d checked, %d failed, %d skipped\n",
		sum.Elapsed.Round(time.Millisecond), sum.MaxInFlight, rep.Succeeded, rep.Failed, rep.Skipped)
	fmt.Fprintf(out, "recorded %d SUCCESS and %d FAILED; %d payments stay pending for the next run\n",
		db.count("SUCCESS"), db.count("FAILED"), db.count("PENDING"))
	retried := 0
	for _, o := range rep.Items {
		if o.Status == batch.Succeeded && o.Attempts > 1 {
			retried++
		}
	}
	fmt.Fprintf(out, "%d payments needed more than one attempt\n", retried)
	if err != nil {
		// One line per failed payment, and first the reason for stopping
		// early, if the job did.
		fmt.Fprintln(out, "errors:")
		for line := range strings.Lines(err.Error()) {
			fmt.Fprint(out, "  ", line)
		}
		fmt.Fprintln(out)
	}
	return sum, err
}
