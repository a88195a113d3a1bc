package otel_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	crewotel "github.com/crewgo/crew/otel"
	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/memqueue"
	"github.com/crewgo/crew/queue/sqlite"
)

func TestMain(m *testing.M) {
	code := m.Run()
	stopServers()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// store is a queue that both publishes and receives.
type store interface {
	queue.Source
	queue.Publisher
}

// backends returns a fresh queue of every backend this module tests on;
// with -short, only of those that need no server.
func backends(t *testing.T) map[string]store {
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "crew.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	all := map[string]store{"memqueue": memqueue.New(), "sqlite": db.Queue("emails")}
	if !testing.Short() {
		maps.Copy(all, serverBackends(t))
	}
	return all
}

func newProvider(t *testing.T) (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp, rec
}

// consumeOne runs a Consumer on src with h until it has finished with one
// message, and returns that message's outcome.
func consumeOne(t *testing.T, src queue.Source, h queue.Handler) queue.Outcome {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	results := make(chan queue.Outcome, 1)
	c := &queue.Consumer{
		Source: src, Handler: h, Concurrency: 1, MaxAttempts: 1,
		Logger:   slog.New(slog.DiscardHandler),
		OnResult: func(r queue.Result) { results <- r.Outcome; stop() },
	}
	if err := c.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	return <-results
}

func spanNamed(t *testing.T, rec *tracetest.SpanRecorder, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	for _, s := range rec.Ended() {
		if s.Name() == name {
			return s
		}
	}
	t.Fatalf("no span named %q", name)
	return nil
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	out := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		out[kv.Key] = kv.Value
	}
	return out
}

func TestConsumerSpanContinuesThePublishersTraceOnEveryBackend(t *testing.T) {
	for name, q := range backends(t) {
		t.Run(name, func(t *testing.T) {
			tp, rec := newProvider(t)
			ctx, request := tp.Tracer("test").Start(context.Background(), "request")
			pub := crewotel.NewPublisher(q, "emails", crewotel.WithTracerProvider(tp))
			id, err := pub.Publish(ctx, []byte("hi"), queue.Attribute("user", "ada"))
			if err != nil {
				t.Fatal(err)
			}
			request.End()

			var inHandler trace.SpanContext
			var user string
			h := queue.Chain(func(ctx context.Context, m *queue.Message) error {
				inHandler = trace.SpanContextFromContext(ctx)
				user = m.Attributes["user"]
				return nil
			}, crewotel.Middleware("emails", crewotel.WithTracerProvider(tp)))
			if got := consumeOne(t, q, h); got != queue.Succeeded {
				t.Fatalf("outcome %v", got)
			}

			send, process := spanNamed(t, rec, "send emails"), spanNamed(t, rec, "process emails")
			traceID := request.SpanContext().TraceID()
			if send.Parent().SpanID() != request.SpanContext().SpanID() || send.SpanKind() != trace.SpanKindProducer {
				t.Errorf("send span: parent %v kind %v, want the request's child, a producer", send.Parent().SpanID(), send.SpanKind())
			}
			if process.Parent().SpanID() != send.SpanContext().SpanID() || !process.Parent().IsRemote() {
				t.Errorf("process span's parent %v, want the send span %v, remote", process.Parent().SpanID(), send.SpanContext().SpanID())
			}
			if process.SpanContext().TraceID() != traceID || process.SpanKind() != trace.SpanKindConsumer {
				t.Errorf("process span: trace %v kind %v, want trace %v, a consumer", process.SpanContext().TraceID(), process.SpanKind(), traceID)
			}
			if inHandler.SpanID() != process.SpanContext().SpanID() {
				t.Errorf("handler's context holds span %v, want the process span", inHandler.SpanID())
			}
			if user != "ada" {
				t.Errorf("the message's own attribute %q, want it kept beside the trace context", user)
			}
			for span, want := range map[sdktrace.ReadOnlySpan]map[attribute.Key]string{
				send:    {"messaging.operation.type": "send", "messaging.destination.name": "emails", "messaging.system": "crew", "messaging.message.id": id},
				process: {"messaging.operation.type": "process", "messaging.destination.name": "emails", "messaging.system": "crew", "messaging.message.id": id},
			} {
				got := attrs(span)
				for k, v := range want {
					if got[k].AsString() != v {
						t.Errorf("%s: %s = %q, want %q", span.Name(), k, got[k].AsString(), v)
					}
				}
			}
			if got := attrs(process)[crewotel.AttemptKey].AsInt64(); got != 1 {
				t.Errorf("attempt attribute %d, want 1", got)
			}
		})
	}
}

func TestInjectWritesTheW3CTraceparentAttribute(t *testing.T) {
	for name, q := range backends(t) {
		t.Run(name, func(t *testing.T) {
			tp, rec := newProvider(t)
			ctx, request := tp.Tracer("test").Start(context.Background(), "request")
			if _, err := q.Publish(ctx, []byte("hi"), crewotel.Inject(ctx)); err != nil {
				t.Fatal(err)
			}
			request.End()
			var traceparent string
			h := queue.Chain(func(ctx context.Context, m *queue.Message) error {
				traceparent = m.Attributes["traceparent"]
				return nil
			}, crewotel.Middleware("emails", crewotel.WithTracerProvider(tp)))
			consumeOne(t, q, h)

			sc := request.SpanContext()
			want := "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"
			if traceparent != want {
				t.Errorf("traceparent attribute %q, want %q", traceparent, want)
			}
			if p := spanNamed(t, rec, "process emails").Parent(); p.SpanID() != sc.SpanID() {
				t.Errorf("process span's parent %v, want the request %v", p.SpanID(), sc.SpanID())
			}
		})
	}
}

func TestInjectWritesNothingWithoutASpan(t *testing.T) {
	o := queue.NewPublishOptions(crewotel.Inject(context.Background()))
	if len(o.Attributes) != 0 {
		t.Errorf("attributes %v, want none", o.Attributes)
	}
}

func TestMiddlewareStartsANewTraceForAMessageWithoutContext(t *testing.T) {
	tp, rec := newProvider(t)
	h := crewotel.Middleware("emails", crewotel.WithTracerProvider(tp))(func(context.Context, *queue.Message) error { return nil })
	if err := h(context.Background(), &queue.Message{ID: "1", Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	if p := spanNamed(t, rec, "process emails").Parent(); p.IsValid() {
		t.Errorf("parent %v, want a root span", p)
	}
}

func TestMiddlewareRecordsTheHandlersErrorAndPanic(t *testing.T) {
	tp, rec := newProvider(t)
	mw := crewotel.Middleware("emails", crewotel.WithTracerProvider(tp))
	errSMTP := errors.New("smtp: 421 try later")
	if err := mw(func(context.Context, *queue.Message) error { return errSMTP })(context.Background(), &queue.Message{ID: "1"}); err != errSMTP {
		t.Errorf("handler error %v, want it returned unchanged", err)
	}
	func() {
		defer func() {
			if v := recover(); v != "boom" {
				t.Errorf("recovered %v, want the handler's panic", v)
			}
		}()
		_ = mw(func(context.Context, *queue.Message) error { panic("boom") })(context.Background(), &queue.Message{ID: "2"})
	}()

	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans ended, want 2", len(spans))
	}
	for i, wantType := range []string{"*errors.errorString", "panic"} {
		s := spans[i]
		if s.Status().Code != codes.Error {
			t.Errorf("span %d status %v, want Error", i, s.Status())
		}
		if got := attrs(s)["error.type"].AsString(); got != wantType {
			t.Errorf("span %d error.type %q, want %q", i, got, wantType)
		}
		if len(s.Events()) != 1 || s.Events()[0].Name != "exception" {
			t.Errorf("span %d events %v, want one exception", i, s.Events())
		}
	}
}

func TestPublisherMarksAFailedPublish(t *testing.T) {
	tp, rec := newProvider(t)
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "crew.db"))
	if err != nil {
		t.Fatal(err)
	}
	q := db.Queue("emails")
	db.Close()
	if _, err := crewotel.NewPublisher(q, "emails", crewotel.WithTracerProvider(tp)).Publish(context.Background(), []byte("x")); err == nil {
		t.Fatal("Publish on a closed database succeeded")
	}
	s := spanNamed(t, rec, "send emails")
	if s.Status().Code != codes.Error {
		t.Errorf("status %v, want Error", s.Status())
	}
	if _, ok := attrs(s)["messaging.message.id"]; ok {
		t.Error("a failed publish has a message ID")
	}
}
