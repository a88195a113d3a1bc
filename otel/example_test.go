package otel_test

import (
	"context"
	"fmt"
	"log/slog"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	crewotel "github.com/crewgo/crew/otel"
	"github.com/crewgo/crew/queue"
	"github.com/crewgo/crew/queue/memqueue"
)

// runOnce consumes one message of q with h.
func runOnce(q *memqueue.Queue, h queue.Handler) {
	ctx, stop := context.WithCancel(context.Background())
	c := &queue.Consumer{Source: q, Concurrency: 1, Logger: slog.New(slog.DiscardHandler),
		Handler: func(ctx context.Context, m *queue.Message) error { defer stop(); return h(ctx, m) }}
	_ = c.Run(ctx)
}

// A request publishes a message; the consumer's span joins the request's
// trace, as a child of the producer span.
func Example() {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	q := memqueue.New()

	ctx, request := tp.Tracer("shop").Start(context.Background(), "POST /orders")
	pub := crewotel.NewPublisher(q, "emails", crewotel.WithTracerProvider(tp))
	_, _ = pub.Publish(ctx, []byte("order 42 confirmed"))
	request.End()

	runOnce(q, queue.Chain(func(ctx context.Context, m *queue.Message) error {
		return nil // send the e-mail, in the consumer span's context
	}, crewotel.Middleware("emails", crewotel.WithTracerProvider(tp))))

	names := map[string]string{}
	for _, s := range rec.Ended() {
		names[s.SpanContext().SpanID().String()] = s.Name()
	}
	for _, s := range rec.Ended() {
		fmt.Printf("%s (%s), child of %q, same trace: %v\n", s.Name(), s.SpanKind(),
			names[s.Parent().SpanID().String()], s.SpanContext().TraceID() == request.SpanContext().TraceID())
	}
	// Output:
	// send emails (producer), child of "POST /orders", same trace: true
	// POST /orders (internal), child of "", same trace: true
	// process emails (consumer), child of "send emails", same trace: true
}

// Inject carries the trace context alone, without a producer span.
func ExampleInject() {
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("shop").Start(context.Background(), "POST /orders")
	defer span.End()
	o := queue.NewPublishOptions(crewotel.Inject(ctx))
	fmt.Println(len(o.Attributes["traceparent"]), "characters of traceparent")
	// Output:
	// 55 characters of traceparent
}

func ExampleNewPublisher() {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	q := memqueue.New()
	pub := crewotel.NewPublisher(q, "emails", crewotel.WithTracerProvider(tp), crewotel.WithSystem("memqueue"))
	id, _ := pub.Publish(context.Background(), []byte("hello"))
	s := rec.Ended()[0]
	fmt.Println(s.Name(), s.SpanKind(), "message", id)
	for _, kv := range s.Attributes() {
		fmt.Printf("  %s=%s\n", kv.Key, kv.Value.String())
	}
	// Output:
	// send emails producer message 1
	//   messaging.system=memqueue
	//   messaging.operation.name=send
	//   messaging.operation.type=send
	//   messaging.destination.name=emails
	//   messaging.message.body.size=5
	//   messaging.message.id=1
}

// The handler's context carries the consumer span: spans it starts, such
// as an HTTP client's, join the trace.
func ExampleMiddleware() {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	q := memqueue.New()
	_, _ = q.Publish(context.Background(), []byte("hello"))

	runOnce(q, queue.Chain(func(ctx context.Context, m *queue.Message) error {
		_, call := tp.Tracer("smtp").Start(ctx, "smtp send")
		call.End()
		return nil
	}, crewotel.Middleware("emails", crewotel.WithTracerProvider(tp))))

	smtp, process := rec.Ended()[0], rec.Ended()[1]
	fmt.Println(process.Name(), "is the parent of", smtp.Name()+":", smtp.Parent().SpanID() == process.SpanContext().SpanID())
	// Output:
	// process emails is the parent of smtp send: true
}

// Baggage travels too when publishers and consumers agree on a propagator
// that carries it.
func ExampleWithPropagator() {
	both := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	tenant, _ := baggage.NewMember("tenant", "acme")
	b, _ := baggage.New(tenant)
	ctx := baggage.ContextWithBaggage(context.Background(), b)

	o := queue.NewPublishOptions(crewotel.Inject(ctx, crewotel.WithPropagator(both)))
	fmt.Println("baggage:", o.Attributes["baggage"])
	// Output:
	// baggage: tenant=acme
}
