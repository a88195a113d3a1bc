package main

import (
	"fmt"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/crewgo/crew"
	"github.com/crewgo/crew/queue"
)

// parseRate reads a rate such as 50/s, 300/m, 1000/h or 1/10s: starts per
// second, minute, hour or per any duration Go can parse.
func parseRate(s string) (rate.Limit, error) {
	count, per, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("--rate wants N/s, N/m or N/h, such as 50/s, not %q", s)
	}
	n, err := strconv.ParseFloat(count, 64)
	if err != nil || n <= 0 || math.IsInf(n, 0) {
		return 0, fmt.Errorf("--rate %q: %q is not a positive number", s, count)
	}
	var d time.Duration
	switch per {
	case "s":
		d = time.Second
	case "m":
		d = time.Minute
	case "h":
		d = time.Hour
	default:
		d, err = time.ParseDuration(per)
		if err != nil || d <= 0 {
			return 0, fmt.Errorf("--rate %q: %q is not s, m, h or a positive duration such as 10s", s, per)
		}
	}
	return rate.Limit(n / d.Seconds()), nil
}

// limits holds the flags of crew work that bound handler starts beyond -c.
type limits struct {
	rate    string // --rate, such as 50/s
	burst   int    // --burst; 0: not given
	key     string // --key ATTR
	perKey  int    // --per-key N; 0: not given
	limiter *rate.Limiter
}

// check validates the flags and builds the limiter.
func (l *limits) check() error {
	switch {
	case l.burst < 0:
		return usagef("--burst must be at least 1, not %d", l.burst)
	case l.burst > 0 && l.rate == "":
		return usagef("--burst needs --rate")
	case l.perKey < 0:
		return usagef("--per-key must be at least 1, not %d", l.perKey)
	case l.perKey > 0 && l.key == "":
		return usagef("--per-key needs --key, the attribute whose values it limits")
	}
	if l.rate == "" {
		return nil
	}
	r, err := parseRate(l.rate)
	if err != nil {
		return usageError{err}
	}
	// A burst of one spaces starts evenly: never more than the rate in any
	// window.
	l.limiter = rate.NewLimiter(r, max(l.burst, 1))
	return nil
}

// apply sets the consumer's limits.
func (l *limits) apply(c *queue.Consumer) {
	c.RateLimit = l.limiter
	c.Key = l.key
	c.PerKey = l.perKey
}

// attrEnv returns the message's attributes as CREW_ATTR_<NAME>=VALUE
// variables, the name upper-cased and every character other than a letter,
// a digit or _ made _, in the attributes' order by name. A value with a NUL
// byte, which no environment can hold, is left out.
func attrEnv(m *queue.Message) []string {
	env := make([]string, 0, len(m.Attributes))
	for _, name := range slices.Sorted(maps.Keys(m.Attributes)) {
		if v := m.Attributes[name]; !strings.ContainsRune(v, 0) { // a NUL cannot be in the environment
			env = append(env, "CREW_ATTR_"+envName(name)+"="+v)
		}
	}
	return env
}

func envName(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
			return r
		}
		return '_'
	}, name)
}

// setMessageHeaders sets the headers of a --post request that describe the
// message: crew's own, X-Crew-Message-Id, X-Crew-Attempt,
// X-Crew-First-Received-At and one X-Crew-Attr-<Name> per attribute, and
// the same under the names of Elastic Beanstalk's worker daemon (sqsd), so
// that a handler written for a Beanstalk worker environment runs behind
// crew unchanged: X-Aws-Sqsd-Msgid, X-Aws-Sqsd-Receive-Count,
// X-Aws-Sqsd-First-Received-At and X-Aws-Sqsd-Attr-<Name>. The
// first-received headers are left out when the queue cannot tell that
// time. An attribute whose name is not a valid header name, or whose value
// has a control character, is left out of the headers.
func setMessageHeaders(h http.Header, m *queue.Message) {
	attempt := strconv.Itoa(m.Attempt)
	h.Set("X-Crew-Message-Id", m.ID)
	h.Set("X-Crew-Attempt", attempt)
	h.Set("X-Aws-Sqsd-Msgid", m.ID)
	h.Set("X-Aws-Sqsd-Receive-Count", attempt)
	if !m.FirstReceived.IsZero() {
		h.Set("X-Crew-First-Received-At", formatFirstReceived(m.FirstReceived))
		// sqsd's format: ISO 8601 in UTC, in whole seconds.
		h.Set("X-Aws-Sqsd-First-Received-At", m.FirstReceived.UTC().Format(time.RFC3339))
	}
	for name, value := range m.Attributes {
		if !headerToken(name) || strings.ContainsFunc(value, isCTL) {
			continue
		}
		h.Set("X-Crew-Attr-"+name, value)
		h.Set("X-Aws-Sqsd-Attr-"+name, value)
	}
}

// formatFirstReceived writes a message's first-received time as crew hands
// it to commands and endpoints: RFC 3339 in UTC, to the millisecond.
func formatFirstReceived(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// firstReceivedEnv returns the CREW_FIRST_RECEIVED_AT entry of m's
// command's environment. It is empty when the queue cannot tell the time,
// which also hides a value that crew's own environment may hold.
func firstReceivedEnv(m *queue.Message) string {
	if m.FirstReceived.IsZero() {
		return "CREW_FIRST_RECEIVED_AT="
	}
	return "CREW_FIRST_RECEIVED_AT=" + formatFirstReceived(m.FirstReceived)
}

// headerToken reports whether s may be (part of) an HTTP header name.
func headerToken(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return r > '~' || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r)
	})
}

func isCTL(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }

// permanentExit makes a command's exit status in codes mean "do not retry":
// the error it returns wraps crew.ErrPermanent, which dead-letters the
// message at once.
type permanentExit []int

func (p permanentExit) check() error {
	for _, code := range p {
		if code < 1 || code > 255 {
			return usagef("--permanent-exit wants exit statuses from 1 to 255, not %d", code)
		}
	}
	return nil
}

// wrap returns err, the failure of a command that exited with code,
// marked permanent if code is one of p.
func (p permanentExit) wrap(code int, err error) error {
	if !slices.Contains(p, code) {
		return err
	}
	return fmt.Errorf("%w, which --permanent-exit says is not worth retrying (%w)", err, crew.ErrPermanent)
}
