package queueurl_test

import (
	"maps"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/crewgo/crew/queue/queueurl"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseSplitsBaseAndDecodesParameters(t *testing.T) {
	base, params, err := queueurl.Parse("sqlite:///tmp/a%20b.db?queue=e+mails&busy_timeout=%35s", []string{"queue", "busy_timeout"})
	if err != nil {
		t.Fatal(err)
	}
	if base != "sqlite:///tmp/a%20b.db" {
		t.Errorf("base = %q, want the part before '?', undecoded", base)
	}
	if want := map[string]string{"queue": "e mails", "busy_timeout": "5s"}; !maps.Equal(params, want) {
		t.Errorf("params = %v, want %v", params, want)
	}
	if _, params, err := queueurl.Parse("nats://h1:4222,nats://h2:4222", nil); err != nil || len(params) != 0 {
		t.Errorf("no query: params %v, err %v; want none, nil", params, err)
	}
	if _, params, err := queueurl.Parse("x://h?queue", []string{"queue"}); err != nil || params["queue"] != "" {
		t.Errorf("a parameter without '=': params %v, err %v; want an empty value", params, err)
	}
}

func TestParseRejectsAndNamesEveryBadPart(t *testing.T) {
	known := []string{"busy_timeout", "queue"}
	for raw, want := range map[string]string{
		"x:///x.db?queue=emails;v2":       `a ';' in the query part "queue=emails;v2"`,
		"x:///x.db?queue=%zz":             `bad %-escape in the query part "queue=%zz"`,
		"x:///x.db?%zz=a":                 `bad %-escape in the query part "%zz=a"`,
		"x:///dir/a#b.db":                 `has a fragment "#b.db"`,
		"x:///x.db?queue=a#frag":          `has a fragment "#frag"`,
		"x:///x.db?qeueu=x":               `unknown parameter "qeueu" (known: busy_timeout, queue)`,
		"x:///x.db?queue=a&queue=b":       `parameter "queue" given twice`,
		"x:///x.db?queue=a&&busy_timeout": `the query part "" has no parameter name`,
		"x:///x.db?=a":                    `the query part "=a" has no parameter name`,
	} {
		base, params, err := queueurl.Parse(raw, known)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, %v; want an error containing %s", raw, params, err, want)
		}
		if strings.ContainsAny(base, "?#") {
			t.Errorf("Parse(%q): base %q holds the query or fragment", raw, base)
		}
	}
	if _, _, err := queueurl.Parse("x://h?queue=a", nil); err == nil || !strings.Contains(err.Error(), "(known: none)") {
		t.Errorf("no parameter known: err = %v, want one saying none is known", err)
	}
}
