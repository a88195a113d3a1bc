package main

import (
	"net/http"
	"regexp"
	"strings"

	"github.com/crewgo/crew/queue"
)

// crew carries a W3C Trace Context (https://www.w3.org/TR/trace-context/)
// through the queue without an OpenTelemetry SDK of its own: crew enqueue
// copies it from the environment variables that tools such as
// otel-cli and the OpenTelemetry environment-carrier spec use into the
// message's attributes, and crew work hands it on to the command (as the
// same variables) or to the --post endpoint (as HTTP headers). The
// attribute names are those of the module github.com/crewgo/crew/otel, so
// Go consumers and publishers join the same traces.
const (
	traceparentAttr = "traceparent"
	tracestateAttr  = "tracestate"
	traceparentEnv  = "TRACEPARENT"
	tracestateEnv   = "TRACESTATE"
)

// validTraceparent matches a version-00 traceparent, as the W3C
// recommendation defines it.
var validTraceparent = regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$`)

// isTraceparent reports whether tp is a version-00 traceparent whose trace
// and parent IDs are not all zeros (which the recommendation forbids).
func isTraceparent(tp string) bool {
	ids := validTraceparent.FindStringSubmatch(tp)
	return ids != nil && strings.Trim(ids[1], "0") != "" && strings.Trim(ids[2], "0") != ""
}

// traceOptions returns the PublishOptions that carry the trace context of
// crew's environment into a message: none when TRACEPARENT is unset or
// malformed (a context that cannot be parented to is worse than none).
func traceOptions(getenv func(string) string) []queue.PublishOption {
	tp := strings.TrimSpace(getenv(traceparentEnv))
	if !isTraceparent(tp) {
		return nil
	}
	opts := []queue.PublishOption{queue.Attribute(traceparentAttr, tp)}
	if ts := strings.TrimSpace(getenv(tracestateEnv)); ts != "" {
		opts = append(opts, queue.Attribute(tracestateAttr, ts))
	}
	return opts
}

// withTraceEnv returns env with crew's own TRACEPARENT and TRACESTATE
// replaced by the message's trace context, if it carries one: a command
// must never see the context of the crew process as its message's.
func withTraceEnv(env []string, m *queue.Message) []string {
	out := make([]string, 0, len(env)+2)
	for _, kv := range env {
		if !strings.HasPrefix(kv, traceparentEnv+"=") && !strings.HasPrefix(kv, tracestateEnv+"=") {
			out = append(out, kv)
		}
	}
	if tp := m.Attributes[traceparentAttr]; tp != "" {
		out = append(out, traceparentEnv+"="+tp)
		if ts := m.Attributes[tracestateAttr]; ts != "" {
			out = append(out, tracestateEnv+"="+ts)
		}
	}
	return out
}

// setTraceHeaders sets the W3C traceparent and tracestate headers of a
// --post request from the message's attributes.
func setTraceHeaders(h http.Header, m *queue.Message) {
	if tp := m.Attributes[traceparentAttr]; tp != "" {
		h.Set(traceparentAttr, tp)
		if ts := m.Attributes[tracestateAttr]; ts != "" {
			h.Set(tracestateAttr, ts)
		}
	}
}
