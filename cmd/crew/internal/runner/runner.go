// Package runner runs one command per input line, a bounded number at once:
// the engine of crew run.
//
// Each job is the command template with "{}" replaced by its line (the line
// is appended as a last argument when no argument holds "{}"). Commands run
// directly, without a shell, each in a process group of its own, on a
// [pool.Pool] of as many goroutines as there are job slots, so that a job
// costs little more than its fork and exec.
//
// A job's output is printed whole once it ends (Grouped), or line by line
// as it comes (LineBuffered), optionally in input order (KeepOrder) and
// with each line prefixed by the job's input (Tag), so that jobs running
// at once never cut each other's lines. A failed job runs again up to
// Retries times, after a backoff; a Halt policy ends the run early after
// failures, as GNU parallel's --halt does.
package runner

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crewgo/crew/backoff"
	"github.com/crewgo/crew/cmd/crew/internal/joblog"
	"github.com/crewgo/crew/cmd/crew/internal/proc"
	"github.com/crewgo/crew/pool"
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
	// RetryDelay, if set, says how long to wait before each retry, given
	// the number of attempts that have failed; nil retries at once. The
	// job keeps its slot while it waits.
	RetryDelay backoff.Policy
	// Halt ends the run early after failures.
	Halt Halt
	// Skip, if set, reports the jobs not to run, by Seq (input line number,
	// from 1): those that a resumed job log records as done.
	Skip func(seq int64) bool
	// Log, if set, records every finished job.
	Log *joblog.Writer
	// Stdout and Stderr receive the jobs' output. Stderr also receives one
	// line per failed job. Nil means /dev/null.
	Stdout, Stderr *os.File
	// Output says how the jobs' output is printed: Grouped (the zero
	// value) or LineBuffered.
	Output Output
	// KeepOrder prints the jobs' output in input order rather than as
	// jobs end. Jobs still run at once; at most about a thousand may end
	// ahead of a slow one, their output held in memory.
	KeepOrder bool
	// Tag starts each line of a job's output with its input line and a
	// tab.
	Tag bool
	// Progress, if set, is told about every line read and every job
	// finished.
	Progress Progress
	// Guard, if set, ends the running jobs' process groups if this process
	// ends before them.
	Guard *proc.Guard
}

// Progress follows a run: Add for every job read from the input, Done for
// every job finished, Skip for every job that Skip left out, and InputDone
// once no more job will be read. Calls may be concurrent.
type Progress interface {
	Add(n int)
	Done(n int)
	Skip(n int)
	InputDone()
}

// Summary counts what a run did.
type Summary struct {
	Succeeded  int64         // jobs that exited 0
	Failed     int64         // jobs that failed, after their retries
	Skipped    int64         // jobs that Skip left out
	NotStarted int64         // jobs read but not started because the run stopped
	Stopped    bool          // Stop or Kill was called
	Halted     bool          // the Halt policy stopped the run
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
	out  *printer

	stop        chan struct{} // closed when no job or retry may start any more
	stopOnce    sync.Once
	stopped     atomic.Bool // stop is closed, read without a channel operation
	interrupted atomic.Bool // Stop or Kill was called
	halted      atomic.Bool // the Halt policy stopped the run

	mu      sync.Mutex
	running map[*proc.Process]struct{}
	killed  bool

	total                                  atomic.Int64 // jobs to run, once known (Halt.Percent)
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
	r := &Runner{cfg: cfg, out: newPrinter(cfg), stop: make(chan struct{}), running: make(map[*proc.Process]struct{})}
	if !strings.Contains(cfg.Command[0], Placeholder) {
		path, err := proc.LookPath(cfg.Command[0])
		if err != nil {
			return nil, err
		}
		r.path = path
	}
	if !slices.ContainsFunc(cfg.Command, func(a string) bool { return strings.Contains(a, Placeholder) }) {
		r.cfg.Command = append(cfg.Command[:len(cfg.Command):len(cfg.Command)], Placeholder)
	}
	return r, nil
}

// Stop stops starting jobs and retries; those running finish. It returns
// at once and may be called from any goroutine, more than once.
func (r *Runner) Stop() {
	r.interrupted.Store(true)
	r.halt()
}

// halt stops starting jobs and retries.
func (r *Runner) halt() {
	r.stopOnce.Do(func() {
		r.stopped.Store(true)
		close(r.stop)
	})
}

// Kill stops starting jobs and stops those running: SIGTERM to each job's
// process group, SIGKILL after KillAfter. It returns at once.
func (r *Runner) Kill() {
	r.Stop()
	r.killRunning()
}

// killRunning stops the running jobs, and any that starts from now on.
func (r *Runner) killRunning() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.killed = true
	for p := range r.running {
		p.Stop(r.cfg.KillAfter)
	}
}

// job is one input line to run.
type job struct {
	seq  int64 // input line number, from 1
	line string
	out  *jobOutput
}

// Run runs one job per line of input and returns when every started job
// has finished: at the end of the input, or after Stop, Kill or a halt.
// Lines end with "\n" (a "\r" before it is dropped); a last line without a
// newline is a job too.
func (r *Runner) Run(input io.Reader) Summary {
	start := time.Now()
	var inputErr error
	lines := readLines(input, &inputErr)
	if r.cfg.Halt.Percent {
		// A share of the jobs needs their number: read them all first, as
		// GNU parallel does.
		lines = r.readAll(lines)
	}
	p := pool.New(r.cfg.Jobs, pool.Queue(r.readAhead()))
	r.submit(p, lines)
	if pr := r.cfg.Progress; pr != nil {
		pr.InputDone()
	}
	p.Close()
	_ = p.Wait() // jobs report through the counters, never an error

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

// readAhead is how many jobs may wait for a slot: enough to give a
// progress bar the whole input's size (and so an ETA) early.
func (r *Runner) readAhead() int {
	if r.cfg.Progress != nil {
		return 1 << 16
	}
	return r.cfg.Jobs + 256
}

// submit hands a job per line to p until the lines end or the run stops.
func (r *Runner) submit(p *pool.Pool, lines iter.Seq2[int64, string]) {
	// Stopping ends a wait for room in the pool, or for a job's turn to
	// print.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-r.stop:
			cancel()
		case <-ctx.Done():
		}
	}()

	var ord int64
	for seq, line := range lines {
		if pr := r.cfg.Progress; pr != nil {
			pr.Add(1)
		}
		if r.cfg.Skip != nil && r.cfg.Skip(seq) {
			r.skipped.Add(1)
			if pr := r.cfg.Progress; pr != nil {
				pr.Skip(1)
			}
			continue
		}
		j := &job{seq: seq, line: line, out: &jobOutput{ord: ord}}
		ord++
		if r.cfg.Tag {
			j.out.prefix = []byte(line + "\t")
		}
		if r.stopped.Load() || r.out.reserve(ctx) != nil {
			r.notStarted.Add(1)
			return
		}
		if err := p.Go(ctx, func(context.Context) error { r.runJob(j); return nil }); err != nil {
			r.notStarted.Add(1)
			r.out.end(j.out)
			return
		}
	}
}

// readAll reads every line of lines and counts the jobs to run among
// them.
func (r *Runner) readAll(lines iter.Seq2[int64, string]) iter.Seq2[int64, string] {
	type entry struct {
		seq  int64
		line string
	}
	var all []entry
	var total int64
	for seq, line := range lines {
		all = append(all, entry{seq, line})
		if r.cfg.Skip == nil || !r.cfg.Skip(seq) {
			total++
		}
	}
	r.total.Store(total)
	return func(yield func(int64, string) bool) {
		for _, e := range all {
			if !yield(e.seq, e.line) {
				return
			}
		}
	}
}

// readLines yields the lines of input with their numbers, from 1, until
// the input ends; a read error ends them too, and is left in *errp.
func readLines(input io.Reader, errp *error) iter.Seq2[int64, string] {
	return func(yield func(int64, string) bool) {
		br := bufio.NewReaderSize(input, 64<<10)
		for seq := int64(1); ; seq++ {
			line, err := br.ReadString('\n')
			if line == "" && err != nil {
				if err != io.EOF {
					*errp = err
				}
				return
			}
			line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
			if !yield(seq, line) || err != nil {
				return
			}
		}
	}
}

// expand returns the job's command line.
func (r *Runner) expand(line string) []string {
	argv := make([]string, len(r.cfg.Command))
	for i, a := range r.cfg.Command {
		argv[i] = strings.ReplaceAll(a, Placeholder, line)
	}
	return argv
}

// runJob runs one job, with its retries, prints its output and records
// it.
func (r *Runner) runJob(j *job) {
	if r.stopped.Load() {
		// Queued before the stop: it never starts.
		r.notStarted.Add(1)
		r.out.end(j.out)
		return
	}
	argv := r.expand(j.line)
	start := time.Now()
	var exit proc.Exit
	c, failure := r.out.newCapture(j.out, r.cfg.Output)
	if failure != nil {
		exit = proc.Exit{Code: 127}
		r.out.end(j.out)
	} else {
		start, exit, failure = r.attempts(argv, c.files)
		if err := c.done(); err != nil && failure == nil {
			failure = fmt.Errorf("print the output: %w", err)
		}
	}
	r.record(j, joblog.Entry{
		Seq:     j.seq,
		Start:   start,
		Runtime: time.Since(start),
		Exitval: exit.Code,
		Signal:  int(exit.Signal),
		Command: Quote(argv),
	}, failure)
}

// attempts runs the command until it succeeds, has run 1+Retries times,
// or the run stops, and returns how the last attempt began and ended.
func (r *Runner) attempts(argv []string, files [2]*os.File) (time.Time, proc.Exit, error) {
	for attempt := 1; ; attempt++ {
		start := time.Now()
		exit, failure := r.attempt(argv, files)
		if failure == nil || attempt > r.cfg.Retries || !r.waitRetry(attempt) {
			return start, exit, failure
		}
	}
}

// waitRetry waits before the retry that follows attempt failed attempts,
// and reports whether the retry may start: not once the run has stopped.
func (r *Runner) waitRetry(failed int) bool {
	var d time.Duration
	if r.cfg.RetryDelay != nil {
		d = r.cfg.RetryDelay(failed)
	}
	if d <= 0 {
		return !r.stopped.Load()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return !r.stopped.Load()
	case <-r.stop:
		return false
	}
}

// record counts a finished job, writes its job log entry, reports its
// failure, and halts the run if the failures meet the Halt policy.
func (r *Runner) record(j *job, entry joblog.Entry, failure error) {
	if r.cfg.Log != nil {
		if err := r.cfg.Log.Write(entry); err != nil {
			r.logErr.CompareAndSwap(nil, &err)
		}
	}
	if failure == nil {
		r.succeeded.Add(1)
	} else {
		failed := r.failed.Add(1)
		r.out.message(fmt.Sprintf("crew run: job %d failed (%v): %s\n", j.seq, failure, entry.Command))
		if r.cfg.Halt.reached(failed, r.total.Load()) && !r.stopped.Load() {
			r.halted.Store(true)
			r.halt()
			if r.cfg.Halt.Now {
				r.killRunning()
			}
		}
	}
	if p := r.cfg.Progress; p != nil {
		p.Done(1)
	}
}

// attempt runs the command once and returns how it ended, and why it
// failed if it did. A command that cannot be started exits 127, as in a
// shell.
func (r *Runner) attempt(argv []string, files [2]*os.File) (proc.Exit, error) {
	path := r.path
	if path == "" {
		var err error
		if path, err = proc.LookPath(argv[0]); err != nil {
			return proc.Exit{Code: 127}, err
		}
	}
	p, err := proc.Start(proc.Spec{Path: path, Args: argv, Stdout: files[stdoutIdx], Stderr: files[stderrIdx], Guard: r.cfg.Guard})
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
