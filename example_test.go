package crew_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"time"

	"github.com/crewgo/crew"
	"github.com/crewgo/crew/backoff"
)

// A group of workers stops as a whole when one of them fails, and Run
// reports the failure by name after every worker has returned.
func ExampleGroup() {
	g := crew.Group{Logger: slog.New(slog.DiscardHandler)}
	g.Add("consumer", crew.Func(func(ctx context.Context) error {
		<-ctx.Done() // runs until stopped
		fmt.Println("consumer: stopped because", context.Cause(ctx))
		return nil
	}))
	g.Add("cache", crew.Func(func(ctx context.Context) error {
		return errors.New("redis unreachable")
	}))

	err := g.Run(context.Background())
	fmt.Println("Run:", err)
	// Output:
	// consumer: stopped because worker "cache": redis unreachable
	// Run: crew: worker "cache": redis unreachable
}

// Main is the whole main function of a service: SIGINT or SIGTERM drains
// every worker, and the exit code says whether they all stopped cleanly.
func ExampleMain() {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "hello") })

	g := &crew.Group{StopTimeout: 20 * time.Second}
	g.Add("http", crew.HTTPServer(&http.Server{Addr: ":8080", Handler: mux}))
	g.Add("refresh", crew.Every(time.Minute, func(ctx context.Context) error {
		slog.InfoContext(ctx, "refreshing the price list")
		return nil
	}))
	crew.Main(g)
}

func ExampleGroup_Stop() {
	g := crew.Group{Logger: slog.New(slog.DiscardHandler)}
	g.Add("worker", crew.Func(func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err() // returning the cancellation is not a failure
	}))
	go func() {
		<-g.Ready()
		g.Stop(nil)
	}()
	fmt.Println("Run:", g.Run(context.Background()))
	// Output:
	// Run: <nil>
}

// After orders start-up, and the stop runs in reverse.
func ExampleAfter() {
	g := crew.Group{Logger: slog.New(slog.DiscardHandler)}
	worker := func(name string) crew.Func {
		return func(ctx context.Context) error {
			fmt.Println("start", name)
			crew.MarkReady(ctx) // with WaitReady, dependents wait for this
			<-ctx.Done()
			fmt.Println("stop", name)
			return nil
		}
	}
	g.Add("api", worker("api"), crew.After("db"), crew.WaitReady())
	g.Add("db", worker("db"), crew.WaitReady())
	go func() {
		<-g.Ready()
		g.Stop(nil)
	}()
	_ = g.Run(context.Background())
	// Output:
	// start db
	// start api
	// stop api
	// stop db
}

// A OneShot worker finishes without stopping the group, and workers that
// come After it start only once it has finished.
func ExampleOneShot() {
	g := crew.Group{Logger: slog.New(slog.DiscardHandler)}
	g.Add("migrate", crew.Func(func(ctx context.Context) error {
		fmt.Println("migrating")
		return nil
	}), crew.OneShot())
	g.Add("server", crew.Func(func(ctx context.Context) error {
		fmt.Println("serving")
		<-ctx.Done()
		return nil
	}), crew.After("migrate"))
	go func() {
		<-g.Ready()
		g.Stop(nil)
	}()
	fmt.Println("Run:", g.Run(context.Background()))
	// Output:
	// migrating
	// serving
	// Run: <nil>
}

// A worker with WaitReady tells the group when it serves.
func ExampleWaitReady() {
	g := crew.Group{Logger: slog.New(slog.DiscardHandler)}
	g.Add("cache", crew.Func(func(ctx context.Context) error {
		fmt.Println("warming the cache")
		crew.MarkReady(ctx)
		<-ctx.Done()
		return nil
	}), crew.WaitReady())
	g.Add("api", crew.Func(func(ctx context.Context) error {
		fmt.Println("serving from a warm cache")
		<-ctx.Done()
		return nil
	}), crew.After("cache"))
	go func() {
		<-g.Ready()
		g.Stop(nil)
	}()
	_ = g.Run(context.Background())
	// Output:
	// warming the cache
	// serving from a warm cache
}

// Restart retries a worker with backoff and gives up, stopping the group,
// when it fails too often.
func ExampleRestart() {
	g := crew.Group{Logger: slog.New(slog.DiscardHandler)}
	attempts := 0
	g.Add("connector", crew.Func(func(ctx context.Context) error {
		attempts++
		return fmt.Errorf("attempt %d: connection refused", attempts)
	}), crew.Restart(backoff.Constant(time.Millisecond), 2, time.Minute))

	err := g.Run(context.Background())
	var ce *crew.Error
	errors.As(err, &ce)
	fmt.Println(ce.Workers[0].Name, "restarts:", ce.Workers[0].Restarts)
	fmt.Println(ce.Workers[0].Err)
	// Output:
	// connector restarts: 2
	// attempt 3: connection refused
}

// DrainContext bounds a worker's cleanup by the group's stop budget.
func ExampleDrainContext() {
	g := crew.Group{StopTimeout: 5 * time.Second, Logger: slog.New(slog.DiscardHandler)}
	g.Add("flusher", crew.Func(func(ctx context.Context) error {
		<-ctx.Done()
		drain := crew.DrainContext(ctx) // not cancelled, but bounded
		deadline, ok := drain.Deadline()
		fmt.Println("flushing before the deadline:", ok && time.Until(deadline) <= 5*time.Second)
		return nil
	}))
	go func() {
		<-g.Ready()
		g.Stop(nil)
	}()
	_ = g.Run(context.Background())
	// Output:
	// flushing before the deadline: true
}

// ReadyHandler serves a readiness probe: 200 while every worker is ready,
// 503 while starting and from the moment the stop begins.
func ExampleGroup_ReadyHandler() {
	g := crew.Group{Logger: slog.New(slog.DiscardHandler)}
	g.Add("worker", crew.Func(func(ctx context.Context) error { <-ctx.Done(); return nil }))
	probe := func() int {
		rr := httptest.NewRecorder()
		g.ReadyHandler().ServeHTTP(rr, httptest.NewRequest("GET", "/readyz", nil))
		return rr.Code
	}
	fmt.Println("before Run:", probe())
	done := make(chan error)
	go func() { done <- g.Run(context.Background()) }()
	<-g.Ready()
	fmt.Println("running:", probe())
	g.Stop(nil)
	<-done
	fmt.Println("stopped:", probe())
	// Output:
	// before Run: 503
	// running: 200
	// stopped: 503
}

// HTTPServer runs an *http.Server as a worker that drains on stop.
func ExampleHTTPServer() {
	g := crew.Group{Logger: slog.New(slog.DiscardHandler)}
	srv := &http.Server{Addr: "127.0.0.1:0", Handler: http.NotFoundHandler()}
	g.Add("http", crew.HTTPServer(srv), crew.WaitReady()) // ready once listening
	go func() {
		<-g.Ready()
		g.Stop(nil)
	}()
	fmt.Println("Run:", g.Run(context.Background()))
	// Output:
	// Run: <nil>
}

// Errors from a group's Run can be inspected per worker.
func ExampleError() {
	g := crew.Group{Logger: slog.New(slog.DiscardHandler)}
	g.Add("a", crew.Func(func(ctx context.Context) error { return errors.New("a broke") }))
	g.Add("b", crew.Func(func(ctx context.Context) error {
		<-ctx.Done()
		return errors.New("b failed to flush")
	}))
	err := g.Run(context.Background())
	var ce *crew.Error
	if errors.As(err, &ce) {
		for _, we := range ce.Workers {
			fmt.Printf("%s: %v\n", we.Name, we.Err)
		}
	}
	// Output:
	// a: a broke
	// b: b failed to flush
}

// A panicking worker is reported with its stack instead of crashing the
// process.
func ExamplePanicError() {
	g := crew.Group{Logger: slog.New(slog.DiscardHandler)}
	g.Add("buggy", crew.Func(func(ctx context.Context) error {
		panic("invariant broken: negative balance")
	}))
	err := g.Run(context.Background())
	var pe *crew.PanicError
	if errors.As(err, &pe) {
		fmt.Println("recovered:", pe.Value)
	}
	// Output:
	// recovered: invariant broken: negative balance
}

// HTTPListener serves on a listener opened beforehand, such as one on port
// 0 whose address a test needs to know.
func ExampleHTTPListener() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	g := crew.Group{Logger: slog.New(slog.DiscardHandler)}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "pong") })
	g.Add("http", crew.HTTPListener(&http.Server{Handler: mux}, ln))
	go func() {
		<-g.Ready()
		resp, err := http.Get("http://" + ln.Addr().String())
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			fmt.Println(string(body))
		}
		g.Stop(nil)
	}()
	fmt.Println("Run:", g.Run(context.Background()))
	// Output:
	// pong
	// Run: <nil>
}

// Status shows where every worker is, for a debug page or a log line.
func ExampleGroup_Status() {
	g := crew.Group{Logger: slog.New(slog.DiscardHandler)}
	g.Add("migrate", crew.Func(func(ctx context.Context) error { return nil }), crew.OneShot())
	g.Add("server", crew.Func(func(ctx context.Context) error { <-ctx.Done(); return nil }), crew.After("migrate"))
	go func() {
		<-g.Ready()
		for _, st := range g.Status() {
			fmt.Println(st.Name, st.State, st.Ready)
		}
		g.Stop(nil)
	}()
	_ = g.Run(context.Background())
	// Output:
	// migrate done true
	// server running true
}

// OnEvent sees every step of the group's life, for metrics or tests.
func ExampleGroup_events() {
	g := crew.Group{
		Logger: slog.New(slog.DiscardHandler),
		OnEvent: func(e crew.Event) {
			fmt.Println(strings.TrimSpace(e.Kind.String() + " " + e.Worker))
		},
	}
	g.Add("worker", crew.Func(func(ctx context.Context) error { <-ctx.Done(); return nil }))
	go func() {
		<-g.Ready()
		g.Stop(nil)
	}()
	_ = g.Run(context.Background())
	// Output:
	// Started worker
	// Ready worker
	// Stopping
	// Exited worker
}

// NewPanicError turns a recovered panic into the error type every crew
// package reports panics with.
func ExampleNewPanicError() {
	run := func() (err error) {
		defer func() {
			if v := recover(); v != nil {
				err = crew.NewPanicError(v)
			}
		}()
		panic("out of range")
	}
	err := run()
	var pe *crew.PanicError
	fmt.Println(errors.As(err, &pe), pe.Value, len(pe.Stack) > 0)
	// Output: true out of range true
}

// MainContext and Signals adapt Main to a program with its own root context
// or other signals; SignalSource and ExitFunc are for tests (see crewtest).
func ExampleMainContext() {
	type serviceKey struct{}
	ctx := context.WithValue(context.Background(), serviceKey{}, "billing")
	g := &crew.Group{}
	g.Add("worker", crew.Func(func(ctx context.Context) error { <-ctx.Done(); return nil }))
	crew.Main(g, crew.MainContext(ctx), crew.Signals(syscall.SIGTERM, syscall.SIGHUP))
}

// PassPanics lets a worker's panic crash the program, for a crash reporter
// or a core dump, instead of becoming a *PanicError.
func ExamplePassPanics() {
	g := &crew.Group{}
	g.Add("legacy", crew.Func(func(ctx context.Context) error {
		<-ctx.Done()
		return nil
	}), crew.PassPanics())
	crew.Main(g)
}
