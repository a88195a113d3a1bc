package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/crewgo/crew"
	"github.com/crewgo/crew/queue"
)

func TestParseRateReadsPerSecondMinuteHourAndDurations(t *testing.T) {
	for in, want := range map[string]rate.Limit{
		"50/s":   50,
		"120/m":  2,
		"7200/h": 2,
		"1/10s":  0.1,
		"2.5/s":  2.5,
		"3/2m":   0.025,
	} {
		got, err := parseRate(in)
		if err != nil || got != want {
			t.Errorf("parseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "50", "/s", "x/s", "0/s", "-1/s", "inf/s", "1/", "1/0s", "1/-1s", "1/d"} {
		if _, err := parseRate(in); err == nil {
			t.Errorf("parseRate(%q) = nil error, want one", in)
		}
	}
}

func TestAttributesBecomeEnvironmentVariables(t *testing.T) {
	m := &queue.Message{Attributes: map[string]string{
		"tenant": "acme", "kind.of-job": "x y", "Ünïcode": "u", "nul": "a\x00b",
	}}
	got := attrEnv(m)
	want := []string{"CREW_ATTR_KIND_OF_JOB=x y", "CREW_ATTR_TENANT=acme", "CREW_ATTR__N_CODE=u"}
	if !slices.Equal(got, want) {
		t.Errorf("attrEnv = %q, want %q", got, want)
	}
}

// TestPostSendsCrewAndSqsdHeaders posts to a real server and checks the
// headers a handler written for crew, or for a Beanstalk worker, reads.
func TestPostSendsCrewAndSqsdHeaders(t *testing.T) {
	got := make(chan http.Header, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
	}))
	defer srv.Close()
	p := newPoster(srv.URL, 1)
	defer p.client.CloseIdleConnections()
	first := time.Date(2025, 3, 4, 5, 6, 7, 890_000_000, time.FixedZone("CET", 3600))
	m := &queue.Message{ID: "42", Attempt: 3, FirstReceived: first, Body: []byte("b"), Attributes: map[string]string{
		"tenant": "acme", "bad name": "skipped", "crlf": "a\r\nX-Injected: 1",
	}}
	if err := p.handle(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	h := <-got
	for name, want := range map[string]string{
		"X-Crew-Message-Id":            "42",
		"X-Crew-Attempt":               "3",
		"X-Crew-First-Received-At":     "2025-03-04T04:06:07.890Z",
		"X-Crew-Attr-Tenant":           "acme",
		"X-Aws-Sqsd-Msgid":             "42",
		"X-Aws-Sqsd-Receive-Count":     "3",
		"X-Aws-Sqsd-First-Received-At": "2025-03-04T04:06:07Z",
		"X-Aws-Sqsd-Attr-Tenant":       "acme",
		"X-Injected":                   "",
		"X-Crew-Attr-Crlf":             "",
	} {
		if v := h.Get(name); v != want {
			t.Errorf("header %s = %q, want %q", name, v, want)
		}
	}

	// A queue that cannot tell when a message was first received: no
	// first-received headers rather than a made-up time.
	m.FirstReceived = time.Time{}
	if err := p.handle(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	h = <-got
	for _, name := range []string{"X-Crew-First-Received-At", "X-Aws-Sqsd-First-Received-At"} {
		if v, ok := h[name]; ok {
			t.Errorf("header %s = %q for a message with no first-received time, want none", name, v)
		}
	}
}

func TestFirstReceivedEnvIsUTCToTheMillisecondOrEmpty(t *testing.T) {
	m := &queue.Message{FirstReceived: time.Date(2025, 3, 4, 23, 59, 59, 5_000_000, time.FixedZone("EST", -5*3600))}
	if got, want := firstReceivedEnv(m), "CREW_FIRST_RECEIVED_AT=2025-03-05T04:59:59.005Z"; got != want {
		t.Errorf("firstReceivedEnv = %q, want %q", got, want)
	}
	if got, want := firstReceivedEnv(&queue.Message{}), "CREW_FIRST_RECEIVED_AT="; got != want {
		t.Errorf("firstReceivedEnv of a message with no time = %q, want %q", got, want)
	}
}

func TestPermanentExitWrapsErrPermanentOnlyForItsCodes(t *testing.T) {
	p := permanentExit{65, 78}
	exit := errors.New("exit status 65")
	if err := p.wrap(65, exit); !errors.Is(err, crew.ErrPermanent) || !errors.Is(err, exit) {
		t.Errorf("wrap(65) = %v, want ErrPermanent and the exit error", err)
	}
	if err := p.wrap(3, exit); err != exit {
		t.Errorf("wrap(3) = %v, want the exit error alone", err)
	}
}

// TestLimitFlagsAreUsageErrors checks exit code 2 for limits that make no
// sense, before any queue is opened.
func TestLimitFlagsAreUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"work", "--rate", "fast", "--", "true"},
		{"work", "--burst", "2", "--", "true"},
		{"work", "--per-key", "2", "--", "true"},
		{"work", "--permanent-exit", "256", "--", "true"},
		{"enqueue", "--attr", "novalue", "x"},
	} {
		if code, stderr := runApp(t, dir, args...); code != exitUsage {
			t.Errorf("crew %q: exit %d, want %d; stderr: %s", args, code, exitUsage, stderr)
		}
	}
}

func TestLimitsReachTheConsumer(t *testing.T) {
	l := limits{rate: "10/s", burst: 3, key: "tenant", perKey: 2}
	if err := l.check(); err != nil {
		t.Fatal(err)
	}
	var c queue.Consumer
	l.apply(&c)
	if c.RateLimit.Limit() != 10 || c.RateLimit.Burst() != 3 || c.Key != "tenant" || c.PerKey != 2 {
		t.Errorf("consumer limits: %v/%d, %q, %d", c.RateLimit.Limit(), c.RateLimit.Burst(), c.Key, c.PerKey)
	}
}
