package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/crewgo/crew/cmd/crew/internal/backend"
	"github.com/crewgo/crew/cmd/crew/internal/ui"
)

func (a *app) uiCmd() *cobra.Command {
	var (
		addr     string
		readOnly bool
	)
	cmd := &cobra.Command{
		Use:   "ui [flags]",
		Short: "Serve a web dashboard of a queue store: counts, charts, dead letters",
		Long: `UI serves a web page that shows every queue of the store that --queue names:
its ready, leased, delayed and dead counts, refreshed live; charts of its
depth and of the messages completed per second over the last ten minutes
(crew ui samples the counts every two seconds while it runs); and the dead
letters of the selected queue with their reason, attempts, time and the
start of their body, which the buttons redrive (one, the selected, or all)
or purge.

The page and its assets are part of the crew binary; it loads nothing from
elsewhere. crew ui listens on 127.0.0.1 unless --addr says otherwise, and
accepts changes only from its own page (same-origin requests that carry the
page's token). --read-only removes the buttons and refuses every change.
Requests must name the server by an IP address, localhost or the host name
in --addr (so that no web site can reach it through a DNS name of its own):
a proxy in front of it must pass one of those as the Host.

A store that --queue or $CREW_QUEUE names must exist; the default one,
crew.db, is created if need be.

The completed rate is inferred from the counts: messages published while
others complete hide as many completions, so it is a lower bound while a
queue is being fed.`,
		Example: `  crew ui
  crew ui --queue sqlite:///var/lib/crew/jobs.db --addr 127.0.0.1:9000 --read-only`,
		Args: cobra.NoArgs,
	}
	queueURL := a.queueFlag(cmd)
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8080", "listen on `ADDR`; give a public address only behind an authenticating proxy")
	cmd.Flags().BoolVar(&readOnly, "read-only", false, "show the store but refuse every change (no redrive, no purge)")
	cmd.RunE = a.runE(func(cmd *cobra.Command, _ []string) error {
		rawURL := queueURL()
		// A store named on purpose must exist (a typo is an error); the
		// default one is created, so that crew ui works in a fresh
		// directory, as crew enqueue does.
		q, err := openQueue(cmd.Context(), rawURL, rawURL == defaultQueue)
		if err != nil {
			return err
		}
		defer q.Close()
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("ui: %w", err)
		}
		log := slog.New(slog.NewTextHandler(a.stderr, nil))
		srv := ui.New(q, ui.Options{
			Title: redactedURL(rawURL), ReadOnly: readOnly, Logger: log,
			Open: otherQueue(rawURL), Hosts: listenHosts(addr),
		})
		defer srv.Close()
		fmt.Fprintf(a.stdout, "crew ui: serving %s on http://%s/\n", redactedURL(rawURL), ln.Addr())
		return a.serveUI(cmd.Context(), ln, srv, log)
	})
	return cmd
}

// uiShutdownGrace is how long the requests in progress have to end after
// crew ui's first signal.
var uiShutdownGrace = 5 * time.Second

// serveUI serves srv on ln, and samples its queues, until the first
// SIGINT or SIGTERM, which lets requests in progress finish for up to
// uiShutdownGrace; a second signal closes their connections at once.
func (a *app) serveUI(ctx context.Context, ln net.Listener, srv *ui.Server, log *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 5 * time.Second}
	stopSignals := a.onSignals(func(sig os.Signal) {
		log.Info("received signal; stopping; send it again to close open requests now", "signal", sig.String())
		cancel()
	}, func(sig os.Signal) {
		log.Warn("received second signal; closing open requests", "signal", sig.String())
		hs.Close()
	})
	defer stopSignals()
	sampled := make(chan error, 1)
	go func() { sampled <- srv.Run(ctx) }()
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	var err error
	select {
	case err = <-served:
		cancel()
	case <-ctx.Done():
		// The page polls: nothing long-running to drain.
		shutdown, stop := context.WithTimeout(context.Background(), uiShutdownGrace)
		defer stop()
		if err = hs.Shutdown(shutdown); errors.Is(err, context.DeadlineExceeded) {
			// What is still open after the grace is most often a
			// connection that a browser opened ahead and never used:
			// closing it loses nothing, and is no failure.
			log.Info("closing the connections still open", "after", uiShutdownGrace)
			hs.Close()
			err = nil
		}
		<-served
	}
	<-sampled
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// otherQueue opens the other queues of the store rawURL names, by setting
// its queue parameter. A scheme that has none names one queue per URL:
// its other queues are then shown but not managed.
func otherQueue(rawURL string) ui.Opener {
	return func(ctx context.Context, name string) (backend.Backend, error) {
		u, err := url.Parse(rawURL)
		if err != nil {
			return nil, err
		}
		params := u.Query()
		params.Set("queue", name)
		u.RawQuery = params.Encode()
		return backend.Open(ctx, u.String(), false)
	}
}

// redactedURL is rawURL without its password, for the page to show.
func redactedURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	return u.Redacted()
}

// listenHosts is the host name of --addr when it is a name, which the page
// may then be reached by.
func listenHosts(addr string) []string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" || net.ParseIP(host) != nil {
		return nil
	}
	return []string{host}
}
