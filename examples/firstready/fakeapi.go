package main

import (
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// fakeAPI is a stand-in for EC2's DescribeInstanceStatus: each instance
// reports "initializing" until its ready time, then "ok".
//
//	GET /instances/{id}/status -> {"instanceId": "i-0001", "status": "ok"}
//
// An unknown instance gets 404, and every instance gets 403 after denyAll,
// as EC2 answers a role without ec2:DescribeInstanceStatus.
type fakeAPI struct {
	mu       sync.Mutex
	readyAt  map[string]time.Time
	polled   map[string]chan struct{} // closed at an instance's first poll
	deny     bool
	inFlight atomic.Int64
}

func newFakeAPI() *fakeAPI {
	return &fakeAPI{readyAt: map[string]time.Time{}, polled: map[string]chan struct{}{}}
}

// add makes instance id known to the API, ready at the given time.
func (a *fakeAPI) add(id string, readyAt time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.readyAt[id] = readyAt
	a.polled[id] = make(chan struct{})
}

// setReady makes instance id ready now.
func (a *fakeAPI) setReady(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.readyAt[id] = time.Now()
}

// denyAll makes every request fail with 403 AccessDenied.
func (a *fakeAPI) denyAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.deny = true
}

// polledOnce returns a channel that is closed once instance id has been polled.
func (a *fakeAPI) polledOnce(id string) <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.polled[id]
}

// handler serves the API.
func (a *fakeAPI) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /instances/{id}/status", a.status)
	return mux
}

func (a *fakeAPI) status(w http.ResponseWriter, r *http.Request) {
	a.inFlight.Add(1)
	defer a.inFlight.Add(-1)
	id := r.PathValue("id")
	a.mu.Lock()
	readyAt, known := a.readyAt[id]
	deny := a.deny
	if known {
		select {
		case <-a.polled[id]:
		default:
			close(a.polled[id])
		}
	}
	a.mu.Unlock()
	switch {
	case deny:
		http.Error(w, "AccessDenied: not authorized to perform ec2:DescribeInstanceStatus", http.StatusForbidden)
		return
	case !known:
		http.Error(w, "InvalidInstanceID.NotFound: "+id, http.StatusNotFound)
		return
	}
	status := "initializing"
	if !time.Now().Before(readyAt) {
		status = "ok"
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(instanceStatus{InstanceID: id, Status: status})
}

type instanceStatus struct {
	InstanceID string `json:"instanceId"`
	Status     string `json:"status"`
}
