package crew

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// MainOption configures [Main].
type MainOption func(*mainConfig)

type mainConfig struct {
	signals []os.Signal
	source  <-chan os.Signal
	exit    func(code int)
	ctx     context.Context
}

// Signals sets the signals that stop the group (default SIGINT and SIGTERM).
func Signals(sig ...os.Signal) MainOption {
	return func(c *mainConfig) { c.signals = sig }
}

// SignalSource makes Main read signals from ch instead of subscribing to the
// process's signals, so that a test can deliver a fake SIGTERM without
// signalling the test process. See crewtest.Main.
func SignalSource(ch <-chan os.Signal) MainOption {
	return func(c *mainConfig) { c.source = ch }
}

// ExitFunc replaces os.Exit as the function Main ends with. If it returns
// (as a test's replacement does), Main returns too.
func ExitFunc(exit func(code int)) MainOption {
	return func(c *mainConfig) { c.exit = exit }
}

// MainContext sets the context Main runs the group with (default
// context.Background()). Its values reach every worker; its end stops the
// group like a signal does, and with an exit code that depends only on the
// workers.
func MainContext(ctx context.Context) MainOption {
	return func(c *mainConfig) { c.ctx = ctx }
}

// Main runs g as a program's main loop and exits the process when it is
// done. The first SIGINT or SIGTERM stops the group gracefully: workers see a
// *[SignalError] as their context's cause, and since a signal is a normal way
// to stop, Run can still return nil. A second signal exits at once with code
// 1, without waiting for the drain. Main exits with code 0 when Run returned
// nil and 1 otherwise, after logging the error to the group's Logger. Every
// worker's exit is logged as one line by the group.
//
// Main does not return (unless [ExitFunc] replaces os.Exit).
func Main(g *Group, opts ...MainOption) {
	cfg := mainConfig{
		signals: []os.Signal{os.Interrupt, syscall.SIGTERM},
		exit:    os.Exit,
		ctx:     context.Background(),
	}
	for _, o := range opts {
		o(&cfg)
	}
	cfg.exit(runMain(g, &cfg))
}

func runMain(g *Group, cfg *mainConfig) int {
	log := g.logger()
	sigs := cfg.source
	if sigs == nil {
		ch := make(chan os.Signal, 2)
		signal.Notify(ch, cfg.signals...)
		defer signal.Stop(ch)
		sigs = ch
	}
	ctx, cancel := context.WithCancelCause(cfg.ctx)
	defer cancel(nil)

	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	var first os.Signal
	for {
		select {
		case err := <-done:
			if err != nil {
				log.Error("exiting", "err", err)
				return 1
			}
			log.Info("exiting")
			return 0
		case sig := <-sigs:
			if first == nil {
				first = sig
				log.Info("received signal, stopping; send it again to exit at once", "signal", sig.String())
				cancel(&SignalError{Signal: sig})
				continue
			}
			log.Error("received second signal, exiting at once", "signal", sig.String())
			return 1
		}
	}
}
