package crew_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/crewgo/crew"
)

// A cache refreshed every interval stops with the service, and a refresh in
// progress at the stop finishes instead of being cut off.
func ExampleEvery() {
	g := &crew.Group{Logger: slog.New(slog.DiscardHandler)}
	refreshes := 0
	g.Add("refresh", crew.Every(10*time.Millisecond, func(ctx context.Context) error {
		refreshes++
		fmt.Println("refresh", refreshes)
		if refreshes == 3 {
			g.Stop(nil) // in a service: SIGTERM, through crew.Main
		}
		return nil
	}))
	fmt.Println("Run:", g.Run(context.Background()))
	// Output:
	// refresh 1
	// refresh 2
	// refresh 3
	// Run: <nil>
}

// RunAtStart warms a cache as soon as the worker starts instead of one
// interval later.
func ExampleRunAtStart() {
	g := &crew.Group{Logger: slog.New(slog.DiscardHandler)}
	start := time.Now()
	g.Add("refresh", crew.Every(time.Hour, func(ctx context.Context) error {
		fmt.Println("first refresh within the hour:", time.Since(start) < time.Hour)
		g.Stop(nil)
		return nil
	}, crew.RunAtStart()))
	fmt.Println("Run:", g.Run(context.Background()))
	// Output:
	// first refresh within the hour: true
	// Run: <nil>
}

// A payment-reconciliation job runs every five minutes in every replica of a
// service. Jitter keeps the replicas from querying the payment provider at
// the same instant, and SkipMissed keeps a slow reconciliation from being
// followed at once by another.
func ExampleJitter() {
	reconcile := func(ctx context.Context) error { return nil } // compares the provider's ledger with ours
	g := &crew.Group{}
	g.Add("reconcile", crew.Every(5*time.Minute, reconcile, crew.Jitter(30*time.Second), crew.SkipMissed()))
	crew.Main(g)
}

// SkipMissed drops the ticks that a slow run overran: a report that takes
// ninety seconds on a one-minute interval runs every two minutes, instead of
// back to back.
func ExampleSkipMissed() {
	report := func(ctx context.Context) error { return nil } // ninety seconds on a busy day
	g := &crew.Group{}
	g.Add("report", crew.Every(time.Minute, report, crew.SkipMissed()))
	crew.Main(g)
}

// ContinueOnError logs a failed run and waits for the next tick, for work
// whose next run is the retry, such as polling an upstream that is sometimes
// down.
func ExampleContinueOnError() {
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // keep the output stable
			}
			return a
		},
	}))
	g := &crew.Group{Logger: slog.New(slog.DiscardHandler)}
	polls := 0
	g.Add("poll", crew.Every(10*time.Millisecond, func(ctx context.Context) error {
		polls++
		if polls == 3 {
			g.Stop(nil)
			return nil
		}
		return errors.New("upstream unavailable")
	}, crew.ContinueOnError(logger)))
	fmt.Println("Run:", g.Run(context.Background()), "after", polls, "polls")
	// Output:
	// level=ERROR msg="crew: periodic run failed" err="upstream unavailable"
	// level=ERROR msg="crew: periodic run failed" err="upstream unavailable"
	// Run: <nil> after 3 polls
}
