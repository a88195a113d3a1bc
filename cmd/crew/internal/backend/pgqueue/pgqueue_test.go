package pgqueue

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/crewgo/crew/cmd/crew/internal/backend"
	"github.com/crewgo/crew/queue/postgres/pgtest"
)

var srv *pgtest.Server

func TestMain(m *testing.M) {
	var err error
	if srv, err = pgtest.Start(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = srv.Stop()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func TestURLSelectsSchemaAndQueue(t *testing.T) {
	ctx := t.Context()
	raw := strings.Replace(srv.URL(), "postgres://", "postgresql://", 1) + "&schema=jobs&queue=emails&application_name=crew-test&poll_interval=100ms"
	b, err := backend.Open(ctx, raw, true)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Name() != "emails" {
		t.Errorf("Name() = %q, want emails", b.Name())
	}
	if _, err := b.Publish(ctx, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	// The same queue through the other scheme, without create.
	again, err := backend.Open(ctx, srv.URL()+"&schema=jobs&queue=emails", false)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if s, err := again.Stats(ctx, "emails"); err != nil || s.Ready != 1 {
		t.Errorf("Stats = %+v, %v; want 1 ready", s, err)
	}
	if names, err := again.Queues(ctx); err != nil || len(names) != 1 || names[0] != "emails" {
		t.Errorf("Queues = %v, %v", names, err)
	}
}

func TestWithoutCreateAMissingSchemaIsNamed(t *testing.T) {
	_, err := backend.Open(t.Context(), srv.URL()+"&schema=nothing_here", false)
	if err == nil || !strings.Contains(err.Error(), "nothing_here") {
		t.Fatalf("Open without create of a missing schema = %v, want an error naming it", err)
	}
}

func TestBadParametersAreURLErrors(t *testing.T) {
	for _, query := range []string{"&queue=", "&schema=", "&poll_interval=soon", "&search_path=x"} {
		_, err := backend.Open(t.Context(), srv.URL()+query, true)
		var urlErr *backend.URLError
		if !errors.As(err, &urlErr) {
			t.Errorf("Open(...%s) = %v, want a *backend.URLError", query, err)
		}
	}
}

func TestConnStringKeepsOnlyConnectionParameters(t *testing.T) {
	r := backend.Request{Params: map[string]string{"queue": "q", "schema": "s", "poll_interval": "1s", "sslmode": "disable", "application_name": "a b"}}
	u, _ := url.Parse("postgres://u@h:5432/db")
	got := connString(u, r.Params)
	if want := "postgres://u@h:5432/db?application_name=a+b&sslmode=disable"; got != want {
		t.Errorf("connString = %q, want %q", got, want)
	}
}
