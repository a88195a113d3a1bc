package crew

import (
	"fmt"
	"time"
)

// Event is one step in the life of a group or of one of its workers. A
// Group's OnEvent callback receives every event, one at a time and in order,
// from the goroutine that runs [Group.Run].
type Event struct {
	Kind   EventKind
	Worker string // the worker's name; empty for Stopping
	// Err is what the worker returned (Exited, Restarting), or the cause of
	// the stop (Stopping).
	Err error
	// Restarts counts the worker's restarts so far (Started, Exited,
	// Restarting).
	Restarts int
	// Delay is how long the worker waits before it restarts (Restarting).
	Delay time.Duration
}

// EventKind says what an [Event] reports.
type EventKind int

const (
	// Started: the worker's Run method was called (again, after a restart).
	Started EventKind = iota + 1
	// Ready: the worker became ready (see [WaitReady] and [OneShot]).
	Ready
	// Exited: the worker's Run method returned and it will not be restarted.
	Exited
	// Restarting: the worker returned and will be started again after Delay.
	Restarting
	// Stopping: the group began to stop; Err is the cause.
	Stopping
	// Straggler: the worker was still running when the stop timeout expired.
	Straggler
)

// String returns the kind's name, such as "Started".
func (k EventKind) String() string {
	switch k {
	case Started:
		return "Started"
	case Ready:
		return "Ready"
	case Exited:
		return "Exited"
	case Restarting:
		return "Restarting"
	case Stopping:
		return "Stopping"
	case Straggler:
		return "Straggler"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// WorkerStatus is a snapshot of one worker, as [Group.Status] reports it.
type WorkerStatus struct {
	Name     string
	State    WorkerState
	Ready    bool  // whether the worker is ready now
	Restarts int   // restarts so far
	Err      error // the worker's last non-nil return, if any
}

// WorkerState is where a worker is in its life.
type WorkerState int

const (
	// StatePending: not started yet, waiting for Run or for the workers it
	// comes [After] to be ready. A worker still pending when the group stops
	// never starts.
	StatePending WorkerState = iota
	// StateRunning: its Run method is running.
	StateRunning
	// StateRestarting: it returned and waits out its restart delay.
	StateRestarting
	// StateStopping: its context was cancelled and it has not returned yet.
	StateStopping
	// StateDone: it returned and that was not a failure.
	StateDone
	// StateFailed: it returned an error (or panicked) and will not restart.
	StateFailed
	// StateStraggling: it was still running when the stop timeout expired.
	StateStraggling
)

// String returns the state's name in lower case, such as "running".
func (s WorkerState) String() string {
	switch s {
	case StatePending:
		return "pending"
	case StateRunning:
		return "running"
	case StateRestarting:
		return "restarting"
	case StateStopping:
		return "stopping"
	case StateDone:
		return "done"
	case StateFailed:
		return "failed"
	case StateStraggling:
		return "straggling"
	}
	return fmt.Sprintf("WorkerState(%d)", int(s))
}
