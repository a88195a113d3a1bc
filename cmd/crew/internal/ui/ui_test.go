package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/crewgo/crew/cmd/crew/internal/backend"
	_ "github.com/crewgo/crew/cmd/crew/internal/backend/sqlitequeue"
	"github.com/crewgo/crew/queue"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// store opens a fresh SQLite store and returns its queue name and a
// function that opens any queue of it.
func store(t *testing.T) func(name string) backend.Backend {
	t.Helper()
	path := filepath.Join(t.TempDir(), "crew.db")
	return func(name string) backend.Backend {
		b, err := backend.Open(context.Background(), "sqlite://"+path+"?queue="+name, true)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
}

// deadPriority grows with every dead letter fill makes, so that Receive
// takes it before the ready messages of earlier calls, redriven ones too.
var deadPriority atomic.Int64

// fill publishes ready messages and dead letters (with reason) to q, and
// returns the dead letters' IDs.
func fill(t *testing.T, q backend.Backend, ready int, dead ...string) []string {
	t.Helper()
	return fillWith(t, q, true, ready, dead...)
}

// fillWith is fill, with priorities or, for a fresh queue of a backend
// that has none, without: the dead letters are then the oldest messages.
func fillWith(t *testing.T, q backend.Backend, prioritize bool, ready int, dead ...string) []string {
	t.Helper()
	ctx := context.Background()
	var ids []string
	for _, body := range dead {
		var opts []queue.PublishOption
		if prioritize {
			opts = append(opts, queue.Priority(int(deadPriority.Add(1))+1000))
		}
		id, err := q.Publish(ctx, []byte(body), opts...)
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := q.Receive(ctx, 1, time.Minute)
		if err != nil || len(msgs) != 1 || msgs[0].ID != id {
			t.Fatalf("Receive: %v %v, want message %s", msgs, err, id)
		}
		if err := q.DeadLetter(ctx, msgs[0], errors.New("smtp: 550 no such mailbox")); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for range ready {
		if _, err := q.Publish(ctx, []byte("ready")); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

func newServer(t *testing.T, open func(string) backend.Backend, main string, opts Options) (*Server, *httptest.Server) {
	t.Helper()
	if opts.Open == nil {
		opts.Open = func(_ context.Context, name string) (backend.Backend, error) { return open(name), nil }
	}
	opts.Logger = slog.New(slog.DiscardHandler)
	s := New(open(main), opts)
	ts := httptest.NewServer(s)
	t.Cleanup(func() { ts.Close(); s.Close() })
	return s, ts
}

func get[T any](t *testing.T, url string) T {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	var v T
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// post sends a state-changing request as the page does, with header
// changes applied.
func post(t *testing.T, s *Server, url, body string, change func(http.Header)) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Crew-Token", s.token)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	if change != nil {
		change(req.Header)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func counts(t *testing.T, base string) map[string][4]int {
	t.Helper()
	o := get[overview](t, base+"/api/overview")
	out := map[string][4]int{}
	for _, q := range o.Queues {
		out[q.Name] = [4]int{q.Ready, q.Leased, q.Delayed, q.Dead}
	}
	return out
}

func TestOverviewCountsEveryQueueOfTheStore(t *testing.T) {
	open := store(t)
	fill(t, open("emails"), 2, "a", "b")
	fill(t, open("thumbnails"), 3)
	_, ts := newServer(t, open, "empty", Options{Title: "sqlite://crew.db"})

	o := get[overview](t, ts.URL+"/api/overview")
	if o.Queue != "empty" || o.Title != "sqlite://crew.db" || o.ReadOnly {
		t.Errorf("overview %+v", o)
	}
	want := map[string][4]int{"emails": {2, 0, 0, 2}, "empty": {0, 0, 0, 0}, "thumbnails": {3, 0, 0, 0}}
	if got := counts(t, ts.URL); len(got) != 3 || got["emails"] != want["emails"] || got["empty"] != want["empty"] || got["thumbnails"] != want["thumbnails"] {
		t.Errorf("counts %v, want %v", got, want)
	}
}

func TestDeadLettersShowReasonAttemptsAndATextOrHexPreview(t *testing.T) {
	open := store(t)
	ids := fill(t, open("emails"), 0, "to: ada@example.com", "\x00\x01binary\xff")
	_, ts := newServer(t, open, "emails", Options{})
	d := get[struct {
		Total    int        `json:"total"`
		Messages []deadView `json:"messages"`
	}](t, ts.URL+"/api/queues/emails/dead")
	if d.Total != 2 || len(d.Messages) != 2 {
		t.Fatalf("dead %+v, want two", d)
	}
	text, bin := d.Messages[0], d.Messages[1]
	if text.ID != ids[0] || text.Reason != "smtp: 550 no such mailbox" || text.Attempts != 1 || text.Kind != "text" || text.Preview != "to: ada@example.com" || time.Since(text.At) > time.Minute {
		t.Errorf("text dead letter %+v", text)
	}
	if bin.Kind != "hex" || bin.Preview != "00 01 62 69 6e 61 72 79 ff" || bin.Size != 9 {
		t.Errorf("binary dead letter %+v", bin)
	}
}

func TestPreviewOfALongBinaryBodyIsHex(t *testing.T) {
	body := bytes.Repeat([]byte{0xff}, previewBytes+40)
	preview, kind := previewOf(body)
	if want := strings.TrimSpace(strings.Repeat("ff ", previewBytes/2)); kind != "hex" || preview != want {
		t.Errorf("preview %q (%s), want %q (hex)", preview, kind, want)
	}
}

func TestPreviewCutsLongTextOnARuneBoundary(t *testing.T) {
	body := strings.Repeat("é", previewBytes) // two bytes each
	preview, kind := previewOf([]byte(body))
	if kind != "text" || preview != strings.Repeat("é", previewBytes/2) {
		t.Errorf("preview %q (%s)", preview, kind)
	}
}

func TestRedriveOneSelectedAllAndPurge(t *testing.T) {
	open := store(t)
	q := open("emails")
	ids := fill(t, q, 0, "1", "2", "3", "4", "5", "6")
	s, ts := newServer(t, open, "emails", Options{})
	api := ts.URL + "/api/queues/emails/"
	step := func(path, body, key string, n float64, ready, dead int) {
		t.Helper()
		code, out := post(t, s, api+path, body, nil)
		if code != 200 || out[key] != n {
			t.Fatalf("%s %s: %d %v, want %s=%v", path, body, code, out, key, n)
		}
		if got := counts(t, ts.URL)["emails"]; got[0] != ready || got[3] != dead {
			t.Errorf("after %s %s: %d ready, %d dead; want %d, %d", path, body, got[0], got[3], ready, dead)
		}
	}
	step("redrive", `{"ids":["`+ids[0]+`"]}`, "moved", 1, 1, 5)
	step("redrive", `{"ids":["`+ids[1]+`","`+ids[2]+`","999"]}`, "moved", 2, 3, 3)
	step("redrive", `{"all":true}`, "moved", 3, 6, 0)
	fill(t, q, 0, "7", "8")
	step("purge", `{}`, "purged", 2, 6, 0)
}

func TestManagesTheDeadLettersOfAnotherQueueOfTheStore(t *testing.T) {
	open := store(t)
	fill(t, open("thumbnails"), 0, "a.jpg", "b.jpg")
	s, ts := newServer(t, open, "emails", Options{})
	if code, out := post(t, s, ts.URL+"/api/queues/thumbnails/redrive", `{"all":true}`, nil); code != 200 || out["moved"] != 2.0 {
		t.Fatalf("redrive: %d %v", code, out)
	}
	if got := counts(t, ts.URL)["thumbnails"]; got != [4]int{2, 0, 0, 0} {
		t.Errorf("thumbnails %v, want 2 ready", got)
	}
}

func TestChangesOnlyFromThePageItself(t *testing.T) {
	open := store(t)
	fill(t, open("emails"), 0, "a")
	s, ts := newServer(t, open, "emails", Options{})
	url := ts.URL + "/api/queues/emails/redrive"
	for _, tc := range []struct {
		name   string
		change func(http.Header)
		want   int
	}{
		{"no token", func(h http.Header) { h.Del("X-Crew-Token") }, http.StatusForbidden},
		{"wrong token", func(h http.Header) { h.Set("X-Crew-Token", strings.Repeat("0", 64)) }, http.StatusForbidden},
		{"cross-site", func(h http.Header) { h.Set("Sec-Fetch-Site", "cross-site") }, http.StatusForbidden},
		{"other origin", func(h http.Header) { h.Del("Sec-Fetch-Site"); h.Set("Origin", "https://evil.example") }, http.StatusForbidden},
		{"form post", func(h http.Header) { h.Set("Content-Type", "application/x-www-form-urlencoded") }, http.StatusUnsupportedMediaType},
		{"bad body", nil, http.StatusBadRequest},
	} {
		body := `{"all":true}`
		if tc.name == "bad body" {
			body = `{"ids":[],"all":false}`
		}
		if code, _ := post(t, s, url, body, tc.change); code != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, code, tc.want)
		}
	}
	if got := counts(t, ts.URL)["emails"][3]; got != 1 {
		t.Errorf("%d dead letters after refused requests, want 1", got)
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET redrive: %s, want 405", resp.Status)
	}
}

func TestReadOnlyRefusesChangesAndGivesThePageNoToken(t *testing.T) {
	open := store(t)
	fill(t, open("emails"), 0, "a")
	s, ts := newServer(t, open, "emails", Options{ReadOnly: true})
	for _, path := range []string{"redrive", "purge"} {
		if code, _ := post(t, s, ts.URL+"/api/queues/emails/"+path, `{"all":true}`, nil); code != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", path, code)
		}
	}
	page := getText(t, ts.URL+"/")
	if strings.Contains(page, s.token) || !strings.Contains(page, `class="read-only"`) {
		t.Errorf("read-only page holds the token or lacks the read-only class:\n%s", page)
	}
	if !get[overview](t, ts.URL+"/api/overview").ReadOnly {
		t.Error("overview does not say read-only")
	}
}

func getText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return string(b)
}

func TestPageAndAssetsAreEmbedded(t *testing.T) {
	open := store(t)
	s, ts := newServer(t, open, "emails", Options{Title: "sqlite://crew.db"})
	page := getText(t, ts.URL+"/")
	for _, want := range []string{`<meta name="crew-token" content="` + s.token + `">`, "sqlite://crew.db", `src="/assets/app.js"`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, asset := range []string{"/assets/app.js", "/assets/app.css"} {
		if body := getText(t, ts.URL+asset); len(body) < 500 {
			t.Errorf("%s: %d bytes", asset, len(body))
		}
	}
	resp, err := http.Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
}

func TestRequestsByAnUnknownHostNameAreRefused(t *testing.T) {
	open := store(t)
	_, ts := newServer(t, open, "emails", Options{Hosts: []string{"crew.internal"}})
	for host, want := range map[string]int{
		"127.0.0.1:8080":        http.StatusOK,
		"[::1]:8080":            http.StatusOK,
		"localhost:8080":        http.StatusOK,
		"crew.internal:8080":    http.StatusOK,
		"evil.example:8080":     http.StatusMisdirectedRequest,
		"127.0.0.1.nip.io:8080": http.StatusMisdirectedRequest,
	} {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/api/overview", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %s: %s, want %d", host, resp.Status, want)
		}
	}
}

func TestSamplesGiveTheCompletedRateAndForgetOldOnes(t *testing.T) {
	open := store(t)
	q := open("emails")
	fill(t, q, 10)
	s, ts := newServer(t, open, "emails", Options{Keep: time.Minute})
	ctx := context.Background()
	t0 := time.Now()
	s.Sample(ctx, t0)
	msgs, err := q.Receive(ctx, 4, time.Minute)
	if err != nil || len(msgs) != 4 {
		t.Fatalf("Receive: %v %v", msgs, err)
	}
	if err := q.Ack(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	s.Sample(ctx, t0.Add(2*time.Second))
	// Dead letters purged here are not completions.
	fill(t, q, 0, "dead")
	s.Sample(ctx, t0.Add(4*time.Second))
	if code, _ := post(t, s, ts.URL+"/api/queues/emails/purge", `{}`, nil); code != 200 {
		t.Fatalf("purge: %d", code)
	}
	s.Sample(ctx, t0.Add(6*time.Second))

	h := s.samples("emails")
	var rates []float64
	for _, p := range h {
		rates = append(rates, p.Rate)
	}
	if want := []float64{0, 2, 0, 0}; len(rates) != 4 || rates[1] != want[1] || rates[2] != 0 || rates[3] != 0 {
		t.Errorf("rates %v, want %v", rates, want)
	}
	s.Sample(ctx, t0.Add(2*time.Minute))
	if h := s.samples("emails"); len(h) != 1 {
		t.Errorf("%d samples kept after Keep, want 1", len(h))
	}
}

func TestRunSamplesUntilItsContextEnds(t *testing.T) {
	open := store(t)
	fill(t, open("emails"), 1)
	s, _ := newServer(t, open, "emails", Options{Every: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	for deadline := time.Now().Add(10 * time.Second); len(s.samples("emails")) < 3; {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("Run took %d samples in 10s at 1ms intervals, want 3", len(s.samples("emails")))
		}
		time.Sleep(time.Millisecond) // polling a condition
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// TestOpeningAQueueHoldsUpNoSample checks that a slow Open of another queue
// of the store (a server far away) holds up only the request that needs
// it, not the sampling of the counts.
func TestOpeningAQueueHoldsUpNoSample(t *testing.T) {
	open := store(t)
	entered, release := make(chan struct{}), make(chan struct{})
	s, ts := newServer(t, open, "emails", Options{Open: func(_ context.Context, name string) (backend.Backend, error) {
		close(entered)
		<-release
		return open(name), nil
	}})
	slow := make(chan struct{})
	go func() {
		defer close(slow)
		if resp, err := http.Get(ts.URL + "/api/queues/reports/dead"); err == nil {
			resp.Body.Close()
		}
	}()
	<-entered
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		s.Sample(context.Background(), time.Now())
	}()
	select {
	case <-sampled:
	case <-time.After(10 * time.Second): // a wide margin: the sample takes milliseconds
		t.Error("Sample waited for another queue's Open")
	}
	close(release)
	<-slow
	<-sampled
}
