package proc

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The last argument that makes the test binary a helper process.
const (
	guardianRole     = "crew-proc-test-guardian"
	deafGuardianRole = "crew-proc-test-deaf-guardian" // ends nothing
	ownerRole        = "crew-proc-test-owner"
	deafOwnerRole    = "crew-proc-test-deaf-owner" // guarded by a deaf guardian
)

// startGuard starts the test binary as a guardian.
func startGuard(t *testing.T) *Guard {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return NewGuard(exe, []string{exe, guardianRole})
}

// beOwner starts a guardian (the test binary in role) and a guarded
// `sh -c 'sleep 30 & ...; wait'`, prints the PIDs of the guardian, the
// shell and the sleep, one per line, then waits to be killed.
func beOwner(role string) {
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	g := NewGuard(exe, []string{exe, role})
	r, w, err := os.Pipe()
	if err != nil {
		panic(err)
	}
	p, err := Start(Spec{Path: "/bin/sh", Args: []string{"sh", "-c", "sleep 30 & echo $!; wait"}, Stdout: w, Guard: g})
	if err != nil {
		panic(err)
	}
	sleep, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		panic(err)
	}
	fmt.Printf("%d\n%d\n%s", g.guardian.Pid, p.PID(), sleep)
	select {}
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	return err == nil && !strings.Contains(string(stat), ") Z ")
}

// TestGuardEndsTheGroupsOfAKilledOwner kills, with SIGKILL, a process that
// runs a guarded shell whose sleep is its grandchild: the shell, the sleep
// and the guardian must all end within a few seconds.
func TestGuardEndsTheGroupsOfAKilledOwner(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	pids := killOwner(t, ownerRole)
	for i, name := range []string{"guardian", "shell", "sleep"} {
		if !waitDead(pids[i], 5*time.Second) {
			t.Errorf("the %s (PID %d) outlived its owner by 5s", name, pids[i])
			_ = syscall.Kill(pids[i], syscall.SIGKILL)
		}
	}
}

// TestGuardedChildGetsAParentDeathSignal kills the owner of a guarded child
// whose guardian ends nothing: the parent-death signal, which covers the
// moment before the guardian hears of a child, must end the child alone.
func TestGuardedChildGetsAParentDeathSignal(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("a parent-death signal is Linux's")
	}
	pids := killOwner(t, deafOwnerRole)
	defer syscall.Kill(pids[2], syscall.SIGKILL) // the sleep: nothing ends it
	if !waitDead(pids[1], 5*time.Second) {
		_ = syscall.Kill(pids[1], syscall.SIGKILL)
		t.Errorf("the shell (PID %d) outlived its owner by 5s", pids[1])
	}
}

// killOwner starts the test binary as an owner in role, kills it with
// SIGKILL once its child runs, and returns the PIDs it printed: its
// guardian's, its shell's and the shell's sleep's.
func killOwner(t *testing.T, role string) [3]int {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	owner := exec.Command(exe, role)
	out, err := owner.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := owner.Start(); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(out)
	var pids [3]int // guardian, shell, sleep
	for i := range pids {
		if pids[i], err = strconv.Atoi(readLine(t, br)); err != nil {
			owner.Process.Kill()
			owner.Wait()
			t.Fatal(err)
		}
	}
	if err := owner.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	owner.Wait()
	return pids
}

// waitDead polls until pid no longer runs, and reports whether it stopped
// within d.
func waitDead(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for alive(pid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

func TestGuardStartsNoGuardianBeforeItsFirstChild(t *testing.T) {
	g := NewGuard("/nonexistent/guardian", []string{"guardian"})
	if err := g.Close(); err != nil {
		t.Errorf("Close of an unused guard: %v", err)
	}
	g = NewGuard("/nonexistent/guardian", []string{"guardian"})
	if p, err := Start(Spec{Path: "/bin/sh", Args: []string{"sh", "-c", "sleep 30"}, Guard: g}); err == nil {
		p.Kill()
		p.Wait()
		t.Fatal("Start ran a child whose guardian could not start")
	}
}

func TestGuardCloseEndsRunningChildren(t *testing.T) {
	g := startGuard(t)
	p, out := startWithGuard(t, g, `echo ready; sleep 30`)
	readLine(t, out)
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	exit, err := p.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if exit.Signal != syscall.SIGTERM {
		t.Errorf("guarded child ended with %+v, want SIGTERM", exit)
	}
}

func TestGuardKillsAGroupThatIgnoresSigterm(t *testing.T) {
	g := startGuard(t)
	p, out := startWithGuard(t, g, `trap "" TERM; echo ready; sleep 30`)
	readLine(t, out)
	start := time.Now()
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	exit, err := p.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if exit.Signal != syscall.SIGKILL {
		t.Errorf("guarded child ended with %+v, want SIGKILL", exit)
	}
	if d := time.Since(start); d < GuardGrace {
		t.Errorf("SIGKILL came after %v, before the grace of %v", d, GuardGrace)
	}
}

func TestGuardForgetsAChildOnceItExited(t *testing.T) {
	g := startGuard(t)
	defer g.Close()
	// A command that leaves a process behind in its group: once the
	// command has exited, the guard is not to end its group.
	p, out := startWithGuard(t, g, `sleep 30 & echo $!`)
	left, err := strconv.Atoi(readLine(t, out))
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(left, syscall.SIGKILL)
	if _, err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if !alive(left) {
		t.Error("the guard ended the group of a command that had exited")
	}
}

func TestGuardedStartFailsOnceTheGuardIsClosed(t *testing.T) {
	g := startGuard(t)
	p, _ := startWithGuard(t, g, `exit 0`)
	if _, err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	g.Close()
	if p, err := Start(Spec{Path: "/bin/sh", Args: []string{"sh", "-c", "sleep 30"}, Guard: g}); err == nil {
		p.Kill()
		p.Wait()
		t.Fatal("Start ran a child that nothing guards")
	}
}

// startWithGuard is start with a guard.
func startWithGuard(t *testing.T, g *Guard, script string) (*Process, *bufio.Reader) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p, err := Start(Spec{Path: "/bin/sh", Args: []string{"sh", "-c", script}, Stdout: w, Guard: g})
	w.Close()
	if err != nil {
		r.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return p, bufio.NewReader(r)
}

// BenchmarkGuardedStart measures what the guard adds to a child's start and
// wait: compare the two sub-benchmarks.
func BenchmarkGuardedStart(b *testing.B) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	for _, guarded := range []bool{false, true} {
		b.Run("guarded="+strconv.FormatBool(guarded), func(b *testing.B) {
			var g *Guard
			if guarded {
				g = NewGuard(exe, []string{exe, guardianRole})
				defer g.Close()
			}
			for b.Loop() {
				p, err := Start(Spec{Path: "/bin/true", Args: []string{"true"}, Guard: g})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := p.Wait(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
