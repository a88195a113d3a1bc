package crew_test

// Some behaviour can only be observed from outside a process: a real signal,
// and an exit code. These tests run the test binary again as a child with
// CREW_TEST_CHILD set, and runChild (called from TestMain) plays the child's
// part.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crewgo/crew"
)

const childEnv = "CREW_TEST_CHILD"

// runChild runs the child's scenario and exits if this process is a child.
func runChild() bool {
	scenario := os.Getenv(childEnv)
	if scenario == "" {
		return false
	}
	g := &crew.Group{StopTimeout: time.Minute, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	switch scenario {
	case "graceful":
		g.Add("worker", crew.Func(func(ctx context.Context) error {
			fmt.Println("ready")
			<-ctx.Done()
			var se *crew.SignalError
			if !errors.As(context.Cause(ctx), &se) {
				return fmt.Errorf("cause %v is not a *SignalError", context.Cause(ctx))
			}
			fmt.Println("stopped by", se.Signal)
			return nil
		}))
	case "stubborn":
		g.Add("worker", crew.Func(func(ctx context.Context) error {
			fmt.Println("ready")
			<-ctx.Done()
			fmt.Println("draining")
			select {} // a drain that never ends
		}))
	case "failing":
		g.Add("worker", crew.Func(func(ctx context.Context) error {
			return errors.New("cannot start")
		}))
	case "passpanics":
		g.Add("worker", crew.Func(func(ctx context.Context) error {
			panic("let it crash")
		}), crew.PassPanics())
	default:
		fmt.Fprintln(os.Stderr, "unknown scenario", scenario)
		os.Exit(3)
	}
	crew.Main(g)
	panic("crew.Main returned")
}

type child struct {
	cmd    *exec.Cmd
	lines  chan string
	stderr strings.Builder
}

func startChild(t *testing.T, scenario string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+scenario)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, lines: make(chan string, 16)}
	cmd.Stderr = &c.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	return c
}

func (c *child) expect(t *testing.T, want string) {
	t.Helper()
	if got := <-c.lines; got != want {
		t.Fatalf("child printed %q, want %q\nstderr:\n%s", got, want, c.stderr.String())
	}
}

func (c *child) exitCode(t *testing.T) int {
	t.Helper()
	for range c.lines {
	}
	err := c.cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

func TestMainExitsZeroAfterAGracefulSignalStop(t *testing.T) {
	c := startChild(t, "graceful")
	c.expect(t, "ready")
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	c.expect(t, "stopped by terminated")
	if code := c.exitCode(t); code != 0 {
		t.Fatalf("exit code %d, want 0\nstderr:\n%s", code, c.stderr.String())
	}
	if !strings.Contains(c.stderr.String(), `msg="worker stopped" worker=worker`) {
		t.Errorf("no log line for the worker's exit:\n%s", c.stderr.String())
	}
}

func TestMainSecondSignalExitsAtOnceWithCode1(t *testing.T) {
	c := startChild(t, "stubborn")
	c.expect(t, "ready")
	if err := c.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	c.expect(t, "draining")
	if err := c.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := c.exitCode(t); code != 1 {
		t.Fatalf("exit code %d, want 1\nstderr:\n%s", code, c.stderr.String())
	}
	if !strings.Contains(c.stderr.String(), "second signal") {
		t.Errorf("the immediate exit was not logged:\n%s", c.stderr.String())
	}
}

func TestMainExitsOneWhenAWorkerFails(t *testing.T) {
	c := startChild(t, "failing")
	if code := c.exitCode(t); code != 1 {
		t.Fatalf("exit code %d, want 1\nstderr:\n%s", code, c.stderr.String())
	}
	if !strings.Contains(c.stderr.String(), "cannot start") {
		t.Errorf("the failure was not logged:\n%s", c.stderr.String())
	}
}

func TestPassPanicsCrashesTheProcess(t *testing.T) {
	c := startChild(t, "passpanics")
	if code := c.exitCode(t); code != 2 {
		t.Fatalf("exit code %d, want 2 (the runtime's exit code for a panic)\nstderr:\n%s", code, c.stderr.String())
	}
	if !strings.Contains(c.stderr.String(), "panic: let it crash") {
		t.Errorf("stderr does not show the panic:\n%s", c.stderr.String())
	}
}
