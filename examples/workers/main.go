// Command workers runs an HTTP server and a background worker under one
// Group. Ctrl-C (or SIGTERM) lets requests
// in flight finish and the worker finish its current job; a second Ctrl-C
// exits at once; a failure in either stops both and exits with status 1.
//
//	go run ./examples/workers -addr 127.0.0.1:8080
//	curl 'http://127.0.0.1:8080/hello?wait=5s' & sleep 1; kill -INT %1 ...
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/crewgo/crew"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to serve HTTP on")
	every := flag.Duration("every", 2*time.Second, "how often the background worker runs a job")
	flag.Parse()
	crew.Main(newGroup(*addr, *every, slog.Default()))
}

// newGroup is the whole program: two workers, one group.
func newGroup(addr string, every time.Duration, log *slog.Logger) *crew.Group {
	g := &crew.Group{StopTimeout: 10 * time.Second, Logger: log}
	g.Add("http", crew.HTTPServer(&http.Server{Addr: addr, Handler: handler(log)}), crew.WaitReady())
	g.Add("jobs", crew.Func(func(ctx context.Context) error {
		return runJobs(ctx, every, log)
	}))
	return g
}

// handler answers /hello after an optional ?wait=DURATION, so that a slow
// request can be in flight when the server is told to stop.
func handler(log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		wait, _ := time.ParseDuration(r.URL.Query().Get("wait"))
		log.Info("request started", "wait", wait)
		select {
		case <-time.After(wait):
			fmt.Fprintln(w, "Hello, world!")
		case <-r.Context().Done():
		}
	})
	return mux
}

// runJobs does a job every interval until ctx is done. A job that has
// started is finished before it returns: the stop only prevents the next one.
func runJobs(ctx context.Context, every time.Duration, log *slog.Logger) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			log.Info("job done", "job", n)
		}
	}
}
