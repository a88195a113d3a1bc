package ui

import (
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"time"
	"unicode"
	"unicode/utf8"
)

// MaxDead is how many dead letters of a queue the page lists, oldest
// first; the count shows how many there are in all.
const MaxDead = 500

// previewBytes is how much of a body the page shows.
const previewBytes = 160

// queueView is one queue as the page shows it.
type queueView struct {
	Name    string  `json:"name"`
	Ready   int     `json:"ready"`
	Leased  int     `json:"leased"`
	Delayed int     `json:"delayed"`
	Dead    int     `json:"dead"`
	Error   string  `json:"error,omitempty"`
	History []point `json:"history"`
}

type overview struct {
	Title    string      `json:"title"`
	Queue    string      `json:"queue"` // the backend's own queue
	ReadOnly bool        `json:"readOnly"`
	Every    float64     `json:"every"` // seconds between samples
	Queues   []queueView `json:"queues"`
}

// overview answers the live counts of every queue, with their samples.
func (s *Server) overview(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	names, err := s.queueNames(ctx)
	if err != nil {
		s.fail(w, http.StatusBadGateway, fmt.Errorf("list queues: %w", err))
		return
	}
	out := overview{Title: s.opts.Title, Queue: s.main.Name(), ReadOnly: s.opts.ReadOnly, Every: s.opts.Every.Seconds()}
	for _, name := range names {
		v := queueView{Name: name, History: s.samples(name)}
		if st, err := s.main.Stats(ctx, name); err != nil {
			v.Error = err.Error()
		} else {
			v.Ready, v.Leased, v.Delayed, v.Dead = st.Ready, st.Leased, st.Delayed, st.Dead
		}
		out.Queues = append(out.Queues, v)
	}
	writeJSON(w, out)
}

// deadView is one dead letter as the page shows it.
type deadView struct {
	ID       string    `json:"id"`
	Reason   string    `json:"reason"`
	Attempts int       `json:"attempts"`
	At       time.Time `json:"at"`
	Size     int       `json:"size"`
	Preview  string    `json:"preview"`
	Kind     string    `json:"kind"` // "text" or "hex"
}

// dead lists a queue's dead letters.
func (s *Server) dead(w http.ResponseWriter, r *http.Request) {
	q, err := s.queue(r.Context(), r.PathValue("queue"))
	if err != nil {
		s.fail(w, http.StatusBadGateway, err)
		return
	}
	dead, err := q.Dead(r.Context())
	if err != nil {
		s.fail(w, http.StatusBadGateway, fmt.Errorf("list dead letters: %w", err))
		return
	}
	out := struct {
		Total    int        `json:"total"`
		Messages []deadView `json:"messages"`
	}{Total: len(dead), Messages: []deadView{}}
	for _, d := range dead[:min(len(dead), MaxDead)] {
		preview, kind := previewOf(d.Message.Body)
		out.Messages = append(out.Messages, deadView{
			ID: d.Message.ID, Reason: d.Reason, Attempts: d.Message.Attempt, At: d.At,
			Size: len(d.Message.Body), Preview: preview, Kind: kind,
		})
	}
	writeJSON(w, out)
}

// previewOf shows the start of a body as text when it is printable UTF-8,
// else as hex bytes.
func previewOf(body []byte) (string, string) {
	head := body[:min(len(body), previewBytes)]
	// A rune cut at the end loses at most UTFMax-1 bytes; trimming more
	// would only shorten a binary body until it looked like empty text.
	for cut := 0; cut < utf8.UTFMax-1 && !utf8.Valid(head) && len(body) > previewBytes; cut++ {
		head = head[:len(head)-1]
	}
	text := string(head)
	printable := utf8.ValidString(text)
	for _, r := range text {
		if !unicode.IsPrint(r) && !unicode.IsSpace(r) {
			printable = false
			break
		}
	}
	if printable {
		return text, "text"
	}
	hexed := hex.EncodeToString(body[:min(len(body), previewBytes/2)])
	spaced := make([]byte, 0, len(hexed)*3/2)
	for i := 0; i < len(hexed); i += 2 {
		if i > 0 {
			spaced = append(spaced, ' ')
		}
		spaced = append(spaced, hexed[i:i+2]...)
	}
	return string(spaced), "hex"
}

// guard lets a state-changing request through only from the page itself:
// not in read-only mode, same-origin as the browser says, with a JSON
// body (which a cross-site form cannot send) and the page's token.
func (s *Server) guard(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opts.ReadOnly {
			s.fail(w, http.StatusForbidden, errors.New("crew ui runs read-only"))
			return
		}
		if err := s.csrf.Check(r); err != nil {
			s.fail(w, http.StatusForbidden, fmt.Errorf("cross-origin request refused: %w", err))
			return
		}
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
			s.fail(w, http.StatusUnsupportedMediaType, errors.New("want a JSON body"))
			return
		}
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("X-Crew-Token")), []byte(s.token)) != 1 {
			s.fail(w, http.StatusForbidden, errors.New("missing or wrong X-Crew-Token: reload the page"))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		h(w, r)
	})
}

// redrive makes dead letters of a queue ready again: {"ids":[...]} or
// {"all":true}.
func (s *Server) redrive(w http.ResponseWriter, r *http.Request) {
	var req struct {
		IDs []string `json:"ids"`
		All bool     `json:"all"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		s.fail(w, http.StatusBadRequest, fmt.Errorf("bad request body: %w", err))
		return
	}
	if req.All == (len(req.IDs) > 0) {
		s.fail(w, http.StatusBadRequest, errors.New(`give either "ids" or "all": true`))
		return
	}
	q, err := s.queue(r.Context(), r.PathValue("queue"))
	if err != nil {
		s.fail(w, http.StatusBadGateway, err)
		return
	}
	n, err := q.Redrive(r.Context(), req.IDs...)
	if err != nil {
		s.fail(w, http.StatusBadGateway, fmt.Errorf("redrive: %w", err))
		return
	}
	s.log.Info("crew ui: redrove dead letters", "queue", q.Name(), "moved", n, "ids", req.IDs)
	writeJSON(w, map[string]int{"moved": n})
}

// purge deletes every dead letter of a queue: {}.
func (s *Server) purge(w http.ResponseWriter, r *http.Request) {
	q, err := s.queue(r.Context(), r.PathValue("queue"))
	if err != nil {
		s.fail(w, http.StatusBadGateway, err)
		return
	}
	n, err := q.Purge(r.Context())
	if err != nil {
		s.fail(w, http.StatusBadGateway, fmt.Errorf("purge: %w", err))
		return
	}
	s.mu.Lock()
	s.purged[q.Name()] += n
	s.mu.Unlock()
	s.log.Info("crew ui: purged dead letters", "queue", q.Name(), "deleted", n)
	writeJSON(w, map[string]int{"purged": n})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}

// fail answers {"error": ...} with code.
func (s *Server) fail(w http.ResponseWriter, code int, err error) {
	if code >= 500 {
		s.log.Warn("crew ui: request failed", "err", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}
