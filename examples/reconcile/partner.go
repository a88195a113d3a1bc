package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/http"
	"sync"
	"time"
)

// partnerConfig shapes the fake partner API. Its behaviour for a payment is
// fixed by a hash of the payment's ID, so that runs, and tests, repeat.
type partnerConfig struct {
	MinLatency, MaxLatency time.Duration // per request, spread by the hash
	// One payment in Unavailable answers 503 to its first request; one in
	// Throttled answers 429 to its first two; one in Stuck hangs on its
	// first request until the client gives up; one in Unknown answers 404
	// for ever. Zero turns a behaviour off.
	Unavailable, Throttled, Stuck, Unknown int
}

// fakePartner is a local stand-in for the bank partner's payment status API:
// GET /payments/{id}/status answers {"status": "SUCCESS"|"FAILED"|"PENDING"}.
type fakePartner struct {
	cfg      partnerConfig
	mu       sync.Mutex
	attempts map[string]int
}

// startFakePartner serves the fake API on a free port of 127.0.0.1 and
// returns its base URL and a function that shuts it down.
func startFakePartner(cfg partnerConfig) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	p := &fakePartner{cfg: cfg, attempts: make(map[string]int)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /payments/{id}/status", p.status)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln) // returns http.ErrServerClosed on Close
	}()
	return "http://" + ln.Addr().String(), func() {
		srv.Close()
		<-done
	}, nil
}

// hash spreads payments over behaviours and latencies.
func hash(id string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(id))
	return h.Sum32()
}

// every reports whether the payment falls in one out of n (never for n 0).
// salt keeps the behaviours from all picking the same payments.
func every(h uint32, n int, salt uint32) bool {
	return n > 0 && (h^(salt*2654435761))%uint32(n) == 0
}

func (p *fakePartner) status(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	h := hash(id)
	p.mu.Lock()
	p.attempts[id]++
	attempt := p.attempts[id]
	p.mu.Unlock()

	c := p.cfg
	latency := c.MinLatency
	if spread := c.MaxLatency - c.MinLatency; spread > 0 {
		latency += time.Duration(h%uint32(spread/time.Microsecond+1)) * time.Microsecond
	}
	if every(h, c.Stuck, 1) && attempt == 1 {
		latency = time.Hour // the client's timeout ends it
	}
	select {
	case <-time.After(latency):
	case <-r.Context().Done():
		return
	}
	switch {
	case every(h, c.Unknown, 2):
		http.Error(w, "unknown payment", http.StatusNotFound)
		return
	case every(h, c.Unavailable, 3) && attempt == 1:
		http.Error(w, "try again later", http.StatusServiceUnavailable)
		return
	case every(h, c.Throttled, 4) && attempt <= 2:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "slow down", http.StatusTooManyRequests)
		return
	}
	status := "SUCCESS"
	switch h % 10 {
	case 0:
		status = "FAILED"
	case 1:
		status = "PENDING"
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{"status": status})
}

// errTransient marks the partner's answers that are worth another try.
var errTransient = errors.New("transient")

// partnerClient is the job's side of the partner's API.
type partnerClient struct {
	base string
	http *http.Client
}

// CheckPaymentStatus asks the partner for a payment's status. A 429 or 503
// wraps errTransient; any other answer but 200 is final.
func (c *partnerClient) CheckPaymentStatus(ctx context.Context, id string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/payments/"+id+"/status", nil)
	if err != nil {
		return "", err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		return "", fmt.Errorf("partner: %s: %w", resp.Status, errTransient)
	default:
		return "", fmt.Errorf("partner: %s", resp.Status)
	}
	var body struct{ Status string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", fmt.Errorf("partner: bad answer: %w", err)
	}
	return body.Status, nil
}
