package ui

import (
	"context"
	"time"
)

// point is one sample of a queue.
type point struct {
	At      int64   `json:"t"` // Unix milliseconds
	Ready   int     `json:"ready"`
	Leased  int     `json:"leased"`
	Delayed int     `json:"delayed"`
	Dead    int     `json:"dead"`
	Rate    float64 `json:"rate"` // messages completed per second since the sample before
}

// history holds a queue's samples, oldest first, for Options.Keep.
type history struct {
	points []point
}

// Run samples every queue's counts every Options.Every until ctx ends,
// and returns nil then. A failed count is logged and skipped.
func (s *Server) Run(ctx context.Context) error {
	t := time.NewTicker(s.opts.Every)
	defer t.Stop()
	for {
		s.Sample(ctx, time.Now())
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Sample counts every queue's messages once, as of now.
//
// No backend counts the messages it completed, so the rate is inferred
// from the counts: messages that left the queue (all states, dead letters
// included, less those purged here) per second. Messages published in the
// same interval hide as many completions: the rate is exact for a queue
// that drains, and a lower bound for one that is fed at the same time.
func (s *Server) Sample(ctx context.Context, now time.Time) {
	names, err := s.queueNames(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("crew ui: list queues", "err", err)
		}
		return
	}
	for _, name := range names {
		st, err := s.main.Stats(ctx, name)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("crew ui: count queue", "queue", name, "err", err)
			}
			continue
		}
		p := point{At: now.UnixMilli(), Ready: st.Ready, Leased: st.Leased, Delayed: st.Delayed, Dead: st.Dead}
		s.add(name, p)
	}
}

func (s *Server) add(name string, p point) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.history[name]
	if h == nil {
		h = &history{}
		s.history[name] = h
	}
	if n := len(h.points); n > 0 {
		prev := h.points[n-1]
		left := total(prev) - total(p) - s.purged[name]
		if dt := float64(p.At-prev.At) / 1000; dt > 0 && left > 0 {
			p.Rate = float64(left) / dt
		}
	}
	s.purged[name] = 0
	h.points = append(h.points, p)
	cutoff := p.At - s.opts.Keep.Milliseconds()
	drop := 0
	for drop < len(h.points) && h.points[drop].At < cutoff {
		drop++
	}
	h.points = h.points[drop:]
}

func total(p point) int { return p.Ready + p.Leased + p.Delayed + p.Dead }

// samples returns a copy of a queue's samples.
func (s *Server) samples(name string) []point {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.history[name]
	if h == nil {
		return []point{}
	}
	return append([]point(nil), h.points...)
}
