package crew

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
)

// HTTPServer returns a Worker that serves s on s.Addr (":http" if empty),
// with TLS when s.TLSConfig holds a certificate. It is ready once it listens,
// so it suits [WaitReady] and workers that come [After] it.
//
// When the worker's context is cancelled, it stops accepting connections and
// calls s.Shutdown with [DrainContext], so that requests in flight finish
// within the group's stop budget; if they have not finished by then, it closes
// every connection with s.Close. It returns nil after a complete drain, the
// listen or serve error if serving fails, and an error wrapping
// context.DeadlineExceeded if the drain had to be cut short.
//
// Shutdown does not wait for hijacked connections such as WebSockets: register
// their cleanup with s.RegisterOnShutdown.
func HTTPServer(s *http.Server) Worker {
	return httpWorker{srv: s}
}

// HTTPListener is [HTTPServer] on a listener that the caller has opened
// already, such as one bound to port 0 in a test or one inherited from a
// supervisor. The worker owns ln and closes it.
func HTTPListener(s *http.Server, ln net.Listener) Worker {
	return httpWorker{srv: s, ln: ln}
}

type httpWorker struct {
	srv *http.Server
	ln  net.Listener
}

func (h httpWorker) Run(ctx context.Context) error {
	ln := h.ln
	if ln == nil {
		addr := h.srv.Addr
		if addr == "" {
			addr = ":http"
		}
		var err error
		if ln, err = (&net.ListenConfig{}).Listen(ctx, "tcp", addr); err != nil {
			return fmt.Errorf("http server: %w", err)
		}
	}
	serve := h.srv.Serve
	if c := h.srv.TLSConfig; c != nil && (len(c.Certificates) > 0 || c.GetCertificate != nil || c.GetConfigForClient != nil) {
		serve = func(ln net.Listener) error { return h.srv.ServeTLS(ln, "", "") }
	}
	MarkReady(ctx)

	served := make(chan error, 1)
	go func() { served <- serve(ln) }()
	select {
	case err := <-served:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}

	err := h.srv.Shutdown(DrainContext(ctx))
	if err != nil {
		_ = h.srv.Close()
		err = fmt.Errorf("http server: drain cut short: %w", err)
	}
	<-served // Serve has returned ErrServerClosed by now
	return err
}
