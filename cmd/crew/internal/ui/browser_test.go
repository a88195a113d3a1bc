package ui

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/crewgo/crew/cmd/crew/internal/backend"
)

// chromium returns the path of the Chromium to drive: $CREW_CHROMIUM, else
// /usr/bin/chromium (Debian's, which .ci/run installs), else one on PATH.
// Without one the test fails under CI and is skipped elsewhere.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("CREW_CHROMIUM"), "/usr/bin/chromium"} {
		if p != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no Chromium: .ci/run installs Debian's chromium package")
	}
	t.Skip("no Chromium: apt-get install -y chromium, or set CREW_CHROMIUM")
	return ""
}

// browse starts a headless Chromium of its own, with a fresh profile, and
// returns a context for chromedp actions that ends after a minute.
func browse(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 760),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelBrowser := chromedp.NewContext(allocCtx)
	ctx, cancelTimeout := context.WithTimeout(ctx, time.Minute)
	t.Cleanup(func() {
		cancelTimeout()
		cancelBrowser() // closes the browser and waits for it to exit
		cancelAlloc()
	})
	return ctx
}

func TestBrowserRedriveLowersTheDeadCount(t *testing.T) {
	open := store(t)
	ids := fill(t, open("emails"), 1, "to: ada@example.com", "to: grace@example.com", "\x00\x01binary")
	fill(t, open("thumbnails"), 3)
	_, ts := newServer(t, open, "emails", Options{Title: "sqlite://crew.db?queue=emails"})
	ctx := browse(t)

	deadCell := `tr[data-queue="emails"] td.dead`
	err := chromedp.Do(ctx,
		chromedp.Navigate(ts.URL),
		chromedp.WaitVisible(chromedp.CSS(`#dead-letters tr[data-id="`+ids[0]+`"] button.redrive-one`)),
	)
	if err != nil {
		t.Fatalf("load the page: %v", err)
	}
	shown, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`({
		dead: document.querySelector('`+deadCell+`').textContent,
		ready: document.querySelector('tr[data-queue="emails"] td.ready').textContent,
		thumbnails: document.querySelector('tr[data-queue="thumbnails"] td.ready').textContent,
		rows: String(document.querySelectorAll('#dead-letters tbody tr').length),
		hex: document.querySelector('#dead-letters tr[data-id="`+ids[2]+`"] .preview').textContent,
	})`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"dead": "3", "ready": "1", "thumbnails": "3", "rows": "3", "hex": "00 01 62 69 6e 61 72 79"}
	for k, v := range want {
		if shown[k] != v {
			t.Errorf("page shows %s %q, want %q", k, shown[k], v)
		}
	}

	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#dead-letters tr[data-id="`+ids[0]+`"] button.redrive-one`)),
		chromedp.Poll[chromedp.Void](`document.querySelector('`+deadCell+`').textContent === "2" &&
			document.querySelector('tr[data-queue="emails"] td.ready').textContent === "2" &&
			document.querySelectorAll('#dead-letters tbody tr').length === 2`, chromedp.WithPollingTimeout(20*time.Second)),
	)
	if err != nil {
		t.Fatalf("after clicking Redrive, the dead count did not fall to 2: %v", err)
	}
	if st, err := open("emails").Stats(context.Background(), "emails"); err != nil || st.Dead != 2 || st.Ready != 2 {
		t.Errorf("store after the click: %+v %v, want 2 dead, 2 ready", st, err)
	}

	// Redrive selected, then all: the list empties.
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#dead-letters tr[data-id="`+ids[1]+`"] input`)),
		chromedp.Click(chromedp.CSS(`#redrive-selected`)),
		chromedp.Poll[chromedp.Void](`document.querySelector('`+deadCell+`').textContent === "1"`, chromedp.WithPollingTimeout(20*time.Second)),
		chromedp.Click(chromedp.CSS(`#redrive-all`)),
		chromedp.Poll[chromedp.Void](`document.querySelector('`+deadCell+`').textContent === "0" && !document.querySelector('#no-dead').hidden`, chromedp.WithPollingTimeout(20*time.Second)),
	)
	if err != nil {
		t.Fatalf("redrive selected, then all: %v", err)
	}
	if st, err := open("emails").Stats(context.Background(), "emails"); err != nil || st.Dead != 0 || st.Ready != 4 {
		t.Errorf("store after redriving all: %+v %v, want 0 dead, 4 ready", st, err)
	}

	if path := os.Getenv("CREW_UI_SCREENSHOT"); path != "" {
		fill(t, open("emails"), 0, "to: grace@example.com", "\x00\x01binary")
		screenshot(t, ctx, open, path)
	}
}

// screenshot fills the page with a queue that drains, sampled as the server
// does (at two-second steps), and saves a picture of it to path.
func screenshot(t *testing.T, ctx context.Context, open func(string) backend.Backend, path string) {
	t.Helper()
	q := open("thumbnails")
	fill(t, q, 400)
	s, ts := newServer(t, open, "emails", Options{Title: "sqlite://crew.db?queue=emails"})
	bg := context.Background()
	start := time.Now().Add(-3 * time.Minute)
	for i := range 90 {
		n := max(1, 7-i/15) + i%3 // a drain that slows down
		rctx, cancel := context.WithTimeout(bg, 100*time.Millisecond)
		if msgs, err := q.Receive(rctx, n, time.Minute); err == nil && len(msgs) > 0 {
			_ = q.Ack(bg, msgs...)
		}
		cancel()
		if i == 40 {
			fill(t, q, 120)
		}
		s.Sample(bg, start.Add(time.Duration(i)*2*time.Second))
	}
	err := chromedp.Do(ctx,
		chromedp.Navigate(ts.URL),
		chromedp.WaitVisible(chromedp.CSS(`#dead-letters tbody tr`)),
		chromedp.Click(chromedp.CSS(`#dead-letters tbody tr:first-child input`)),
	)
	if err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Clean(path), png, 0o644); err != nil {
		t.Fatal(err)
	}
}
