package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runApp runs the command in-process, in dir, and returns its exit code and
// what it wrote on stderr.
func runApp(t *testing.T, dir string, args ...string) (int, string) {
	t.Helper()
	stdout, err := os.Create(filepath.Join(t.TempDir(), "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer stdout.Close()
	stderr, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	t.Chdir(dir)
	a := &app{
		stdin:      strings.NewReader(""),
		stdout:     stdout,
		stderr:     stderr,
		getenv:     func(string) string { return "" },
		environ:    os.Environ,
		notify:     func(chan<- os.Signal, ...os.Signal) {},
		stopNotify: func(chan<- os.Signal) {},
	}
	code := a.run(args)
	msg, err := os.ReadFile(stderr.Name())
	if err != nil {
		t.Fatal(err)
	}
	return code, string(msg)
}

// TestExitCodesTellUsageErrorsFromFailures checks the documented exit
// codes: 0 for success, 1 for a failure, 2 for a wrong command line.
func TestExitCodesTellUsageErrorsFromFailures(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "garbage.db"), []byte(strings.Repeat("not a database ", 20)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"--help"}, exitOK},
		{[]string{"enqueue", "--queue", "sqlite://ok.db", "x"}, exitOK},
		{[]string{"stats", "--queue", "sqlite://ok.db"}, exitOK},
		{[]string{"stats", "--queue", "sqlite://missing.db"}, exitFailure},
		{[]string{"run", "--", "true"}, exitOK},
		{[]string{"stats", "--queue", "sqlite://garbage.db"}, exitFailure},
		{[]string{"enqueue", "--queue", "sqlite://no/such/dir.db", "x"}, exitFailure},
		{[]string{"work", "--queue", "sqlite://garbage.db", "--", "true"}, exitFailure},
		{[]string{"stats", "--queue", "foo://x"}, exitUsage},
		{[]string{"stats", "--queue", "sqlite://x.db?bogus=1"}, exitUsage},
		{[]string{"work"}, exitUsage},
		{[]string{"work", "-c", "0", "--", "true"}, exitUsage},
		{[]string{"run", "-j", "-1", "--", "true"}, exitUsage},
		{[]string{"run"}, exitUsage},
		{[]string{"run", "--", "no-such-command-here"}, exitUsage},
		{[]string{"nope"}, exitUsage},
		{[]string{"stats", "--nope"}, exitUsage},
		{[]string{"dead"}, exitUsage},
		{[]string{"dead", "redrive"}, exitUsage},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, stderr := runApp(t, dir, tc.args...)
			if code != tc.want {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tc.want, stderr)
			}
			if tc.want != exitOK && strings.Count(stderr, "\n") != 1 {
				t.Errorf("stderr has %d lines, want one:\n%s", strings.Count(stderr, "\n"), stderr)
			}
		})
	}
}
