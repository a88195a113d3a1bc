package proc

import (
	"os"
	"runtime"
	"sync"
	"syscall"
)

// startGuarded starts a child that the guard will watch, with a parent-death
// signal as well: SIGTERM when this process ends. It covers the moment
// between the child's start and the guardian's hearing of it; the guardian
// covers the rest of the group.
//
// Linux sends the parent-death signal when the thread that started the
// child exits, not the process, and Go ends a thread when a goroutine exits
// while locked to it; so these children are started from one goroutine
// that locks its thread and never returns.
func startGuarded(path string, args []string, attr *os.ProcAttr) (*os.Process, error) {
	sys := *attr.Sys
	sys.Pdeathsig = syscall.SIGTERM
	withSignal := *attr
	withSignal.Sys = &sys
	req := startRequest{path: path, args: args, attr: &withSignal, done: make(chan startResult, 1)}
	starter() <- req
	r := <-req.done
	return r.p, r.err
}

type startRequest struct {
	path string
	args []string
	attr *os.ProcAttr
	done chan startResult
}

type startResult struct {
	p   *os.Process
	err error
}

// starter returns the channel of the goroutine that starts guarded
// children, starting it on first use.
var starter = sync.OnceValue(func() chan<- startRequest {
	reqs := make(chan startRequest)
	go runStarter(reqs)
	return reqs
})

// runStarter starts the children asked of it, on a thread that never exits.
func runStarter(reqs <-chan startRequest) {
	runtime.LockOSThread()
	for req := range reqs {
		p, err := os.StartProcess(req.path, req.args, req.attr)
		req.done <- startResult{p, err}
	}
}
