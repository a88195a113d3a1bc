package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/crewgo/crew"
	"github.com/crewgo/crew/backoff"
	"github.com/crewgo/crew/cmd/crew/internal/backend"
	"github.com/crewgo/crew/cmd/crew/internal/proc"
	"github.com/crewgo/crew/queue"
)

// workConfig is what the flags of crew work say.
type workConfig struct {
	concurrency   int
	lease         time.Duration
	maxAttempts   int
	timeout       time.Duration
	drain         time.Duration
	killAfter     time.Duration
	retryDelay    time.Duration
	health        string
	metrics       string // --metrics ADDR: Prometheus metrics (metrics.go)
	exitWhenEmpty bool
	post          string
	statusEvery   time.Duration
	pollEvery     time.Duration // how often --exit-when-empty looks at the queue
	limits        limits        // --rate, --burst, --key, --per-key (worklimits.go)
	permanentExit permanentExit // --permanent-exit: exit statuses that dead-letter at once
}

// workLong is the help text of crew work.
const workLong = `Work receives messages from a queue and runs CMD once per message, up to -c
at once, with the message's body on CMD's standard input and, in CMD's
environment, crew's own plus CREW_MESSAGE_ID and CREW_ATTEMPT;
CREW_FIRST_RECEIVED_AT, when the message was first received, the same on
every delivery (RFC 3339 in UTC, to the millisecond, such as
2025-01-02T15:04:05.123Z; empty when the queue cannot tell, as JetStream
cannot on a redelivery); and one CREW_ATTR_<NAME> per attribute of the
message (crew enqueue --attr; the name upper-cased, characters other than
letters, digits and _ made _). CMD runs directly, not through a shell
(write sh -c '...' for one); its output goes straight to crew's. With
--post URL instead of CMD, each body is POSTed to URL, with the headers
X-Crew-Message-Id, X-Crew-Attempt, X-Crew-First-Received-At (left out when
the queue cannot tell) and one X-Crew-Attr-<Name> per attribute, and the
same under the names of Elastic Beanstalk's worker daemon
(X-Aws-Sqsd-Msgid, X-Aws-Sqsd-Receive-Count, X-Aws-Sqsd-First-Received-At
in whole seconds, X-Aws-Sqsd-Attr-<Name>), so that an endpoint written for
a Beanstalk worker environment moves to crew unchanged. A redirect is
followed only when it is a 307 or 308, which repeat the POST with its body;
any other 3xx (301, 302, 303...) would turn it into a GET without the body,
so it is a failure like a 5xx.

Exit status 0 (or a 2xx response) acknowledges the message: it is deleted.
Anything else makes it ready again after a backoff that starts at
--retry-delay and doubles up to 5 minutes; every delivery counts as an
attempt, even one whose worker was killed, and after --max-attempts the
message becomes a dead letter (see crew dead). A command says "do not
retry this message", such as one it cannot parse, by exiting with a status
given to --permanent-exit (none by default; 65, EX_DATAERR of sysexits.h,
is the customary one): the message becomes a dead letter at once. Any other
non-zero status means "retry later". While CMD runs, the message's
lease is extended every third of --lease, so CMD may run far longer than the
lease; if crew itself dies, the message comes back when the lease ends.

Delivery is at least once: a message is deleted only once its success has
been committed to the queue, so a handler can run twice for one message.
That happens when crew is killed (or its machine fails) after CMD finished
but before the acknowledgement was committed, and when a lease is lost (the
queue could not be reached to extend it, or the machine paused for longer
than the lease), so that another worker receives the message while CMD
still runs. Make CMD idempotent: CREW_MESSAGE_ID (X-Crew-Message-Id with
--post) is the same on every delivery of a message, so CMD can record the
IDs it has done, in the same transaction as its work, and skip them.

crew work's own exit status is 0 when every message this run handled
succeeded (retries that later succeeded included), 1 when any was
dead-lettered, released (given back by a drain), or lost its lease, or
when an operation failed, 2 for a wrong command line (--lease below 1s
included: a shorter lease would end before crew could extend it).

Stopping. The first SIGINT or SIGTERM stops receiving: running commands
finish (they are not signalled), and crew exits 0 once they have. At --drain
after the signal, the commands still running get SIGTERM, SIGKILL after
--kill-after, and their messages are given back to the queue for another
delivery; crew then exits 1. A second signal does the same at once. Commands
run in process groups of their own, so a terminal's Ctrl-C reaches crew
alone. If crew itself dies, even by SIGKILL, a small guardian process that
it starts ends the process groups of the commands still running (SIGTERM,
then SIGKILL a second later), so that no command runs on unseen while its
message is delivered again; this works on Linux and other Unix systems.
What a command leaves running in the background after it exits is its own.

--exit-when-empty exits once crew holds no message and the queue has no
ready, leased or delayed message: it waits for messages leased by other
workers, and for retries, to come back, and handles them.

Limits. --rate 50/s (or /m, /h) starts at most that many commands per
second, evenly spaced, or in bursts of up to --burst after a quiet spell;
a message is received only once its command may start, so none waits out
its lease for the limiter. --key ATTR --per-key N runs at most N commands at
once for the messages that share a value of the attribute ATTR, such as a
tenant, while the other slots of -c serve other values; a message whose
value is busy waits, leased, only when it should start within about one
command's run, and is otherwise given back to the queue for a while, so
that one busy value neither holds many leases nor blocks the others. Such
a giving back counts in CREW_ATTEMPT, but not against --max-attempts.

--health ADDR serves /livez (200 while crew runs) and /readyz (200 while
crew receives, 503 from the first signal on) on ADDR.

--metrics ADDR serves Prometheus metrics on ADDR at /metrics (on the
--health server when both name the same address): crew_queue_messages_total
by outcome, crew_queue_in_flight, crew_queue_handler_seconds and
crew_queue_depth by state.

A message's trace context (the traceparent and tracestate attributes that
crew enqueue copies from TRACEPARENT and TRACESTATE) reaches CMD as those
environment variables, and --post's URL as the W3C headers.

Logs go to standard error: one line per message outcome (succeeded, retried,
dead-lettered, released, lease-lost) and a status line every --status-every.`

func (a *app) workCmd() *cobra.Command {
	c := workConfig{pollEvery: 100 * time.Millisecond}
	cmd := &cobra.Command{
		Use:   "work [flags] (-- CMD [ARGS...] | --post URL)",
		Short: "Run a command once per queue message, and drain gracefully on SIGTERM",
		Long:  workLong,
		Example: `  # Handle every message of the default queue, then exit.
  crew work --exit-when-empty -- sh -c 'cat; echo'

  # A Python worker, 8 at a time, with a health endpoint for Kubernetes.
  crew work -c 8 --health :8080 --queue sqlite:///data/jobs.db -- python3 worker.py

  # Forward every message to an HTTP endpoint.
  crew work --post http://localhost:8080/hooks/job

  # At most 10 calls a second to a rate-limited API, 2 at once per tenant.
  crew work -c 8 --rate 10/s --key tenant --per-key 2 -- ./call-api.sh`,
		Args: cobra.ArbitraryArgs,
	}
	queueURL := a.queueFlag(cmd)
	c.addFlags(cmd)

	cmd.RunE = a.runE(func(cmd *cobra.Command, args []string) error {
		if err := c.check(args); err != nil {
			return err
		}
		var handler queue.Handler
		if c.post != "" {
			h := newPoster(c.post, c.concurrency)
			defer h.client.CloseIdleConnections()
			handler = h.handle
		} else {
			path, err := proc.LookPath(args[0])
			if err != nil {
				return usageError{err}
			}
			handler = (&commandHandler{
				path: path, args: args, env: a.environ(), guard: a.guard,
				killAfter: c.killAfter, stdout: a.stdout, stderr: a.stderr,
				permanent: c.permanentExit,
			}).handle
		}
		q, err := openQueue(cmd.Context(), queueURL(), !c.exitWhenEmpty)
		if err != nil {
			return err
		}
		defer q.Close()
		return a.work(cmd.Context(), q, handler, c)
	})
	return cmd
}

// addFlags defines the flags of crew work, but --queue.
func (c *workConfig) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.SetInterspersed(false) // flags end at CMD, so CMD's own flags stay its own
	concurrencyFlags(cmd, &c.concurrency, 1, "concurrency", "run up to `N` commands at once (-j is the same)")
	f.DurationVar(&c.lease, "lease", queue.DefaultLease, "lease messages for `D` (at least 1s), extended while their command runs")
	f.IntVar(&c.maxAttempts, "max-attempts", queue.DefaultMaxAttempts, "dead-letter a message after `N` deliveries")
	f.DurationVar(&c.timeout, "timeout", 0, "stop a command that runs longer than `D` and retry its message; 0 for no limit")
	f.DurationVar(&c.drain, "drain", queue.DefaultDrainTimeout, "after a signal, let running commands finish for up to `D`")
	f.DurationVar(&c.killAfter, "kill-after", 10*time.Second, "after SIGTERM, give a command `D` before SIGKILL")
	f.DurationVar(&c.retryDelay, "retry-delay", time.Second, "wait about `D` before the first retry, doubling for each later one")
	f.StringVar(&c.health, "health", "", "serve /livez and /readyz on `ADDR`, such as :8080")
	f.StringVar(&c.metrics, "metrics", "", "serve Prometheus metrics at /metrics on `ADDR`, such as :9090")
	f.BoolVar(&c.exitWhenEmpty, "exit-when-empty", false, "exit once the queue has no ready, leased or delayed message")
	f.StringVar(&c.post, "post", "", "POST each message's body to `URL` instead of running a command (2xx acknowledges)")
	f.DurationVar(&c.statusEvery, "status-every", 5*time.Second, "log a status line every `D`; 0 for none")
	f.StringVar(&c.limits.rate, "rate", "", "start at most `N/s`, N/m or N/h commands, evenly spaced unless --burst")
	f.IntVar(&c.limits.burst, "burst", 0, "with --rate, let up to `N` commands start at once after a quiet spell")
	f.StringVar(&c.limits.key, "key", "", "limit how many commands run at once per value of the message attribute `ATTR`")
	f.IntVar(&c.limits.perKey, "per-key", 0, "with --key, run up to `N` commands at once per value (default 1)")
	f.IntSliceVar((*[]int)(&c.permanentExit), "permanent-exit", nil, "exit `CODE`s of CMD that dead-letter the message at once, without retries")
}

// check rejects flag values that make no sense.
func (c *workConfig) check(args []string) error {
	switch {
	case len(args) == 0 && c.post == "":
		return usagef("missing CMD: give the command to run after --, or --post URL")
	case len(args) > 0 && c.post != "":
		return usagef("give either a CMD or --post URL, not both")
	case c.concurrency < 1:
		return usagef("-c must be at least 1, not %d", c.concurrency)
	case c.lease < queue.MinLease:
		// A shorter lease would end before crew could extend it.
		return usagef("--lease must be at least %v, not %v", queue.MinLease, c.lease)
	case c.maxAttempts < 1:
		return usagef("--max-attempts must be at least 1, not %d", c.maxAttempts)
	case c.timeout < 0:
		return usagef("--timeout must not be negative, not %v", c.timeout)
	case c.drain <= 0:
		return usagef("--drain must be positive, not %v", c.drain)
	case c.killAfter < 0:
		return usagef("--kill-after must not be negative, not %v", c.killAfter)
	case c.retryDelay < 0:
		return usagef("--retry-delay must not be negative, not %v", c.retryDelay)
	case c.statusEvery < 0:
		return usagef("--status-every must not be negative, not %v", c.statusEvery)
	case len(c.permanentExit) > 0 && c.post != "":
		return usagef("--permanent-exit names exit statuses of a CMD, and --post runs none")
	}
	if err := c.permanentExit.check(); err != nil {
		return err
	}
	if err := c.limits.check(); err != nil {
		return err
	}
	if c.post != "" {
		u, err := url.Parse(c.post)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return usagef("--post wants an http:// or https:// URL, not %q", c.post)
		}
	}
	return nil
}

// worker is one run of crew work.
type worker struct {
	log      *slog.Logger
	consumer *queue.Consumer

	succeeded, retried, dead, released, lost atomic.Int64
	// failed: a message of this run ended other than succeeded or retried
	// (dead-lettered, released, lease lost): crew work exits 1.
	failed atomic.Bool
}

// work runs the consumer under a crew.Group, with crew's signal handling:
// the first signal drains, the second one stops the commands at once.
func (a *app) work(ctx context.Context, q backend.Backend, handler queue.Handler, c workConfig) error {
	log := slog.New(slog.NewTextHandler(a.stderr, nil))
	w := &worker{log: log}
	w.consumer = &queue.Consumer{
		Source:         q,
		Handler:        handler,
		Concurrency:    c.concurrency,
		Lease:          c.lease,
		MaxAttempts:    c.maxAttempts,
		Retry:          backoff.EqualJitter(backoff.Exponential(c.retryDelay, 5*time.Minute)),
		HandlerTimeout: c.timeout,
		DrainTimeout:   c.drain,
		Logger:         log, // for Source errors: OnResult logs the outcomes
		OnResult:       w.onResult,
	}
	c.limits.apply(w.consumer)

	g := a.workGroup(w, q, c, log)

	runCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	stopSignals := a.onSignals(func(sig os.Signal) {
		log.Info("received signal; draining: running commands finish, no new message is received; send it again to stop them now",
			"signal", sig.String(), "drain", c.drain)
		stop(&crew.SignalError{Signal: sig})
	}, func(sig os.Signal) {
		log.Warn("received second signal; stopping the running commands and releasing their messages",
			"signal", sig.String(), "kill_after", c.killAfter)
		g.Stop(nil) // a Stop during the stop cuts the drain short
	})
	start := time.Now()
	err := g.Run(runCtx)
	stopSignals()

	log.Info("stopped",
		"done", w.succeeded.Load(), "retried", w.retried.Load(), "dead", w.dead.Load(),
		"released", w.released.Load(), "elapsed", time.Since(start).Round(time.Millisecond))
	// The group has logged what failed, such as a drain that had to release
	// messages, naming them, and onResult every message that failed.
	if err != nil || w.failed.Load() {
		return exitCode(exitFailure)
	}
	return nil
}

// workGroup puts the consumer under a crew.Group, with the servers and
// the reports that c asks for beside it.
func (a *app) workGroup(w *worker, q backend.Backend, c workConfig, log *slog.Logger) *crew.Group {
	// The group's budget covers the drain, the SIGTERM-to-SIGKILL wait and
	// the release of what was still running.
	// Its lines about workers starting and stopping say nothing to someone
	// who runs crew work, so only its warnings and errors are kept.
	groupLog := slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	g := &crew.Group{StopTimeout: c.drain + c.killAfter + 5*time.Second, Logger: groupLog}
	metrics, afterMetrics := addMetrics(g, c, q, w.consumer, log)
	if c.health != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /livez", func(rw http.ResponseWriter, _ *http.Request) {
			rw.Header().Set("Cache-Control", "no-store")
			fmt.Fprintln(rw, "ok")
		})
		mux.Handle("GET /readyz", g.ReadyHandler())
		if c.metrics == c.health {
			mux.Handle("GET /metrics", metrics)
		}
		srv := &http.Server{Addr: c.health, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		g.Add("health", crew.HTTPServer(srv), crew.WaitReady())
		// The consumer stops first and the health server last, so that the
		// probes answer during the whole drain.
		g.Add("consumer", w.consumer, append(afterMetrics, crew.After("health"))...)
	} else {
		g.Add("consumer", w.consumer, afterMetrics...)
	}
	if c.statusEvery > 0 {
		g.Add("status", crew.Func(func(ctx context.Context) error {
			w.reportStatus(ctx, c.statusEvery)
			return nil
		}), crew.After("consumer"))
	}
	if c.exitWhenEmpty {
		g.Add("exit-when-empty", crew.Func(func(ctx context.Context) error {
			w.waitEmpty(ctx, q, c.pollEvery)
			return nil
		}))
	}
	return g
}

// onResult logs one line per message outcome and counts it.
func (w *worker) onResult(r queue.Result) {
	outcome := r.Outcome
	attrs := []any{"id", r.Message.ID, "attempt", r.Message.Attempt}
	if r.Elapsed > 0 {
		attrs = append(attrs, "elapsed", r.Elapsed.Round(time.Millisecond))
	}
	if r.Err != nil {
		attrs = append(attrs, "err", r.Err.Error())
	}
	level := slog.LevelInfo
	switch outcome {
	case queue.Succeeded:
		w.succeeded.Add(1)
	case queue.Retried:
		w.retried.Add(1)
		level = slog.LevelWarn
		attrs = append(attrs, "retry_in", r.Delay.Round(time.Millisecond))
	case queue.DeadLettered:
		w.dead.Add(1)
		level = slog.LevelError
	case queue.Released:
		w.released.Add(1)
		level = slog.LevelWarn
	case queue.LeaseLost:
		w.lost.Add(1)
		level = slog.LevelWarn
	}
	if outcome != queue.Succeeded && outcome != queue.Retried {
		w.failed.Store(true)
	}
	w.log.Log(context.Background(), level, outcome.String(), attrs...)
}

// reportStatus logs a status line every interval until ctx ends: messages
// done (succeeded), failed (retried or dead-lettered), dead, in flight, and
// how many finished per second since the previous line.
func (w *worker) reportStatus(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	last, lastAt := int64(0), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			done, failed := w.succeeded.Load(), w.retried.Load()+w.dead.Load()
			// The rate counts every message finished, failed or not, since
			// the last status line.
			rate := float64(done+failed-last) / now.Sub(lastAt).Seconds()
			last, lastAt = done+failed, now
			w.log.Info("status",
				"done", done, "failed", failed, "dead", w.dead.Load(),
				"in_flight", w.consumer.Stats().Running, "rate", fmt.Sprintf("%.1f/s", rate))
		}
	}
}

// waitEmpty returns once the consumer holds no message and the queue has no
// ready, leased or delayed one, or when ctx ends.
func (w *worker) waitEmpty(ctx context.Context, q backend.Backend, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if w.consumer.Stats().Held == 0 {
			qs, err := q.Stats(ctx, q.Name())
			switch {
			case err != nil && ctx.Err() == nil:
				w.log.Warn("cannot count the queue's messages", "err", err)
			case err == nil && qs.Ready+qs.Leased+qs.Delayed == 0:
				w.log.Info("queue is empty; exiting", "dead", qs.Dead)
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// commandHandler runs CMD for a message.
type commandHandler struct {
	path           string
	args           []string
	env            []string
	killAfter      time.Duration
	stdout, stderr *os.File
	guard          *proc.Guard
	permanent      permanentExit // exit statuses that mean "do not retry"
}

func (h *commandHandler) handle(ctx context.Context, m *queue.Message) error {
	env := append(h.env[:len(h.env):len(h.env)],
		"CREW_MESSAGE_ID="+m.ID, "CREW_ATTEMPT="+strconv.Itoa(m.Attempt), firstReceivedEnv(m))
	env = withTraceEnv(append(env, attrEnv(m)...), m)
	p, err := proc.Start(proc.Spec{Path: h.path, Args: h.args, Env: env, Input: m.Body, Stdout: h.stdout, Stderr: h.stderr, Guard: h.guard})
	if err != nil {
		return err
	}
	// The drain deadline, --timeout, a lost lease and a second signal all
	// end ctx: the command's process group gets SIGTERM, then SIGKILL.
	stop := context.AfterFunc(ctx, func() { p.Stop(h.killAfter) })
	exit, err := p.Wait()
	stop()
	switch {
	case err != nil:
		return err
	case exit.Success():
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("%w (%v)", exit.Err(), context.Cause(ctx))
	}
	return h.permanent.wrap(exit.Code, exit.Err())
}

// poster POSTs messages to a URL.
type poster struct {
	url    string
	client *http.Client
}

func newPoster(target string, concurrency int) *poster {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = concurrency
	return &poster{url: target, client: &http.Client{Transport: t, CheckRedirect: keepPost}}
}

// keepPost follows only the redirects that repeat the POST with its body:
// 307 and 308. Go's client turns a POST into a bodyless GET on 301, 302 and
// 303; were those followed, a 200 from the target would acknowledge a
// message whose body was never delivered. Any other 3xx is returned as the
// response, and fails the message.
func keepPost(req *http.Request, via []*http.Request) error {
	switch {
	case req.Response == nil || req.Method != http.MethodPost:
		return http.ErrUseLastResponse
	case req.Response.StatusCode != http.StatusTemporaryRedirect && req.Response.StatusCode != http.StatusPermanentRedirect:
		return http.ErrUseLastResponse
	case len(via) >= 10:
		return fmt.Errorf("stopped after %d redirects", len(via))
	}
	return nil
}

func (p *poster) handle(ctx context.Context, m *queue.Message) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(m.Body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	setMessageHeaders(req.Header, m) // worklimits.go
	setTraceHeaders(req.Header, m)
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	// Read a little of the body so that the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch resp.StatusCode / 100 {
	case 2:
		return nil
	case 3:
		return fmt.Errorf("POST %s: %s to %q: not followed, as it would drop the body (only 307 and 308 are)",
			p.url, resp.Status, resp.Header.Get("Location"))
	}
	return fmt.Errorf("POST %s: %s", p.url, resp.Status)
}
