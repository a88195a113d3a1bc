package backend

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var errOpened = errors.New("opened")

// recorder registers scheme with params for the length of the test and
// returns the Requests its OpenFunc received.
func recorder(t *testing.T, scheme string, params ...string) *[]Request {
	t.Helper()
	var got []Request
	register(t, scheme, params, func(_ context.Context, r Request) (Backend, error) {
		got = append(got, r)
		return nil, errOpened
	})
	return &got
}

func TestOpenPassesTheRequestThrough(t *testing.T) {
	got := recorder(t, "test-dispatch", "queue", "mode")
	type key struct{}
	ctx := context.WithValue(t.Context(), key{}, "v")
	var seen context.Context
	register(t, "test-ctx", nil, func(ctx context.Context, _ Request) (Backend, error) {
		seen = ctx
		return nil, errOpened
	})
	if _, err := Open(ctx, "TEST-DISPATCH://host/path?queue=a%26b+c&mode=", true); !errors.Is(err, errOpened) {
		t.Fatalf("Open = %v, want the OpenFunc's error", err)
	}
	if _, err := Open(ctx, "test-ctx://x", false); !errors.Is(err, errOpened) {
		t.Fatalf("Open = %v, want the OpenFunc's error", err)
	}
	if len(*got) != 1 {
		t.Fatalf("OpenFunc called %d times", len(*got))
	}
	r := (*got)[0]
	if r.URL.Host != "host" || r.URL.Path != "/path" || !r.Create {
		t.Errorf("Request = %+v", r)
	}
	if len(r.Params) != 2 || r.Params["queue"] != "a&b c" || r.Params["mode"] != "" {
		t.Errorf("Params = %q", r.Params)
	}
	if seen == nil || seen.Value(key{}) != "v" {
		t.Errorf("the OpenFunc did not get Open's context")
	}
}

func TestOpenRejectsLooseURLs(t *testing.T) {
	got := recorder(t, "test-strict", "queue", "busy_timeout")
	for raw, want := range map[string]string{
		"test-strict:///x.db?queue=emails;v2":       `a ';' in the query part "queue=emails;v2"`,
		"test-strict:///x.db?queue=a;b=c":           `a ';' in the query part`,
		"test-strict:///x.db?queue=%zz":             `bad %-escape in the query part "queue=%zz"`,
		"test-strict:///x.db?%zz=a":                 `bad %-escape in the query part "%zz=a"`,
		"test-strict:///dir/a#b.db":                 `has a fragment "#b.db"`,
		"test-strict:///x.db?queue=a#frag":          `has a fragment "#frag"`,
		"test-strict:///x.db?qeueu=x":               `unknown parameter "qeueu" (known: busy_timeout, queue)`,
		"test-strict:///x.db?queue=a&queue=b":       `parameter "queue" given twice`,
		"test-strict:///x.db?queue=a&&busy_timeout": `the query part "" has no parameter name`,
		"test-strict:///x.db?=a":                    `the query part "=a" has no parameter name`,
		"test-strict://u:secret@h/x?colour=red":     `"test-strict://u:xxxxx@h/x?colour=red": unknown parameter "colour"`,
		"foo://x":                                   `unknown queue scheme "foo" (supported: `,
		"crew.db":                                   "invalid queue URL",
		"":                                          "invalid queue URL",
		"::":                                        "invalid queue URL",
	} {
		_, err := Open(t.Context(), raw, true)
		var ue *URLError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%q) = %v, want a *URLError containing %q", raw, err, want)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("Open(%q): the error shows the password: %v", raw, err)
		}
	}
	if len(*got) != 0 {
		t.Errorf("the OpenFunc was called for a rejected URL: %+v", *got)
	}
}

func TestOpenNamesTheSupportedSchemes(t *testing.T) {
	recorder(t, "test-b")
	recorder(t, "test-a")
	_, err := Open(t.Context(), "foo://x", false)
	if err == nil || !strings.Contains(err.Error(), "test-a, test-b") {
		t.Errorf("error %v does not list the schemes in order", err)
	}
}

func TestRegisterRejectsDuplicatesAndEmptyArguments(t *testing.T) {
	open := func(context.Context, Request) (Backend, error) { return nil, nil }
	register(t, "test-dup", nil, open)
	for name, f := range map[string]func(){
		"duplicate":       func() { Register("TEST-DUP", nil, open) },
		"empty scheme":    func() { Register("", nil, open) },
		"nil open":        func() { Register("test-nil", nil, nil) },
		"empty parameter": func() { Register("test-p1", []string{""}, open) },
		"twice listed":    func() { Register("test-p2", []string{"a", "b", "a"}, open) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: Register did not panic", name)
				}
			}()
			f()
		}()
	}
}

// FuzzOpen checks the strict parser against the standard library's lenient
// one: whatever Open accepts, url.ParseQuery reads the same way, without
// error, with each name once; and nothing makes it panic.
func FuzzOpen(f *testing.F) {
	for _, seed := range []string{
		"fuzz://crew.db",
		"fuzz:opaque.db?queue=a",
		"fuzz:///var/lib/crew.db?queue=emails&mode=full",
		"fuzz://h/x?queue=a%20b+c&mode=",
		"fuzz:///x.db?queue=emails;v2",
		"fuzz:///x.db?queue=%zz",
		"fuzz:///dir/a#b.db",
		"fuzz:///x.db?qeueu=x",
		"fuzz:///x.db?queue=a&queue=b",
		"fuzz:///x.db?&",
		"fuzz:///x.db?queue",
		"fuzz://u:p@[::1]:5432/db?queue=%E2%82%AC",
		"FUZZ://x?",
		"other://x",
		"%",
	} {
		f.Add(seed)
	}
	var got []Request
	register(f, "fuzz", []string{"queue", "mode"}, func(_ context.Context, r Request) (Backend, error) {
		got = append(got, r)
		return nil, errOpened
	})
	f.Fuzz(func(t *testing.T, raw string) {
		got = got[:0]
		_, err := Open(context.Background(), raw, false)
		var ue *URLError
		switch {
		case errors.As(err, &ue):
			if len(got) != 0 {
				t.Fatalf("Open(%q) called the OpenFunc and returned %v", raw, err)
			}
			return
		case errors.Is(err, errOpened):
		default:
			t.Fatalf("Open(%q) = %v, want a *URLError or the OpenFunc's error", raw, err)
		}
		if len(got) != 1 {
			t.Fatalf("Open(%q) called the OpenFunc %d times", raw, len(got))
		}
		r := got[0]
		if strings.Contains(raw, "#") || r.URL.Fragment != "" || r.Create {
			t.Fatalf("Open(%q) accepted a fragment or changed Create: %+v", raw, r)
		}
		std, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			t.Fatalf("Open(%q) accepted a query that url.ParseQuery rejects: %v", raw, err)
		}
		if len(std) != len(r.Params) {
			t.Fatalf("Open(%q): Params %q, url.ParseQuery %q", raw, r.Params, std)
		}
		for k, vs := range std {
			if len(vs) != 1 || vs[0] != r.Params[k] || k != "queue" && k != "mode" {
				t.Fatalf("Open(%q): Params %q, url.ParseQuery %q", raw, r.Params, std)
			}
		}
	})
}

// register registers scheme for the length of the test, so that the tests
// can run again in the same process (go test -count).
func register(t testing.TB, scheme string, params []string, open OpenFunc) {
	t.Helper()
	Register(scheme, params, open)
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		delete(schemes, strings.ToLower(scheme))
	})
}
