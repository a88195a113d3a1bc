// Package runner runs one command per input line, a bounded number at once:
// the engine of crew run.
//
// Each job is the command template with "{}" replaced by its line (the line
// is appended as a last argument when no argument holds "{}"). Commands run
// directly, without a shell, each in a process group of its own; their
// output goes straight to the runner's output files, unbuffered. A fixed set
// of goroutines, one per job slot, starts the jobs, so that a job costs
// little more than its fork and exec.
package runner

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crewgo/crew/cmd/crew/internal/joblog"
	"github.com/crewgo/crew/cmd/crew/internal/proc"
)

// Placeholder is the argument text that a job's input line replaces.
const Placeholder = "{}"

// Config says how to run the jobs.
type Config struct {
	// Command is the command template: its name and arguments.
	Command []string
	// Jobs is how many jobs run at once; it must be at least 1.
	Jobs int
	// Timeout, if positive, bounds one attempt of a job: the job's process
	// group gets SIGTERM, then SIGKILL after KillAfter.
	Timeout time.Duration
	// KillAfter is how long a job has to exit after SIGTERM before it gets
	// SIGKILL.
	KillAfter time.Duration
	// Retries is how many more times a failed job is run.
	Retries int
	// HaltOnError stops starting jobs after the first job that fails (after
	// its retries).
	HaltOnError bool
	// Skip, if set, reports the jobs not to run, by Seq (input line number,
	// from 1): those that a resumed job log records as done.
	Skip func(seq int64) bool
	// Log, if set, records every finished job.
	Log *joblog.Writer
	// Stdout and Stderr receive the jobs' output. Stderr also receives one
	// line per failed job. Nil means /dev/null.
	Stdout, Stderr *os.File
	// Progress, if set, is told about every line read and every job
	// finished.
	Progress Progress
	// Guard, if set, ends the running jobs' process groups if this process
	// ends before them.
	Guard *proc.Guard
}

// Progress follows a run: Add for every job read from the input, Done for
// every job finished or skipped, and InputDone once no more job will be
// read. Calls may be concurrent.
type Progress interface {
	Add(n int)
	Done(n int)
	InputDone()
}

// Summary counts what a run did.
type Summary struct {
	Succeeded  int64         // jobs that exited 0
	Failed     int64         // jobs that failed, after their retries
	Skipped    int64         // jobs the job log recorded as done
	NotStarted int64         // jobs read but not started because the run stopped
	Stopped    bool          // Stop or Kill was called
	Halted     bool          // HaltOnError stopped the run
	InputErr   error         // reading the input failed
	LogErr     error         // writing the job log failed
	Elapsed    time.Duration // from Run's call to its return
}

// OK reports whether every job read succeeded and the whole input was read.
func (s Summary) OK() bool {
	return s.Failed == 0 && !s.Stopped && !s.Halted && s.InputErr == nil && s.LogErr == nil
}

// Runner runs jobs. Create one with New; call Run once.
type Runner struct {
	cfg  Config
	path string // the resolved command, unless its name holds the placeholder

	stop        chan struct{} // closed by the first Stop
	stopOnce    sync.Once
	stopped     atomic.Bool // no job may start any more
	interrupted atomic.Bool // Stop or Kill was called
	halted      atomic.Bool // a failure stopped the run (HaltOnError)

	mu      sync.Mutex
	running map[*proc.Process]struct{}
	killed  bool

	succeeded, failed, skipped, notStarted atomic.Int64
	logErr                                 atomic.Pointer[error]
}

// New checks cfg and resolves the command. It fails if the template is
// empty, Jobs is less than 1, or the command cannot be found.
func New(cfg Config) (*Runner, error) {
	if len(cfg.Command) == 0 {
		return nil, errors.New("missing command")
	}
	if cfg.Jobs < 1 {
		return nil, fmt.Errorf("jobs must be at least 1, not %d", cfg.Jobs)
	}
	r := &Runner{cfg: cfg, stop: make(chan struct{}), running: make(map[*proc.Process]struct{})}
	if !strings.Contains(cfg.Command[0], Placeholder) {
		path, err := proc.LookPath(cfg.Command[0])
		if err != nil {
			return nil, err
		}
		r.path = path
	}
	if !hasPlaceholder(cfg.Command) {
		r.cfg.Command = append(cfg.Command[:len(cfg.Command):len(cfg.Command)], Placeholder)
	}
	return r, nil
}

func hasPlaceholder(args []string) bool {
	for _, a := range args {
		if strings.Contains(a, Placeholder) {
			return true
		}
	}
	return false
}

// Stop stops starting jobs; those running finish. It returns at once and may
// be called from any goroutine, more than once.
func (r *Runner) Stop() {
	r.interrupted.Store(true)
	r.halt()
}

// halt stops starting jobs.
func (r *Runner) halt() {
	r.stopped.Store(true)
	r.stopOnce.Do(func() { close(r.stop) })
}

// Kill stops starting jobs and stops those running: SIGTERM to each job's
// process group, SIGKILL after KillAfter. It returns at once.
func (r *Runner) Kill() {
	r.Stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.killed = true
	for p := range r.running {
		p.Stop(r.cfg.KillAfter)
	}
}

type job struct {
	seq  int64
	line string
}

// Run runs one job per line of input and returns when every started job
// has finished: at the end of the input, or after Stop, Kill or a halt.
// Lines end with "\n" (a "\r" before it is dropped); a last line without a
// newline is a job too.
func (r *Runner) Run(input io.Reader) Summary {
	start := time.Now()
	// Reading ahead gives a progress bar a truer total, at little cost.
	jobs := make(chan job, r.cfg.Jobs+256)
	var wg sync.WaitGroup
	for range r.cfg.Jobs {
		wg.Go(func() {
			for j := range jobs {
				if r.stopped.Load() {
					r.notStarted.Add(1)
					continue
				}
				r.runJob(j)
			}
		})
	}
	inputErr := r.read(input, jobs)
	if p := r.cfg.Progress; p != nil {
		p.InputDone()
	}
	close(jobs)
	wg.Wait()

	s := Summary{
		Succeeded:  r.succeeded.Load(),
		Failed:     r.failed.Load(),
		Skipped:    r.skipped.Load(),
		NotStarted: r.notStarted.Load(),
		Stopped:    r.interrupted.Load(),
		Halted:     r.halted.Load(),
		InputErr:   inputErr,
		Elapsed:    time.Since(start),
	}
	if p := r.logErr.Load(); p != nil {
		s.LogErr = *p
	}
	return s
}

// read sends the input's lines to jobs until the input ends or the runner
// stops.
func (r *Runner) read(input io.Reader, jobs chan<- job) error {
	br := bufio.NewReaderSize(input, 64<<10)
	var seq int64
	for !r.stopped.Load() {
		line, err := br.ReadString('\n')
		if line == "" && err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		seq++
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if p := r.cfg.Progress; p != nil {
			p.Add(1)
		}
		if r.cfg.Skip != nil && r.cfg.Skip(seq) {
			r.skipped.Add(1)
			if p := r.cfg.Progress; p != nil {
				p.Done(1)
			}
			continue
		}
		select {
		case jobs <- job{seq: seq, line: line}:
		case <-r.stop:
			r.notStarted.Add(1)
			return nil
		}
		if err == io.EOF {
			return nil
		}
	}
	return nil
}

// expand returns the job's command line.
func (r *Runner) expand(line string) []string {
	argv := make([]string, len(r.cfg.Command))
	for i, a := range r.cfg.Command {
		argv[i] = strings.ReplaceAll(a, Placeholder, line)
	}
	return argv
}

// runJob runs one job, with its retries, and records it.
func (r *Runner) runJob(j job) {
	argv := r.expand(j.line)
	var (
		start   time.Time
		exit    proc.Exit
		failure error
	)
	for attempt := 0; ; attempt++ {
		start = time.Now()
		exit, failure = r.attempt(argv)
		if failure == nil || attempt >= r.cfg.Retries || r.isKilled() {
			break
		}
	}
	entry := joblog.Entry{
		Seq:     j.seq,
		Start:   start,
		Runtime: time.Since(start),
		Exitval: exit.Code,
		Signal:  int(exit.Signal),
		Command: Quote(argv),
	}
	if r.cfg.Log != nil {
		if err := r.cfg.Log.Write(entry); err != nil {
			r.logErr.CompareAndSwap(nil, &err)
		}
	}
	if failure == nil {
		r.succeeded.Add(1)
	} else {
		r.failed.Add(1)
		if r.cfg.Stderr != nil {
			fmt.Fprintf(r.cfg.Stderr, "crew run: job %d failed (%v): %s\n", j.seq, failure, entry.Command)
		}
		if r.cfg.HaltOnError && !r.stopped.Load() {
			r.halted.Store(true)
			r.halt()
		}
	}
	if p := r.cfg.Progress; p != nil {
		p.Done(1)
	}
}

func (r *Runner) isKilled() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.killed
}

// attempt runs the command once and returns how it ended, and why it
// failed if it did. A command that cannot be started exits 127, as in a
// shell.
func (r *Runner) attempt(argv []string) (proc.Exit, error) {
	path := r.path
	if path == "" {
		var err error
		if path, err = proc.LookPath(argv[0]); err != nil {
			return proc.Exit{Code: 127}, err
		}
	}
	p, err := proc.Start(proc.Spec{Path: path, Args: argv, Stdout: r.cfg.Stdout, Stderr: r.cfg.Stderr, Guard: r.cfg.Guard})
	if err != nil {
		return proc.Exit{Code: 127}, err
	}
	r.mu.Lock()
	r.running[p] = struct{}{}
	if r.killed {
		p.Stop(r.cfg.KillAfter)
	}
	r.mu.Unlock()

	var timer *time.Timer
	var timedOut atomic.Bool
	if r.cfg.Timeout > 0 {
		timer = time.AfterFunc(r.cfg.Timeout, func() {
			timedOut.Store(true)
			p.Stop(r.cfg.KillAfter)
		})
	}
	exit, err := p.Wait()
	if timer != nil {
		timer.Stop()
	}
	r.mu.Lock()
	delete(r.running, p)
	r.mu.Unlock()
	switch {
	case err != nil:
		return proc.Exit{Code: -1}, err
	case exit.Success():
		return exit, nil
	case timedOut.Load():
		return exit, fmt.Errorf("timed out after %v: %w", r.cfg.Timeout, exit.Err())
	}
	return exit, exit.Err()
}

// Quote joins argv into one line that a POSIX shell would split back into
// the same arguments: arguments that need it are single-quoted.
func Quote(argv []string) string {
	var b strings.Builder
	for i, a := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=+,@%") == "" {
			b.WriteString(a)
			continue
		}
		b.WriteByte('\'')
		b.WriteString(strings.ReplaceAll(a, "'", `'\''`))
		b.WriteByte('\'')
	}
	return b.String()
}
