package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

const (
	testTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	testTracestate  = "congo=t61rcWkgMzE"
)

func TestEnqueueCarriesTheEnvironmentsTraceContextToTheCommand(t *testing.T) {
	dir := t.TempDir()
	queueURL := "sqlite://" + filepath.Join(dir, "crew.db")
	enq := newTestApp(t, map[string]string{"TRACEPARENT": testTraceparent, "TRACESTATE": testTracestate})
	if code := enq.run([]string{"enqueue", "--queue", queueURL, "traced"}); code != exitOK {
		t.Fatalf("enqueue: exit %d", code)
	}
	plain := newTestApp(t, nil)
	if code := plain.run([]string{"enqueue", "--queue", queueURL, "untraced"}); code != exitOK {
		t.Fatalf("enqueue: exit %d", code)
	}

	// crew work's own trace context must not reach a message's command.
	out := filepath.Join(dir, "seen")
	work := newTestApp(t, map[string]string{"TRACEPARENT": "00-11111111111111111111111111111111-2222222222222222-01"})
	code := work.run([]string{"work", "--queue", queueURL, "--exit-when-empty", "--status-every", "0", "--",
		"sh", "-c", `echo "$(cat) ${TRACEPARENT:-none} ${TRACESTATE:-none}" >> ` + out})
	if code != exitOK {
		t.Fatalf("work: exit %d", code)
	}
	seen, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want := "traced " + testTraceparent + " " + testTracestate + "\nuntraced none none\n"
	if string(seen) != want {
		t.Errorf("commands saw:\n%s\nwant:\n%s", seen, want)
	}
}

func TestWorkPostsTheMessagesTraceContextAsW3CHeaders(t *testing.T) {
	dir := t.TempDir()
	queueURL := "sqlite://" + filepath.Join(dir, "crew.db")
	enq := newTestApp(t, map[string]string{"TRACEPARENT": testTraceparent})
	if code := enq.run([]string{"enqueue", "--queue", queueURL, "traced"}); code != exitOK {
		t.Fatalf("enqueue: exit %d", code)
	}
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("traceparent") + "|" + r.Header.Get("tracestate")
	}))
	defer srv.Close()
	work := newTestApp(t, nil)
	if code := work.run([]string{"work", "--queue", queueURL, "--exit-when-empty", "--status-every", "0", "--post", srv.URL}); code != exitOK {
		t.Fatalf("work: exit %d", code)
	}
	if h := <-got; h != testTraceparent+"|" {
		t.Errorf("headers %q, want the traceparent and no tracestate", h)
	}
}

func TestEnqueueIgnoresAMalformedTraceparent(t *testing.T) {
	for _, tp := range []string{
		"", "garbage", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
	} {
		if opts := traceOptions(func(k string) string { return map[string]string{"TRACEPARENT": tp, "TRACESTATE": "a=b"}[k] }); opts != nil {
			t.Errorf("TRACEPARENT=%q gave %d options, want none", tp, len(opts))
		}
	}
	if opts := traceOptions(func(k string) string { return map[string]string{"TRACEPARENT": " " + testTraceparent + "\n"}[k] }); len(opts) != 1 {
		t.Errorf("a valid traceparent gave %d options, want 1", len(opts))
	}
}
