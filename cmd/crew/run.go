package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/crewgo/crew/cmd/crew/internal/joblog"
	"github.com/crewgo/crew/cmd/crew/internal/proc"
	"github.com/crewgo/crew/cmd/crew/internal/runner"
)

func (a *app) runCmd() *cobra.Command {
	var (
		cfg         runner.Config
		joblogPath  string
		resume      bool
		progressArg string
	)
	cmd := &cobra.Command{
		Use:   "run [flags] -- CMD [ARGS...]",
		Short: "Run a command once per line of standard input, N at a time",
		Long: `Run starts one job per line of standard input, at most -j at once, like
xargs -P. A job is CMD with every "{}" in its arguments replaced by the line;
when no argument holds "{}", the line is appended as the last argument. CMD
runs directly, not through a shell (write sh -c '...' for one), with its
output going straight to crew's. Jobs start in input order.

A progress bar is drawn on standard error when it is a terminal. When every
job has finished, a summary line is printed on standard error, and one line
per failed job as it fails.

The first SIGINT or SIGTERM (Ctrl-C) stops starting jobs; running jobs
finish, and are recorded. A second one sends SIGTERM to the running jobs'
process groups, and SIGKILL after --kill-after. If crew itself dies, even
by SIGKILL, a small guardian process ends the running jobs' process groups
(SIGTERM, then SIGKILL a second later), on Linux and other Unix systems.

--joblog records every finished job in GNU parallel's tab-separated format:
Seq (the input line number), Host, Starttime, JobRuntime, Send, Receive,
Exitval, Signal and Command. --resume reads that log and skips the jobs it
records as done (Exitval 0, Signal 0), by Seq, then appends to it: give it
the same input in the same order. Unlike GNU parallel's --resume, jobs that
failed are run again. A run holds its job log locked (flock) until it ends:
another run given the same --joblog fails at once, exit status 1, rather
than run the same jobs a second time.

The exit status is 0 only when every job succeeded, 1 when any failed or the
run was stopped early, 2 for a wrong command line.`,
		Example: `  # Compress every log file, 8 at a time.
  ls *.log | crew run -j 8 -- gzip {}

  # Fetch URLs with a time limit and retries, recording a job log; after an
  # interruption, the same command resumes where it stopped.
  crew run -j 4 --timeout 30s --retries 2 --joblog fetch.log --resume \
      -- curl -fsSO {} < urls.txt

  # A shell pipeline per line.
  crew run -- sh -c 'convert "$1" "${1%.png}.jpg"' sh {} < images.txt`,
		Args: cobra.ArbitraryArgs,
	}
	f := cmd.Flags()
	f.SetInterspersed(false) // flags end at CMD, so CMD's own flags stay its own
	f.IntVarP(&cfg.Jobs, "jobs", "j", runtime.NumCPU(), "run at most `N` jobs at once")
	f.DurationVar(&cfg.Timeout, "timeout", 0, "stop a job that runs longer than `D` (SIGTERM, then SIGKILL after --kill-after); 0 for no limit")
	f.DurationVar(&cfg.KillAfter, "kill-after", 10*time.Second, "after SIGTERM, give a job `D` before SIGKILL")
	f.IntVar(&cfg.Retries, "retries", 0, "run a failed job up to `N` more times")
	f.StringVar(&joblogPath, "joblog", "", "record every finished job in `FILE` (GNU parallel's format)")
	f.BoolVar(&resume, "resume", false, "skip the jobs that --joblog records as done, and append to it")
	f.BoolVar(&cfg.HaltOnError, "halt-on-error", false, "start no more jobs once one has failed (running jobs finish)")
	f.StringVar(&progressArg, "progress", "auto", "draw a progress bar on standard error: `auto` (when it is a terminal), always or never")

	cmd.RunE = a.runE(func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) == 0:
			return usagef("missing CMD: give the command to run after --")
		case cfg.Jobs < 1:
			return usagef("-j must be at least 1, not %d", cfg.Jobs)
		case cfg.Timeout < 0:
			return usagef("--timeout must not be negative, not %v", cfg.Timeout)
		case cfg.KillAfter < 0:
			return usagef("--kill-after must not be negative, not %v", cfg.KillAfter)
		case cfg.Retries < 0:
			return usagef("--retries must not be negative, not %d", cfg.Retries)
		case resume && joblogPath == "":
			return usagef("--resume needs --joblog FILE, the log to resume from")
		}
		showBar, err := a.wantProgress(progressArg)
		if err != nil {
			return err
		}
		if !strings.Contains(args[0], runner.Placeholder) {
			// Checked before the job log is opened, which may truncate it.
			if _, err := proc.LookPath(args[0]); err != nil {
				return usageError{err}
			}
		}
		cfg.Command = args
		cfg.Stdout, cfg.Stderr = a.stdout, a.stderr
		cfg.Guard = a.guard

		if joblogPath != "" {
			w, err := joblog.Create(joblogPath, resume)
			switch {
			case errors.Is(err, joblog.ErrLocked):
				return fmt.Errorf("%w; wait for that run to end, or give another --joblog", err)
			case err != nil:
				return err
			}
			defer w.Close()
			done := w.Done()
			cfg.Skip = func(seq int64) bool { return done[seq] }
			cfg.Log = w
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

		sigs := make(chan os.Signal, 2)
		a.notify(sigs, os.Interrupt, syscall.SIGTERM)
		defer a.stopNotify(sigs)
		quit := make(chan struct{})
		var watching sync.WaitGroup
		watching.Go(func() {
			for n := 1; ; n++ {
				select {
				case <-quit:
					return
				case <-sigs:
				}
				if n == 1 {
					fmt.Fprintln(a.stderr, "crew run: stopping: no new jobs start, running jobs finish; send the signal again to stop them now")
					r.Stop()
				} else {
					fmt.Fprintln(a.stderr, "crew run: stopping the running jobs now")
					r.Kill()
				}
			}
		})
		sum := r.Run(a.stdin)
		close(quit)
		watching.Wait()
		if bar != nil {
			bar.finish()
		}

		fmt.Fprintln(a.stderr, summaryLine(sum))
		if sum.InputErr != nil {
			return fmt.Errorf("read standard input: %w", sum.InputErr)
		}
		if sum.LogErr != nil {
			return fmt.Errorf("job log: %w", sum.LogErr)
		}
		if !sum.OK() {
			return exitCode(exitFailure)
		}
		return nil
	})
	return cmd
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
func summaryLine(s runner.Summary) string {
	var b strings.Builder
	fmt.Fprintf(&b, "crew run: %d succeeded, %d failed", s.Succeeded, s.Failed)
	if s.Skipped > 0 {
		fmt.Fprintf(&b, ", %d skipped (done in the job log)", s.Skipped)
	}
	fmt.Fprintf(&b, " in %v", s.Elapsed.Round(time.Millisecond))
	switch {
	case s.Halted:
		b.WriteString("; halted after a failure")
	case s.Stopped:
		b.WriteString("; stopped by a signal")
	}
	if s.NotStarted > 0 || s.Halted || s.Stopped {
		fmt.Fprintf(&b, ", the remaining jobs were not started")
	}
	return b.String()
}

// progressBar draws the progress of a run on a terminal. Its total grows as
// the input is read, so that the run need not read all of its input before
// it starts; until the input ends, the total counts one job more than has
// been read, so that the bar cannot look complete too early.
type progressBar struct {
	w   *os.File
	bar *progressbar.ProgressBar
}

func newProgressBar(w *os.File) *progressBar {
	return &progressBar{w: w, bar: progressbar.NewOptions(1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("crew run"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("jobs"),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionFullWidth(),
	)}
}

// Add counts n more jobs read.
func (p *progressBar) Add(n int) { p.bar.AddMax(n) }

// Done counts n more jobs finished.
func (p *progressBar) Done(n int) { _ = p.bar.Add(n) }

// InputDone makes the total exact.
func (p *progressBar) InputDone() { p.bar.AddMax(-1) }

// finish draws the bar's last state and ends its line.
func (p *progressBar) finish() {
	_ = p.bar.Exit()
	fmt.Fprintln(p.w)
}
