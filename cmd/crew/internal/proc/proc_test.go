package proc

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain also plays the helper processes of the guard's tests: the
// guardian, and an owner of guarded children that the tests kill.
func TestMain(m *testing.M) {
	switch os.Args[len(os.Args)-1] {
	case guardianRole:
		ServeGuard(os.Stdin)
		os.Exit(0)
	case deafGuardianRole:
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	case ownerRole:
		beOwner(guardianRole)
		os.Exit(1)
	case deafOwnerRole:
		beOwner(deafGuardianRole)
		os.Exit(1)
	}
	// The goroutine that starts guarded children lives as long as the
	// process, by design.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/crewgo/crew/cmd/crew/internal/proc.runStarter"))
}

// start runs sh -c script with its stdout on a pipe, and returns the
// process and a reader of that output.
func start(t *testing.T, script string, input []byte) (*Process, *bufio.Reader) {
	t.Helper()
	sh, err := LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p, err := Start(Spec{Path: sh, Args: []string{"sh", "-c", script}, Input: input, Stdout: w})
	w.Close()
	if err != nil {
		r.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return p, bufio.NewReader(r)
}

func readLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the child's output: %v", err)
	}
	return strings.TrimSpace(line)
}

func TestChildRunsInAProcessGroupOfItsOwn(t *testing.T) {
	p, out := start(t, `echo ready; read x`, nil)
	readLine(t, out)
	pgid, err := syscall.Getpgid(p.PID())
	if err != nil {
		t.Fatal(err)
	}
	if pgid != p.PID() || pgid == syscall.Getpgrp() {
		t.Errorf("child's process group %d; want its own PID %d, not ours (%d)", pgid, p.PID(), syscall.Getpgrp())
	}
	p.Stop(time.Minute)
	if _, err := p.Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestInputIsTheChildsStdin(t *testing.T) {
	p, out := start(t, `cat`, []byte("the body\n"))
	if got := readLine(t, out); got != "the body" {
		t.Errorf("child read %q", got)
	}
	exit, err := p.Wait()
	if err != nil || !exit.Success() {
		t.Errorf("Wait: %+v, %v", exit, err)
	}
}

func TestChildThatIgnoresLargeInputDoesNotBlockWait(t *testing.T) {
	p, _ := start(t, `exit 0`, bytes.Repeat([]byte("x"), 1<<20))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := p.Wait(); err != nil {
			t.Error(err)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.Kill()
		<-done
		t.Fatal("Wait blocked on input that the child never read")
	}
}

func TestExitReportsStatusAndSignal(t *testing.T) {
	p, _ := start(t, `exit 3`, nil)
	exit, err := p.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if exit.Code != 3 || exit.Signal != 0 || exit.Success() || exit.Err().Error() != "exit status 3" {
		t.Errorf("exit 3 reported as %+v (%v)", exit, exit.Err())
	}

	p, _ = start(t, `kill -KILL $$`, nil)
	if exit, err = p.Wait(); err != nil {
		t.Fatal(err)
	}
	if exit.Code != -1 || exit.Signal != syscall.SIGKILL || exit.Err().Error() != "killed by signal killed" {
		t.Errorf("SIGKILL reported as %+v (%v)", exit, exit.Err())
	}
}

// TestStopTerminatesTheWholeGroup starts a shell that starts a sleep in the
// background; Stop must end both, with SIGTERM.
func TestStopTerminatesTheWholeGroup(t *testing.T) {
	p, out := start(t, `sleep 60 & echo $!; wait`, nil)
	grandchild, err := strconv.Atoi(readLine(t, out))
	if err != nil {
		t.Fatal(err)
	}
	p.Stop(time.Minute)
	exit, err := p.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if exit.Signal != syscall.SIGTERM {
		t.Errorf("child ended with %+v, want SIGTERM", exit)
	}
	waitGone(t, grandchild)
}

// waitGone waits until pid has exited (it may linger as a zombie until its
// new parent reaps it).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil || strings.Contains(string(stat), ") Z ") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d still runs: %s", pid, stat)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStopKillsAGroupThatIgnoresSigterm(t *testing.T) {
	p, out := start(t, `trap "" TERM; echo ready; sleep 60`, nil)
	readLine(t, out)
	start := time.Now()
	p.Stop(200 * time.Millisecond)
	exit, err := p.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if exit.Signal != syscall.SIGKILL {
		t.Errorf("child ended with %+v, want SIGKILL", exit)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("SIGKILL came after %v, before the 200ms grace", d)
	}
}

// TestStopAfterTheGroupEndedArmsNoKill checks that a Stop after the child
// and its group are gone signals nothing, so that it can never reach a
// process group that reuses the ID.
func TestStopAfterTheGroupEndedArmsNoKill(t *testing.T) {
	p, _ := start(t, `exit 0`, nil)
	if _, err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	p.Stop(time.Millisecond)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.kill != nil {
		t.Error("Stop armed a SIGKILL for a group that had ended")
	}
}

func TestLookPathSaysWhyACommandCannotRun(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/plain", []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"no-such-command-here": `command "no-such-command-here" not found`,
		dir + "/missing":       `command "` + dir + `/missing" not found`,
		dir + "/plain":         `command "` + dir + `/plain" is not executable`,
	} {
		if _, err := LookPath(name); err == nil || err.Error() != want {
			t.Errorf("LookPath(%q) = %v, want %q", name, err, want)
		}
	}
	if path, err := LookPath("sh"); err != nil || !strings.HasSuffix(path, "/sh") {
		t.Errorf("LookPath(sh) = %q, %v", path, err)
	}
}
