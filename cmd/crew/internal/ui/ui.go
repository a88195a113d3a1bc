// Package ui is the web dashboard of crew ui: one page that shows every
// queue of a store with its ready, leased, delayed and dead counts, charts
// of each queue's depth and of the messages it completes per second, and
// its dead letters, which an operator can redrive or purge.
//
// The page, its script and its style are embedded in the binary and load
// nothing from elsewhere; the charts are drawn in SVG by the page itself
// from the samples the server takes (every few seconds, for the last ten
// minutes). It works on every backend, through backend.Backend alone.
//
// Requests that change the store are POSTs, and are refused unless they
// come from the page itself: the browser must say the request is
// same-origin (net/http.CrossOriginProtection), and it must carry the
// token that the server wrote into the page. Requests whose Host is not
// an IP address, localhost or a name the server was told about are
// refused, so that a web site cannot reach the dashboard through a DNS
// name that it points at 127.0.0.1. In read-only mode the page has no
// buttons and the server refuses every change.
package ui

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/crewgo/crew/cmd/crew/internal/backend"
)

//go:embed assets
var assets embed.FS

var page = template.Must(template.ParseFS(assets, "assets/index.html"))

// Defaults for the Options left zero.
const (
	DefaultEvery = 2 * time.Second
	DefaultKeep  = 10 * time.Minute
)

// Opener opens another queue of the store that the Server's backend
// belongs to, by name, for its dead letters.
type Opener func(ctx context.Context, queue string) (backend.Backend, error)

// Options configure a Server.
type Options struct {
	// Title names the store on the page, such as its URL without a
	// password.
	Title string
	// ReadOnly hides the buttons that change the store and makes the
	// server refuse such requests.
	ReadOnly bool
	// Every is how often the server samples the queues' counts
	// (DefaultEvery if zero); Keep how long it keeps the samples
	// (DefaultKeep if zero).
	Every, Keep time.Duration
	// Open opens the other queues of the store. Without it, the dead
	// letters of the backend's own queue alone can be seen and changed.
	Open Opener
	// Hosts are the host names, beside IP addresses and localhost, that
	// requests may address the server by.
	Hosts []string
	// Logger receives the errors of sampling and of requests;
	// slog.Default() if nil.
	Logger *slog.Logger
}

// Server serves the dashboard of one store. Its methods are safe for
// concurrent use.
type Server struct {
	main  backend.Backend
	opts  Options
	token string
	log   *slog.Logger
	mux   *http.ServeMux
	csrf  *http.CrossOriginProtection

	mu      sync.Mutex
	history map[string]*history
	opened  map[string]backend.Backend // other queues of the store, opened on demand
	purged  map[string]int             // dead letters purged since the last sample, by queue
}

// New returns a Server for the store that b belongs to; b's own queue is
// the one shown first. The Server does not close b.
func New(b backend.Backend, opts Options) *Server {
	if opts.Every <= 0 {
		opts.Every = DefaultEvery
	}
	if opts.Keep <= 0 {
		opts.Keep = DefaultKeep
	}
	s := &Server{
		main: b, opts: opts, token: newToken(), log: opts.Logger,
		mux:     http.NewServeMux(),
		csrf:    http.NewCrossOriginProtection(),
		history: map[string]*history{},
		opened:  map[string]backend.Backend{},
		purged:  map[string]int{},
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.routes()
	return s
}

func newToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails: see crypto/rand.Read
	return hex.EncodeToString(b)
}

// Close closes the queues the Server opened itself. It does not close the
// backend given to New.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for name, b := range s.opened {
		if err := b.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close queue %q: %w", name, err))
		}
		delete(s.opened, name)
	}
	return errors.Join(errs...)
}

// queue returns the backend for the named queue of the store, opening it
// if need be.
func (s *Server) queue(ctx context.Context, name string) (backend.Backend, error) {
	if name == s.main.Name() {
		return s.main, nil
	}
	s.mu.Lock()
	b, ok := s.opened[name]
	s.mu.Unlock()
	if ok {
		return b, nil
	}
	if s.opts.Open == nil {
		return nil, fmt.Errorf("the dead letters of queue %q can be managed with --queue naming it", name)
	}
	// Opening can take round trips to a server: not under the lock that
	// every request and every sample takes.
	b, err := s.opts.Open(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("open queue %q: %w", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if first, ok := s.opened[name]; ok { // another request opened it meanwhile
		_ = b.Close()
		return first, nil
	}
	s.opened[name] = b
	return b, nil
}

// queueNames lists the store's queues, the backend's own among them,
// sorted.
func (s *Server) queueNames(ctx context.Context) ([]string, error) {
	names, err := s.main.Queues(ctx)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(names, s.main.Name()) {
		names = append(names, s.main.Name())
	}
	slices.Sort(names)
	return names, nil
}

// ServeHTTP serves the page, its assets and its API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.allowedHost(r.Host) {
		http.Error(w, "crew ui: unknown host "+r.Host+": use the address crew ui printed", http.StatusMisdirectedRequest)
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	s.mux.ServeHTTP(w, r)
}

// allowedHost reports whether a request's Host names this server: an IP
// address, localhost, or one of Options.Hosts. Any other name may be a
// web site's, pointed at this machine to read the page.
func (s *Server) allowedHost(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if net.ParseIP(host) != nil || strings.EqualFold(host, "localhost") {
		return true
	}
	return slices.ContainsFunc(s.opts.Hosts, func(h string) bool { return strings.EqualFold(h, host) })
}

func (s *Server) routes() {
	static := http.FileServerFS(assets)
	s.mux.Handle("GET /assets/", static)
	s.mux.HandleFunc("GET /{$}", s.index)
	s.mux.HandleFunc("GET /api/overview", s.overview)
	s.mux.HandleFunc("GET /api/queues/{queue}/dead", s.dead)
	s.mux.Handle("POST /api/queues/{queue}/redrive", s.guard(s.redrive))
	s.mux.Handle("POST /api/queues/{queue}/purge", s.guard(s.purge))
}

func (s *Server) index(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	data := struct {
		Title, Token string
		ReadOnly     bool
	}{Title: s.opts.Title, ReadOnly: s.opts.ReadOnly}
	if !s.opts.ReadOnly {
		data.Token = s.token
	}
	if err := page.Execute(w, data); err != nil {
		s.log.Warn("crew ui: render page", "err", err)
	}
}
