package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testApp is an in-process crew command whose signals a test sends.
type testApp struct {
	*app
	signals chan chan<- os.Signal // the channel crew work listens on
	stderr  string                // the file crew writes its stderr to
}

func newTestApp(t *testing.T, env map[string]string) *testApp {
	t.Helper()
	dir := t.TempDir()
	stdout, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdout.Close(); stderr.Close() })
	ta := &testApp{signals: make(chan chan<- os.Signal, 1), stderr: stderr.Name()}
	var environ []string
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	ta.app = &app{
		stdin:      strings.NewReader(""),
		stdout:     stdout,
		stderr:     stderr,
		getenv:     func(k string) string { return env[k] },
		environ:    func() []string { return append(os.Environ(), environ...) },
		notify:     func(c chan<- os.Signal, _ ...os.Signal) { ta.signals <- c },
		stopNotify: func(chan<- os.Signal) {},
	}
	return ta
}

// start runs the command in the background; the returned function sends
// it SIGINT and returns its exit code.
func (ta *testApp) start(t *testing.T, args ...string) (interrupt func() int) {
	t.Helper()
	code := make(chan int, 1)
	go func() { code <- ta.run(args) }()
	var sigs chan<- os.Signal
	select {
	case sigs = <-ta.signals:
	case c := <-code:
		out, _ := os.ReadFile(ta.stderr)
		t.Fatalf("crew %s exited with %d:\n%s", strings.Join(args, " "), c, out)
	}
	return func() int {
		sigs <- os.Interrupt
		return <-code
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// scrapeUntil gets url until every sample in want has its value, for up
// to 30 seconds, and returns the last page.
func scrapeUntil(t *testing.T, url string, want map[string]float64) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var page string
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			page = string(b)
			if missing := missingSamples(page, want); len(missing) == 0 {
				return page
			} else if time.Now().After(deadline) {
				t.Fatalf("%s never showed %v; last page:\n%s", url, missing, page)
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func missingSamples(page string, want map[string]float64) []string {
	var missing []string
	for sample, v := range want {
		re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`)
		m := re.FindStringSubmatch(page)
		if m == nil {
			missing = append(missing, sample)
			continue
		}
		if got, _ := strconv.ParseFloat(m[1], 64); got != v {
			missing = append(missing, fmt.Sprintf("%s=%v (is %s)", sample, v, m[1]))
		}
	}
	return missing
}

func TestWorkMetricsCountEveryMessageOnceTheyAreDone(t *testing.T) {
	const n = 6
	dir := t.TempDir()
	queueURL := "sqlite://" + filepath.Join(dir, "crew.db") + "?queue=mail"
	ta := newTestApp(t, nil)
	args := []string{"enqueue", "--queue", queueURL}
	for i := range n {
		args = append(args, fmt.Sprint("message ", i))
	}
	if code := ta.run(args); code != exitOK {
		t.Fatalf("enqueue: exit %d", code)
	}

	addr := freeAddr(t)
	interrupt := ta.start(t, "work", "--queue", queueURL, "--metrics", addr, "-c", "3", "--status-every", "0", "--", "sh", "-c", "cat >/dev/null")
	page := scrapeUntil(t, "http://"+addr+"/metrics", map[string]float64{
		`crew_queue_messages_total{outcome="succeeded",queue="mail"}`: n,
		`crew_queue_in_flight{queue="mail"}`:                          0,
		`crew_queue_depth{queue="mail",state="ready"}`:                0,
		`crew_queue_depth{queue="mail",state="leased"}`:               0,
	})
	if missing := missingSamples(page, map[string]float64{
		`crew_queue_messages_total{outcome="retried",queue="mail"}`: 0,
		`crew_queue_messages_total{outcome="dead",queue="mail"}`:    0,
		`crew_queue_handler_seconds_count{queue="mail"}`:            n,
		`crew_group_worker_up{group="crew-work",worker="consumer"}`: 1,
	}); len(missing) > 0 {
		t.Errorf("missing %v in:\n%s", missing, page)
	}
	if code := interrupt(); code != exitOK {
		out, _ := os.ReadFile(ta.stderr)
		t.Fatalf("crew work exited %d:\n%s", code, out)
	}
}

func TestWorkMetricsShareTheHealthServerWhenGivenItsAddress(t *testing.T) {
	dir := t.TempDir()
	ta := newTestApp(t, nil)
	addr := freeAddr(t)
	interrupt := ta.start(t, "work", "--queue", "sqlite://"+filepath.Join(dir, "crew.db"),
		"--health", addr, "--metrics", addr, "--status-every", "0", "--", "true")
	scrapeUntil(t, "http://"+addr+"/metrics", map[string]float64{`crew_queue_in_flight{queue="default"}`: 0})
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz beside /metrics: %v %v", resp, err)
	}
	if resp != nil {
		resp.Body.Close()
	}
	if code := interrupt(); code != exitOK {
		t.Fatalf("crew work exited %d", code)
	}
}

func TestWorkMetricsAnswerThroughoutTheDrain(t *testing.T) {
	dir := t.TempDir()
	queueURL := "sqlite://" + filepath.Join(dir, "crew.db")
	ta := newTestApp(t, nil)
	if code := ta.run([]string{"enqueue", "--queue", queueURL, "slow"}); code != exitOK {
		t.Fatalf("enqueue: exit %d", code)
	}
	started, finish := filepath.Join(dir, "started"), filepath.Join(dir, "finish")
	addr := freeAddr(t)
	code := make(chan int, 1)
	go func() {
		code <- ta.run([]string{"work", "--queue", queueURL, "--metrics", addr, "--status-every", "0", "--",
			"sh", "-c", "touch " + started + "; while [ ! -e " + finish + " ]; do sleep 0.02; done"})
	}()
	sigs := <-ta.signals
	scrapeUntil(t, "http://"+addr+"/metrics", map[string]float64{`crew_queue_in_flight{queue="default"}`: 1})
	sigs <- os.Interrupt
	// Draining: the command still runs, and the metrics say so.
	scrapeUntil(t, "http://"+addr+"/metrics", map[string]float64{
		`crew_queue_in_flight{queue="default"}`:                     1,
		`crew_group_worker_up{group="crew-work",worker="consumer"}`: 1,
	})
	if err := os.WriteFile(finish, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if c := <-code; c != exitOK {
		out, _ := os.ReadFile(ta.stderr)
		t.Fatalf("crew work exited %d:\n%s", c, out)
	}
}
