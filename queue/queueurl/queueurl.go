// Package queueurl reads the query of a queue URL strictly, the same way
// for every crew backend that opens a queue from a URL, such as
// sqlite://crew.db?queue=emails or nats://127.0.0.1:4222?queue=emails.
//
// A URL names a store and a queue, and a typo in it must fail loudly
// instead of silently selecting another queue or file. net/url's
// ParseQuery drops what it cannot read and keeps every repetition of a
// parameter; [Parse] instead rejects a fragment, a query part it cannot
// decode, an empty parameter name, a parameter given twice and a parameter
// that the backend does not know, each with an error that names the bad
// part.
//
// It is a package of its own, rather than part of package queue, so that
// programs that only consume messages do not carry URL parsing.
package queueurl

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Parse splits rawURL into the part before its query (base) and its query
// parameters, decoded (%-escapes, and '+' for a space). Every parameter must
// be one of known and appear at most once. Parse does not parse base: its
// form is the backend's to check (a file path, a host and port, a list of
// servers).
//
// It returns an error, whose text names the bad part but not the URL (the
// caller adds the URL, with its secrets hidden as it sees fit), when rawURL
// has a fragment ('#' must be written %23), or its query has a part with a
// ';', a bad %-escape or no parameter name, or an unknown or repeated
// parameter. Even then, base is the part of rawURL before any '#' and '?',
// for the caller's error message.
func Parse(rawURL string, known []string) (base string, params map[string]string, err error) {
	withQuery, fragment, hasFragment := strings.Cut(rawURL, "#")
	base, query, _ := strings.Cut(withQuery, "?")
	if hasFragment {
		return base, nil, fmt.Errorf("has a fragment %q: a '#' in a path or value must be written %%23", "#"+fragment)
	}
	params, err = parseQuery(query, known)
	return base, params, err
}

func parseQuery(query string, known []string) (map[string]string, error) {
	params := map[string]string{}
	if query == "" {
		return params, nil
	}
	for part := range strings.SplitSeq(query, "&") {
		if strings.ContainsRune(part, ';') {
			return nil, fmt.Errorf("a ';' in the query part %q: separate parameters with '&', and write a ';' in a value as %%3B", part)
		}
		rawName, rawValue, _ := strings.Cut(part, "=")
		name, err := url.QueryUnescape(rawName)
		if err == nil && name == "" {
			return nil, fmt.Errorf("the query part %q has no parameter name", part)
		}
		value, err2 := url.QueryUnescape(rawValue)
		if err != nil || err2 != nil {
			return nil, fmt.Errorf("bad %%-escape in the query part %q", part)
		}
		if !slices.Contains(known, name) {
			return nil, fmt.Errorf("unknown parameter %q (known: %s)", name, knownList(known))
		}
		if _, dup := params[name]; dup {
			return nil, fmt.Errorf("parameter %q given twice", name)
		}
		params[name] = value
	}
	return params, nil
}

func knownList(known []string) string {
	if len(known) == 0 {
		return "none"
	}
	return strings.Join(known, ", ")
}
