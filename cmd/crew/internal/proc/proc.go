// Package proc starts child processes in process groups of their own and
// stops them in two steps: SIGTERM to the whole group, then SIGKILL to the
// whole group once a grace period has passed.
//
// A child in its own process group does not receive the SIGINT that a
// terminal's Ctrl-C sends to the foreground group, so the crew command alone
// decides when and how its children stop. Signalling the group rather than
// the child reaches what the child started too, such as the commands of a
// shell script.
package proc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Spec says what to run and with which files.
type Spec struct {
	// Path is the executable to run, as LookPath returns it.
	Path string
	// Args is the command line, Args[0] included.
	Args []string
	// Env is the environment; nil means the parent's.
	Env []string
	// Input, if not nil, is written to the child's standard input, which is
	// then closed. If nil, the child's standard input is Stdin.
	Input []byte
	// Stdin is the child's standard input when Input is nil; nil means
	// /dev/null.
	Stdin *os.File
	// Stdout and Stderr are the child's output files; nil means /dev/null.
	Stdout, Stderr *os.File
	// Guard, if set, ends the child's process group if this process ends
	// while the child runs.
	Guard *Guard
}

// LookPath resolves a command name the way a shell does: a name without a
// slash is looked for in PATH. Its error says plainly that the command
// cannot be run.
func LookPath(name string) (string, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		switch {
		case errors.Is(err, exec.ErrNotFound), errors.Is(err, fs.ErrNotExist):
			return "", fmt.Errorf("command %q not found", name)
		case errors.Is(err, fs.ErrPermission):
			return "", fmt.Errorf("command %q is not executable", name)
		case errors.Is(err, exec.ErrDot):
			return "", fmt.Errorf("command %q resolves to the current directory; write ./%s to run it", name, name)
		}
		return "", fmt.Errorf("command %q cannot be run: %w", name, errors.Unwrap(err))
	}
	return path, nil
}

var devNull = sync.OnceValues(func() (*os.File, error) {
	return os.OpenFile(os.DevNull, os.O_RDWR, 0)
})

// Process is a started child and its process group, whose ID is the
// child's PID.
type Process struct {
	proc  *os.Process
	guard *Guard

	input     *os.File   // write end of the stdin pipe, if Spec.Input was set
	inputDone chan error // the writer's result

	mu       sync.Mutex
	exited   bool        // the child has been reaped
	stopping bool        // Stop has been called
	kill     *time.Timer // pending SIGKILL of the group
}

// Start starts the child described by s in a new process group.
func Start(s Spec) (*Process, error) {
	null, err := devNull()
	if err != nil {
		return nil, err
	}
	or := func(f *os.File) *os.File {
		if f == nil {
			return null
		}
		return f
	}
	stdin := or(s.Stdin)
	var pr, pw *os.File
	if s.Input != nil {
		if pr, pw, err = os.Pipe(); err != nil {
			return nil, err
		}
		stdin = pr
	}
	attr := &os.ProcAttr{
		Env:   s.Env,
		Files: []*os.File{stdin, or(s.Stdout), or(s.Stderr)},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	}
	if attr.Env == nil {
		attr.Env = os.Environ()
	}
	start := os.StartProcess
	if s.Guard != nil {
		start = startGuarded
	}
	proc, err := start(s.Path, s.Args, attr)
	if pr != nil {
		pr.Close() // the child has its own copy
	}
	if err != nil {
		if pw != nil {
			pw.Close()
		}
		return nil, err
	}
	p := &Process{proc: proc, guard: s.Guard}
	if s.Guard != nil {
		if err := s.Guard.add(proc.Pid); err != nil {
			// An unguarded child could outlive us: it does not run.
			_ = syscall.Kill(-proc.Pid, syscall.SIGKILL)
			_, _ = proc.Wait()
			if pw != nil {
				pw.Close()
			}
			return nil, err
		}
	}
	if pw != nil {
		p.input = pw
		p.inputDone = make(chan error, 1)
		go func() {
			_, err := pw.Write(s.Input)
			if cerr := pw.Close(); err == nil && !errors.Is(cerr, os.ErrClosed) {
				err = cerr
			}
			p.inputDone <- err
		}()
	}
	return p, nil
}

// PID returns the child's process ID, which is also its process group ID.
func (p *Process) PID() int { return p.proc.Pid }

// Wait waits for the child to exit and returns how it ended. A child that
// does not read all of its Input is not an error. Wait must be called
// exactly once.
func (p *Process) Wait() (Exit, error) {
	state, err := p.proc.Wait()
	if p.guard != nil {
		p.guard.remove(p.proc.Pid)
	}
	p.mu.Lock()
	p.exited = true
	if p.kill != nil && !p.groupAlive() {
		// Nothing is left to kill; do not signal a group ID that the
		// system may hand out again.
		p.kill.Stop()
	}
	p.mu.Unlock()
	if p.input != nil {
		// A child that exits without reading its input leaves the writer
		// blocked on a full pipe, or failing with EPIPE: closing our end
		// ends it either way.
		p.input.Close()
		<-p.inputDone
	}
	if err != nil {
		return Exit{}, err
	}
	ws := state.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return Exit{Code: -1, Signal: ws.Signal()}, nil
	}
	return Exit{Code: ws.ExitStatus()}, nil
}

// groupAlive reports whether any process is left in the child's group.
func (p *Process) groupAlive() bool {
	return syscall.Kill(-p.proc.Pid, 0) == nil
}

// Stop sends SIGTERM to the child's process group and, if the group has not
// ended within grace, SIGKILL. Only the first call has an effect. It returns
// at once.
func (p *Process) Stop(grace time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopping {
		return
	}
	p.stopping = true
	if p.exited && !p.groupAlive() {
		return
	}
	_ = syscall.Kill(-p.proc.Pid, syscall.SIGTERM)
	p.kill = time.AfterFunc(grace, p.Kill)
}

// Kill sends SIGKILL to the child's process group at once.
func (p *Process) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited && !p.groupAlive() {
		return
	}
	_ = syscall.Kill(-p.proc.Pid, syscall.SIGKILL)
}

// Exit is how a child ended.
type Exit struct {
	// Code is the exit status, or -1 if a signal ended the child.
	Code int
	// Signal is the signal that ended the child, or 0.
	Signal syscall.Signal
}

// Success reports whether the child exited with status 0.
func (e Exit) Success() bool { return e.Code == 0 && e.Signal == 0 }

// Err returns nil for a successful exit and otherwise an error that says
// how the child ended, such as "exit status 3" or "killed by signal
// terminated".
func (e Exit) Err() error {
	switch {
	case e.Signal != 0:
		return fmt.Errorf("killed by signal %v", e.Signal)
	case e.Code != 0:
		return fmt.Errorf("exit status %d", e.Code)
	}
	return nil
}
