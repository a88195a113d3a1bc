// Package cli measures the crew command against the tools people use for
// the same jobs, side by side in one run:
//
//   - crew run -j 8 against xargs -P 8 and GNU parallel -j 8, each running
//     2,000 `true` jobs, one per input line (BenchmarkRun; the time per
//     operation is the time for all 2,000 jobs). crew and GNU parallel
//     both print each job's output whole (their default), and crew also
//     runs with -k, which keeps the output in input order; xargs lets the
//     jobs write straight to its output;
//   - crew work -c 8 --post against a local no-op HTTP server, handling
//     2,000 messages from a fresh SQLite queue (BenchmarkWorkPost; the
//     metric is msgs/s).
//
// The crew binary is built once, without -race, from the workspace's
// cmd/crew. Tools that are not installed are skipped (GNU parallel is the
// Debian package "parallel").
//
//	go test -run '^$' -bench . -benchtime 5x -count 3 ./cli/ | tee cli.txt
//	benchstat -col /tool cli.txt
//
// run.sh beside this file runs the crew run comparison with hyperfine.
// Set CREW_BENCH_CLI_JOBS (else CREW_BENCH_QUEUE_JOBS, which CI sets) to
// run another number of jobs or messages.
package cli_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// jobs is how many jobs or messages one benchmark operation handles.
func jobs(b *testing.B) int {
	for _, name := range []string{"CREW_BENCH_CLI_JOBS", "CREW_BENCH_QUEUE_JOBS"} {
		if s := os.Getenv(name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				b.Fatalf("%s=%q: want a positive number", name, s)
			}
			return n
		}
	}
	return 2000
}

var (
	buildOnce sync.Once
	crewBin   string
	buildErr  error
	buildOut  []byte
)

// crew returns the path of a crew binary built for this run.
func crew(b *testing.B) string {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "crew-bench")
		if err != nil {
			buildErr = err
			return
		}
		crewBin = filepath.Join(dir, "crew")
		cmd := exec.Command("go", "build", "-o", crewBin, "github.com/crewgo/crew/cmd/crew")
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		b.Fatalf("go build cmd/crew: %v\n%s", buildErr, buildOut)
	}
	return crewBin
}

// lines returns "1\n2\n...n\n".
func lines(n int) []byte {
	var buf bytes.Buffer
	for i := 1; i <= n; i++ {
		buf.WriteString(strconv.Itoa(i))
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

// BenchmarkRun runs n `true` jobs, 8 at a time, with each tool.
func BenchmarkRun(b *testing.B) {
	input := lines(jobs(b))
	for _, tc := range []struct {
		tool string
		argv func() []string
	}{
		{"crew", func() []string { return []string{crew(b), "run", "-j", "8", "--", "true"} }},
		{"crew-keep-order", func() []string { return []string{crew(b), "run", "-j", "8", "-k", "--", "true"} }},
		{"xargs", func() []string { return []string{"xargs", "-P", "8", "-n", "1", "true"} }},
		{"parallel", func() []string { return []string{"parallel", "--will-cite", "-j", "8", "true"} }},
	} {
		b.Run("tool="+tc.tool, func(b *testing.B) {
			argv := tc.argv()
			if _, err := exec.LookPath(argv[0]); err != nil {
				b.Skipf("%s is not installed", argv[0])
			}
			for b.Loop() {
				cmd := exec.Command(argv[0], argv[1:]...)
				cmd.Stdin = bytes.NewReader(input)
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("%v: %v\n%s", argv, err, out)
				}
			}
		})
	}
}

// BenchmarkWorkPost handles n messages with crew work --post -c 8 against
// a no-op HTTP server. Filling the queue is not timed.
func BenchmarkWorkPost(b *testing.B) {
	n := jobs(b)
	bin := crew(b)
	var posts atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	input := lines(n)
	dir := b.TempDir()
	var handled int64
	i := 0
	for b.Loop() {
		b.StopTimer()
		i++
		q := "sqlite://" + filepath.Join(dir, strconv.Itoa(i)+".db")
		enqueue := exec.Command(bin, "enqueue", "--queue", q)
		enqueue.Stdin = bytes.NewReader(input)
		if out, err := enqueue.CombinedOutput(); err != nil {
			b.Fatalf("crew enqueue: %v\n%s", err, out)
		}
		before := posts.Load()
		b.StartTimer()

		work := exec.Command(bin, "work", "--queue", q, "-c", "8", "--post", srv.URL,
			"--exit-when-empty", "--status-every", "0")
		if out, err := work.CombinedOutput(); err != nil {
			b.Fatalf("crew work: %v\n%s", err, out)
		}

		b.StopTimer()
		if got := posts.Load() - before; got != int64(n) {
			b.Fatalf("the server got %d POSTs for %d messages", got, n)
		}
		handled += int64(n)
		b.StartTimer()
	}
	b.ReportMetric(float64(handled)/b.Elapsed().Seconds(), "msgs/s")
}
