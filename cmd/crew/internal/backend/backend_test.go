package backend

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestOpenDispatchesOnTheScheme(t *testing.T) {
	var got *url.URL
	errOpened := errors.New("opened")
	register(t, "test-dispatch", func(u *url.URL) (Backend, error) {
		got = u
		return nil, errOpened
	})
	if _, err := Open("TEST-DISPATCH://host/path?queue=q"); !errors.Is(err, errOpened) {
		t.Fatalf("Open = %v, want the OpenFunc's error", err)
	}
	if got == nil || got.Host != "host" || got.Path != "/path" || got.Query().Get("queue") != "q" {
		t.Errorf("OpenFunc got %v", got)
	}
}

func TestOpenNamesTheSupportedSchemes(t *testing.T) {
	register(t, "test-b", func(*url.URL) (Backend, error) { return nil, nil })
	register(t, "test-a", func(*url.URL) (Backend, error) { return nil, nil })
	_, err := Open("foo://x")
	var ue *URLError
	if !errors.As(err, &ue) {
		t.Fatalf("Open(foo://x) = %v, want a *URLError", err)
	}
	want := `unknown queue scheme "foo" (supported: `
	if msg := err.Error(); len(msg) < len(want) || msg[:len(want)] != want {
		t.Errorf("error %q does not start with %q", msg, want)
	}
	if !contains(err.Error(), "test-a, test-b") {
		t.Errorf("error %q does not list the schemes in order", err)
	}
	for _, raw := range []string{"crew.db", "", "::"} {
		if _, err := Open(raw); !errors.As(err, &ue) || !contains(err.Error(), "invalid queue URL") {
			t.Errorf("Open(%q) = %v, want an invalid-URL *URLError", raw, err)
		}
	}
}

func TestRegisterRejectsDuplicatesAndEmptyArguments(t *testing.T) {
	open := func(*url.URL) (Backend, error) { return nil, nil }
	register(t, "test-dup", open)
	for name, f := range map[string]func(){
		"duplicate":    func() { Register("TEST-DUP", open) },
		"empty scheme": func() { Register("", open) },
		"nil open":     func() { Register("test-nil", nil) },
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

// register registers scheme for the length of the test, so that the tests
// can run again in the same process (go test -count).
func register(t *testing.T, scheme string, open OpenFunc) {
	t.Helper()
	Register(scheme, open)
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		delete(schemes, strings.ToLower(scheme))
	})
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
