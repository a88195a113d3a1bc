package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"github.com/crewgo/crew/cmd/crew/internal/backend"
	_ "github.com/crewgo/crew/cmd/crew/internal/backend/natsqueue"   // nats://
	_ "github.com/crewgo/crew/cmd/crew/internal/backend/pgqueue"     // postgres://, postgresql://
	_ "github.com/crewgo/crew/cmd/crew/internal/backend/sqlitequeue" // sqlite://
	_ "github.com/crewgo/crew/cmd/crew/internal/backend/sqsqueue"    // sqs://, sqs+http://
	"github.com/crewgo/crew/cmd/crew/internal/proc"
)

func main() {
	os.Exit(Main(os.Args[1:]))
}

// Exit codes of the crew command.
const (
	exitOK      = 0 // every job or message succeeded; a drain completed
	exitFailure = 1 // a job failed, a message had to be released, or an operation failed
	exitUsage   = 2 // the command line was wrong
)

// defaultQueue is the queue used when neither --queue nor CREW_QUEUE names one.
const defaultQueue = "sqlite://crew.db"

// guardArg, as crew's only argument, makes crew the guardian of another
// crew's children (see proc.Guard): a hidden entry point, not a command.
const guardArg = "__crew_guard"

// Main runs the crew command with args (without the program name) on the
// process's standard files and signals, and returns the exit code.
func Main(args []string) int {
	if len(args) == 1 && args[0] == guardArg {
		proc.ServeGuard(os.Stdin)
		return exitOK
	}
	a := &app{
		stdin:      os.Stdin,
		stdout:     os.Stdout,
		stderr:     os.Stderr,
		getenv:     os.Getenv,
		environ:    os.Environ,
		notify:     signal.Notify,
		stopNotify: signal.Stop,
		guard:      newGuard(),
	}
	return a.run(args)
}

// newGuard returns the guard of this crew's children: crew itself, run
// again with guardArg when the first child starts.
func newGuard() *proc.Guard {
	exe := "/proc/self/exe" // this very binary, even if its file was replaced
	if runtime.GOOS != "linux" {
		var err error
		if exe, err = os.Executable(); err != nil {
			exe = os.Args[0]
		}
	}
	return proc.NewGuard(exe, []string{os.Args[0], guardArg})
}

// app is one invocation of the command, with the process's outside world
// gathered in one place so that tests can replace it.
type app struct {
	stdin          io.Reader
	stdout, stderr *os.File
	getenv         func(string) string
	environ        func() []string
	notify         func(c chan<- os.Signal, sig ...os.Signal)
	stopNotify     func(c chan<- os.Signal)
	// guard ends the children if crew dies; nil runs them unguarded.
	guard *proc.Guard

	started bool // a command began to run: later errors are not usage errors
}

// usageError is an error in the command line: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// exitCode ends the command with a code and no further message: what went
// wrong has been reported already.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit code %d", int(e)) }

func (a *app) run(args []string) int {
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	var code exitCode
	if errors.As(err, &code) {
		return int(code)
	}
	var usage usageError
	var badURL *backend.URLError
	isUsage := errors.As(err, &usage) || errors.As(err, &badURL) || !a.started
	msg, _, _ := strings.Cut(err.Error(), "\n")
	if isUsage {
		fmt.Fprintf(a.stderr, "crew: %s (see '%s --help')\n", msg, cmd.CommandPath())
		return exitUsage
	}
	fmt.Fprintf(a.stderr, "crew: %s\n", msg)
	return exitFailure
}

// runE wraps a command's function so that errors from it are told apart
// from cobra's own errors in the command line.
func (a *app) runE(f func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		a.started = true
		return f(cmd, args)
	}
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "crew",
		Short: "Run any program as a graceful queue worker, or map lines through a command in parallel",
		Long: `crew gives any program, in any language, the guarantees of a careful worker.

  crew work   runs a command once per queue message, with leases that are
              extended while it runs, retries with backoff, dead letters, and a
              graceful drain on SIGTERM that lets running commands finish.
  crew run    runs a command once per line of standard input, N at a time,
              like xargs -P, with a job log that a later run can resume from.
  crew ui     serves a web page of a queue store: live counts, charts of depth
              and throughput, and dead letters to redrive or purge.

Queues are URLs, from --queue or $CREW_QUEUE, by default ` + defaultQueue + `:
an SQLite file next to you, created by crew enqueue or crew work (crew stats,
crew dead and crew work --exit-when-empty never create one). Add ?queue=NAME
to pick a queue other than "default". Other stores, for workers on many
machines: postgres://USER@HOST:PORT/DB?queue=NAME (PostgreSQL),
sqs://HOST/ACCOUNT/QUEUE or sqs+http://HOST:PORT/ACCOUNT/QUEUE (Amazon SQS,
or a local endpoint) and nats://HOST:PORT?queue=NAME (NATS JetStream). A URL
is read strictly: an unknown parameter, a malformed query or a '#' is a usage
error.

Exit status: 0 on success (and after a drain that completed), 1 when a job or
message failed, a drain had to give messages back, or an operation failed, 2
for a wrong command line.`,
		Example: `  # Queue three messages, then handle them all and exit.
  crew enqueue one two three
  crew work --exit-when-empty -- sh -c 'cat; echo'

  # Compress every log file, 8 at a time, recording a resumable job log.
  ls *.log | crew run -j 8 --joblog gzip.log -- gzip {}`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// The root takes a command, and no flag but --help: its usage line
		// is not "crew [flags]".
		DisableFlagsInUseLine: true,
		// A bare "crew" prints the help; an unknown word is an error.
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(a.enqueueCmd(), a.workCmd(), a.statsCmd(), a.deadCmd(), a.runCmd(), a.uiCmd())
	return root
}

// queueFlag adds --queue to cmd and returns a function that resolves the
// queue URL: the flag, else $CREW_QUEUE, else the default.
func (a *app) queueFlag(cmd *cobra.Command) func() string {
	var u string
	cmd.Flags().StringVar(&u, "queue", "", "queue `URL` (default $CREW_QUEUE, else "+defaultQueue+")")
	return func() string {
		switch {
		case u != "":
			return u
		case a.getenv("CREW_QUEUE") != "":
			return a.getenv("CREW_QUEUE")
		}
		return defaultQueue
	}
}

// concurrencyFlags adds -j/--jobs and -c/--concurrency to cmd, two names
// for one setting, how many at once, so that crew work and crew run take
// both: the first name given is the one shown in the help, the other one
// is accepted quietly.
func concurrencyFlags(cmd *cobra.Command, p *int, value int, shown, usage string) {
	f := cmd.Flags()
	f.IntVarP(p, "jobs", "j", value, usage)
	f.IntVarP(p, "concurrency", "c", value, usage)
	hidden := "concurrency"
	if shown == "concurrency" {
		hidden = "jobs"
	}
	_ = f.MarkHidden(hidden)
}

// openQueue opens the queue at rawURL, with an error that names the URL.
// Unless create, a store that does not exist is an error, not a new store.
func openQueue(ctx context.Context, rawURL string, create bool) (backend.Backend, error) {
	b, err := backend.Open(ctx, rawURL, create)
	if err != nil {
		var badURL *backend.URLError
		if errors.As(err, &badURL) {
			return nil, err
		}
		return nil, fmt.Errorf("open queue %s: %w", rawURL, err)
	}
	return b, nil
}
