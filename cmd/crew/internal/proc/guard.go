package proc

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// A Guard ends the process groups of this process's running children when
// this process ends, however it ends: a crash, an os.Exit, or a SIGKILL
// that leaves no chance to clean up. Without it, such children would run on
// as orphans, their work given to another worker meanwhile.
//
// The guard is a second process, the guardian, started with the first
// child that it guards (the program re-executed through a hidden entry
// point that calls [ServeGuard]). Start tells it the process group of
// every child it starts with Spec.Guard, and Wait tells it when the child
// has exited. The guardian holds the read end of a pipe whose only write
// end is this process's: when this process ends, for any reason, the
// kernel closes that end, the guardian reads end-of-file and ends every
// group it was told of.
//
// A pipe rather than the parent-death signal of Linux (PR_SET_PDEATHSIG)
// alone: that signal reaches only the direct child, whereas a command's
// grandchildren live in its process group, and the pipe works on every Unix
// system. A child is told to the guardian right after it starts, with one
// write; on Linux, a guarded child also gets SIGTERM as its parent-death
// signal, so that a death of this process in the microseconds between the
// two still ends the child (elsewhere, that child runs on).
//
// Processes that a command leaves running in the background after it exits
// are not guarded: once the command has exited, its group is forgotten, so
// that the guardian never signals a group ID that the system has handed out
// again.
type Guard struct {
	path string
	args []string

	mu       sync.Mutex
	started  bool
	pipe     *os.File // write end; the guardian reads the other
	guardian *os.Process
	err      error // why the guardian cannot guard: it failed to start, or is gone
}

// GuardGrace is how long the groups that the guardian ends have between
// SIGTERM and SIGKILL.
const GuardGrace = time.Second

// NewGuard returns a guard whose guardian is the program at path, with args
// (args[0] included), which must call [ServeGuard] with its standard input.
// The guardian starts with the first child that the guard guards, so that a
// run that starts no child costs no process. It runs in a process group of
// its own, so that a terminal's Ctrl-C does not reach it, and its output
// goes to /dev/null.
func NewGuard(path string, args []string) *Guard {
	return &Guard{path: path, args: args}
}

// start starts the guardian. g.mu is held.
func (g *Guard) start() error {
	null, err := devNull()
	if err != nil {
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	p, err := os.StartProcess(g.path, g.args, &os.ProcAttr{
		Files: []*os.File{r, null, null},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		w.Close()
		return fmt.Errorf("start the guardian of the children: %w", err)
	}
	g.pipe, g.guardian = w, p
	return nil
}

// add tells the guardian about the group pgid, starting the guardian first
// if need be. An error means that nothing guards the group.
func (g *Guard) add(pgid int) error { return g.send('+', pgid) }

// remove tells the guardian that the group pgid is no longer to be ended.
func (g *Guard) remove(pgid int) { _ = g.send('-', pgid) }

func (g *Guard) send(op byte, pgid int) error {
	// One short write: atomic on a pipe, and never split between lines.
	line := strconv.AppendInt([]byte{op}, int64(pgid), 10)
	line = append(line, '\n')
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.started {
		g.started = true
		g.err = g.start()
	}
	if g.err != nil {
		return g.err
	}
	if _, err := g.pipe.Write(line); err != nil {
		g.err = fmt.Errorf("the guardian of the children is gone: %w", err)
		return g.err
	}
	return nil
}

// Close tells the guardian, if it started, to end the groups it still knows
// of, as if this process had ended, and waits for it to exit: at most
// GuardGrace and a little more. Starting a child with the guard after Close
// fails.
func (g *Guard) Close() error {
	g.mu.Lock()
	g.started = true
	if g.err == nil {
		g.err = os.ErrClosed
	}
	pipe, guardian := g.pipe, g.guardian
	g.pipe, g.guardian = nil, nil
	g.mu.Unlock()
	if guardian == nil {
		return nil
	}
	pipe.Close()
	_, err := guardian.Wait()
	return err
}

// ServeGuard is the body of the guardian: it reads from r the groups that
// its owner starts ("+PGID") and forgets ("-PGID"), one per line, until r
// ends; then it sends SIGTERM to every group it still knows of and, to those
// still alive after GuardGrace, SIGKILL. It ignores SIGINT, SIGTERM and
// SIGHUP: its life is its owner's.
func ServeGuard(r io.Reader) {
	signal.Ignore(os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	groups := map[int]bool{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if len(line) < 2 {
			continue
		}
		pgid, err := strconv.Atoi(line[1:])
		if err != nil || pgid <= 1 {
			continue // never kill(-1) or kill(0)
		}
		switch line[0] {
		case '+':
			groups[pgid] = true
		case '-':
			delete(groups, pgid)
		}
	}
	endGroups(groups)
}

// endGroups sends SIGTERM to every group, then SIGKILL to those still
// alive after GuardGrace.
func endGroups(groups map[int]bool) {
	for pgid := range groups {
		if syscall.Kill(-pgid, syscall.SIGTERM) != nil {
			delete(groups, pgid) // gone already
		}
	}
	deadline := time.Now().Add(GuardGrace)
	for len(groups) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		for pgid := range groups {
			if syscall.Kill(-pgid, 0) != nil {
				delete(groups, pgid)
			}
		}
	}
	for pgid := range groups {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
}
