package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/crewgo/crew/backoff"
	"github.com/crewgo/crew/cmd/crew/internal/joblog"
	"github.com/crewgo/crew/cmd/crew/internal/proc"
	"github.com/crewgo/crew/cmd/crew/internal/runner"
)

// runOptions is what the flags of crew run say, beyond runner.Config.
type runOptions struct {
	cfg          runner.Config
	joblog       string
	resume       bool
	resumeFailed bool
	halt         string
	haltOnError  bool
	retryDelay   time.Duration
	lineBuffer   bool
	progress     string
}

func (a *app) runCmd() *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "run [flags] -- CMD [ARGS...]",
		Short: "Run a command once per line of standard input, N at a time",
		Long: `Run starts one job per line of standard input, at most -j at once, like
xargs -P or GNU parallel. A job is CMD with every "{}" in its arguments
replaced by the line; when no argument holds "{}", the line is appended as
the last argument. CMD runs directly, not through a shell (write sh -c '...'
for one). Jobs start in input order. -c is another name for -j.

Output. Each job's standard output, then its standard error, is printed
whole once the job ends, so that the output of jobs running at once is never
mixed; meanwhile it waits in temporary files. --line-buffer prints whole
lines as jobs write them instead: lines of different jobs may alternate, but
are never cut. -k (--keep-order) prints the jobs' output in input order
rather than as they end (a job that runs long holds back the output of at
most about a thousand jobs after it, kept in memory). --tag starts each line
of a job's output with its input line and a tab.

Failures. A failed job runs again up to --retries more times, after a wait
that starts at --retry-delay and doubles up to a minute, and is reported on
standard error when it has failed for good. --halt ends the run early, with
GNU parallel's meanings: soon,fail=N starts no new job (nor retry) once N
jobs have failed and lets the running ones finish; now,fail=N also stops the
running ones at once (SIGTERM to their process groups, SIGKILL after
--kill-after); fail=N% counts N percent of the jobs instead, so crew then
reads all of its input before it starts. --halt-on-error is soon,fail=1.

A progress bar with an ETA is drawn on standard error when it is a terminal;
the ETA appears once crew knows how many jobs there are (it reads up to
65,536 lines ahead). When every job has finished, a summary line is printed
on standard error.

The first SIGINT or SIGTERM (Ctrl-C) stops starting jobs; running jobs
finish, and are recorded. A second one sends SIGTERM to the running jobs'
process groups, and SIGKILL after --kill-after. If crew itself dies, even
by SIGKILL, a small guardian process ends the running jobs' process groups
(SIGTERM, then SIGKILL a second later), on Linux and other Unix systems.

--joblog records every finished job in GNU parallel's tab-separated format:
Seq (the input line number), Host, Starttime, JobRuntime, Send, Receive,
Exitval, Signal and Command. --resume reads that log and skips the jobs it
records as done (Exitval 0, Signal 0), by Seq, then appends to it: give it
the same input in the same order. The jobs that failed run again, and those
never started run (GNU parallel calls this --resume-failed). --resume-failed
runs only the jobs the log records as failed (GNU parallel's --retry-failed,
from the same input). A run holds its job log locked (flock) until it ends:
another run given the same --joblog fails at once, exit status 1, rather
than run the same jobs a second time.

The exit status is 0 only when every job succeeded, 1 when any failed or the
run was stopped or halted early, 2 for a wrong command line.`,
		Example: `  # Compress every log file, 8 at a time.
  ls *.log | crew run -j 8 -- gzip {}

  # Fetch URLs with a time limit and retries, recording a job log; after an
  # interruption, the same command resumes where it stopped.
  crew run -j 4 --timeout 30s --retries 2 --joblog fetch.log --resume \
      -- curl -fsSO {} < urls.txt

  # Count the lines of each file, printed in input order and tagged with
  # the file's name; give up once a tenth of the files cannot be read.
  crew run -k --tag --halt soon,fail=10% -- wc -l < files.txt

  # A shell pipeline per line.
  crew run -- sh -c 'convert "$1" "${1%.png}.jpg"' sh {} < images.txt`,
		Args: cobra.ArbitraryArgs,
	}
	o.addFlags(cmd)
	cmd.RunE = a.runE(func(_ *cobra.Command, args []string) error {
		if err := o.check(args); err != nil {
			return err
		}
		return a.runJobs(&o, args)
	})
	return cmd
}

// addFlags defines the flags of crew run.
func (o *runOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.SetInterspersed(false) // flags end at CMD, so CMD's own flags stay its own
	concurrencyFlags(cmd, &o.cfg.Jobs, runtime.NumCPU(), "jobs", "run at most `N` jobs at once (-c is the same)")
	f.DurationVar(&o.cfg.Timeout, "timeout", 0, "stop a job that runs longer than `D` (SIGTERM, then SIGKILL after --kill-after); 0 for no limit")
	f.DurationVar(&o.cfg.KillAfter, "kill-after", 10*time.Second, "after SIGTERM, give a job `D` before SIGKILL")
	f.IntVar(&o.cfg.Retries, "retries", 0, "run a failed job up to `N` more times")
	f.DurationVar(&o.retryDelay, "retry-delay", time.Second, "wait about `D` before a job's first retry, doubling for each later one")
	f.StringVar(&o.halt, "halt", "never", "end the run early after failures: `WHEN,fail=N` or WHEN,fail=N%, WHEN being soon or now (GNU parallel's --halt)")
	f.BoolVar(&o.haltOnError, "halt-on-error", false, "start no more jobs once one has failed (--halt soon,fail=1)")
	f.BoolVar(&o.lineBuffer, "line-buffer", false, "print whole lines as jobs write them, rather than each job's output whole when it ends")
	f.BoolVarP(&o.cfg.KeepOrder, "keep-order", "k", false, "print the jobs' output in input order")
	f.BoolVar(&o.cfg.Tag, "tag", false, "start each line of a job's output with its input line and a tab")
	f.StringVar(&o.joblog, "joblog", "", "record every finished job in `FILE` (GNU parallel's format)")
	f.BoolVar(&o.resume, "resume", false, "skip the jobs that --joblog records as done, and append to it")
	f.BoolVar(&o.resumeFailed, "resume-failed", false, "run only the jobs that --joblog records as failed, and append to it")
	f.StringVar(&o.progress, "progress", "auto", "draw a progress bar with an ETA on standard error: `auto` (when it is a terminal), always or never")
}

// check rejects flag values that make no sense, and completes the
// runner's configuration from the flags.
func (o *runOptions) check(args []string) error {
	switch {
	case len(args) == 0:
		return usagef("missing CMD: give the command to run after --")
	case o.cfg.Jobs < 1:
		return usagef("-j must be at least 1, not %d", o.cfg.Jobs)
	case o.cfg.Timeout < 0:
		return usagef("--timeout must not be negative, not %v", o.cfg.Timeout)
	case o.cfg.KillAfter < 0:
		return usagef("--kill-after must not be negative, not %v", o.cfg.KillAfter)
	case o.cfg.Retries < 0:
		return usagef("--retries must not be negative, not %d", o.cfg.Retries)
	case o.retryDelay < 0:
		return usagef("--retry-delay must not be negative, not %v", o.retryDelay)
	case o.resume && o.resumeFailed:
		return usagef("give either --resume or --resume-failed, not both")
	case o.resume && o.joblog == "":
		return usagef("--resume needs --joblog FILE, the log to resume from")
	case o.resumeFailed && o.joblog == "":
		return usagef("--resume-failed needs --joblog FILE, the log to resume from")
	case o.haltOnError && o.halt != "never":
		return usagef("give either --halt or --halt-on-error, not both")
	}
	halt, err := runner.ParseHalt(o.halt)
	if err != nil {
		return usageError{err}
	}
	if o.haltOnError {
		halt = runner.Halt{Fail: 1}
	}
	o.cfg.Halt = halt
	o.cfg.RetryDelay = backoff.EqualJitter(backoff.Exponential(o.retryDelay, time.Minute))
	if o.lineBuffer {
		o.cfg.Output = runner.LineBuffered
	}
	if !strings.Contains(args[0], runner.Placeholder) {
		// Checked before the job log is opened, which may truncate it.
		if _, err := proc.LookPath(args[0]); err != nil {
			return usageError{err}
		}
	}
	o.cfg.Command = args
	return nil
}

// runJobs runs the jobs that o describes, with crew's signal handling, and
// prints the summary.
func (a *app) runJobs(o *runOptions, args []string) error {
	showBar, err := a.wantProgress(o.progress)
	if err != nil {
		return err
	}
	cfg := o.cfg
	cfg.Stdout, cfg.Stderr = a.stdout, a.stderr
	cfg.Guard = a.guard
	if o.joblog != "" {
		w, err := openJoblog(o)
		if err != nil {
			return err
		}
		defer w.Close()
		cfg.Log, cfg.Skip = w, skipFor(w, o.resumeFailed)
	}
	var bar *progressBar
	if showBar {
		bar = newProgressBar(a.stderr)
		cfg.Progress = bar
	}
	r, err := runner.New(cfg)
	if err != nil {
		return usageError{err}
	}

	stopSignals := a.onSignals(func(os.Signal) {
		fmt.Fprintln(a.stderr, "crew run: stopping: no new jobs start, running jobs finish; send the signal again to stop them now")
		r.Stop()
	}, func(os.Signal) {
		fmt.Fprintln(a.stderr, "crew run: stopping the running jobs now")
		r.Kill()
	})
	sum := r.Run(a.stdin)
	stopSignals()
	if bar != nil {
		bar.finish()
	}

	fmt.Fprintln(a.stderr, summaryLine(sum, o))
	switch {
	case sum.InputErr != nil:
		return fmt.Errorf("read standard input: %w", sum.InputErr)
	case sum.LogErr != nil:
		return fmt.Errorf("job log: %w", sum.LogErr)
	case !sum.OK():
		return exitCode(exitFailure)
	}
	return nil
}

// openJoblog opens the job log that o names, reading it first to resume.
func openJoblog(o *runOptions) (*joblog.Writer, error) {
	w, err := joblog.Create(o.joblog, o.resume || o.resumeFailed)
	switch {
	case errors.Is(err, joblog.ErrLocked):
		return nil, fmt.Errorf("%w; wait for that run to end, or give another --joblog", err)
	case err != nil:
		return nil, err
	}
	return w, nil
}

// skipFor returns the jobs to skip: with resumeFailed all but those the
// job log records as failed, otherwise those it records as done.
func skipFor(w *joblog.Writer, resumeFailed bool) func(seq int64) bool {
	if resumeFailed {
		failed := w.Failed()
		return func(seq int64) bool { return !failed[seq] }
	}
	done := w.Done()
	return func(seq int64) bool { return done[seq] }
}

// wantProgress decides whether to draw a progress bar.
func (a *app) wantProgress(arg string) (bool, error) {
	switch arg {
	case "always":
		return true, nil
	case "never":
		return false, nil
	case "auto":
		return term.IsTerminal(int(a.stderr.Fd())), nil
	}
	return false, usagef("--progress must be auto, always or never, not %q", arg)
}

// summaryLine says what a run did, in one line.
func summaryLine(s runner.Summary, o *runOptions) string {
	var b strings.Builder
	fmt.Fprintf(&b, "crew run: %d succeeded, %d failed", s.Succeeded, s.Failed)
	switch {
	case s.Skipped > 0 && o.resumeFailed:
		fmt.Fprintf(&b, ", %d skipped (not failed in the job log)", s.Skipped)
	case s.Skipped > 0:
		fmt.Fprintf(&b, ", %d skipped (done in the job log)", s.Skipped)
	}
	fmt.Fprintf(&b, " in %v", s.Elapsed.Round(time.Millisecond))
	switch {
	case s.Halted && s.Failed == 1:
		b.WriteString("; halted after a failure")
	case s.Halted:
		fmt.Fprintf(&b, "; halted after %d failures (--halt %v)", s.Failed, o.cfg.Halt)
	case s.Stopped:
		b.WriteString("; stopped by a signal")
	}
	if s.NotStarted > 0 || s.Halted || s.Stopped {
		fmt.Fprintf(&b, ", the remaining jobs were not started")
	}
	return b.String()
}

// progressBar draws the progress of a run on a terminal, with an ETA. Its
// total grows as the input is read, so that the run need not read all of
// its input before it starts; until the input ends, the total counts one
// job more than has been read, so that the bar cannot look complete too
// early, and the ETA is unknown.
type progressBar struct {
	w     *os.File
	bar   *progressbar.ProgressBar
	start time.Time

	mu        sync.Mutex
	left      int  // jobs read and not finished or skipped
	finished  int  // jobs that ran, for the rate
	inputDone bool // left is the whole of the work
	eta       string
}

func newProgressBar(w *os.File) *progressBar {
	return &progressBar{w: w, start: time.Now(), eta: "crew run, ETA ?", bar: progressbar.NewOptions(1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("crew run, ETA ?"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("jobs"),
		progressbar.OptionSetElapsedTime(true),
		// The bar's own prediction assumes a known total; the ETA in the
		// description waits for it.
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionFullWidth(),
	)}
}

// Add counts n more jobs read.
func (p *progressBar) Add(n int) {
	p.mu.Lock()
	p.left += n
	p.mu.Unlock()
	p.bar.AddMax(n)
}

// Done counts n more jobs finished.
func (p *progressBar) Done(n int) {
	p.mu.Lock()
	p.left -= n
	p.finished += n
	p.describeLocked()
	p.mu.Unlock()
	_ = p.bar.Add(n)
}

// Skip counts n more jobs skipped: done, but at no cost to the ETA.
func (p *progressBar) Skip(n int) {
	p.mu.Lock()
	p.left -= n
	p.mu.Unlock()
	_ = p.bar.Add(n)
}

// InputDone makes the total exact.
func (p *progressBar) InputDone() {
	p.mu.Lock()
	p.inputDone = true
	p.describeLocked()
	p.mu.Unlock()
	p.bar.AddMax(-1)
}

// describeLocked updates the ETA: the jobs left at the rate at which jobs
// have finished so far.
func (p *progressBar) describeLocked() {
	if !p.inputDone || p.finished == 0 {
		return
	}
	elapsed := time.Since(p.start)
	eta := "crew run, ETA " + (elapsed * time.Duration(p.left) / time.Duration(p.finished)).Round(time.Second).String()
	if eta != p.eta {
		p.eta = eta
		p.bar.Describe(eta)
	}
}

// finish draws the bar's last state and ends its line.
func (p *progressBar) finish() {
	_ = p.bar.Exit()
	fmt.Fprintln(p.w)
}
