package otel

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/crewgo/crew/queue"
)

// ScopeName is the instrumentation scope of the spans this package records.
const ScopeName = "github.com/crewgo/crew/otel"

// AttemptKey is the span attribute that holds the message's delivery
// attempt, 1 on the first delivery.
const AttemptKey = attribute.Key("crew.message.attempt")

// Option configures Inject, NewPublisher and Middleware.
type Option func(*config)

type config struct {
	provider   trace.TracerProvider
	propagator propagation.TextMapPropagator
	system     string
}

func newConfig(opts []Option) config {
	c := config{propagator: propagation.TraceContext{}, system: "crew"}
	for _, o := range opts {
		o(&c)
	}
	if c.provider == nil {
		c.provider = otel.GetTracerProvider()
	}
	return c
}

func (c config) tracer() trace.Tracer { return c.provider.Tracer(ScopeName) }

// WithTracerProvider records spans with tp instead of the global provider.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) { c.provider = tp }
}

// WithPropagator writes and reads the trace context with p instead of the
// W3C Trace Context propagator. Publishers and consumers of one queue must
// agree on it.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(c *config) { c.propagator = p }
}

// WithSystem sets the messaging.system attribute of the spans, such as
// "aws_sqs" for a queue on SQS; it is "crew" by default.
func WithSystem(name string) Option {
	return func(c *config) { c.system = name }
}

// Inject returns a PublishOption that writes the trace context of ctx into
// the published message's attributes. It records no span; with no span in
// ctx it writes nothing.
func Inject(ctx context.Context, opts ...Option) queue.PublishOption {
	return newConfig(opts).inject(ctx)
}

// inject returns a PublishOption that writes the trace context of ctx into
// the message's attributes with c's propagator.
func (c config) inject(ctx context.Context) queue.PublishOption {
	return func(o *queue.PublishOptions) {
		if o.Attributes == nil {
			o.Attributes = make(map[string]string)
		}
		c.propagator.Inject(ctx, propagation.MapCarrier(o.Attributes))
	}
}

// publisher records a producer span around each Publish.
type publisher struct {
	next  queue.Publisher
	queue string
	cfg   config
}

// NewPublisher returns a Publisher that publishes with p, each message in
// a producer span named "send " + queueName whose context it writes into
// the message's attributes, so that the consumer's span becomes its child.
// A failed Publish marks the span as an error. Cancelling ctx is p's
// business; a panic in p ends the span and goes on up.
func NewPublisher(p queue.Publisher, queueName string, opts ...Option) queue.Publisher {
	return &publisher{next: p, queue: queueName, cfg: newConfig(opts)}
}

// Publish publishes body with opts in a producer span.
func (p *publisher) Publish(ctx context.Context, body []byte, opts ...queue.PublishOption) (id string, err error) {
	ctx, span := p.cfg.tracer().Start(ctx, "send "+p.queue,
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			semconv.MessagingSystemKey.String(p.cfg.system),
			semconv.MessagingOperationName("send"),
			semconv.MessagingOperationTypeSend,
			semconv.MessagingDestinationName(p.queue),
			semconv.MessagingMessageBodySize(len(body)),
		))
	defer func() { endSpan(span, err, recover()) }()
	// The caller's slice is not appended to: its array may be shared.
	opts = append(opts[:len(opts):len(opts)], p.cfg.inject(ctx))
	id, err = p.next.Publish(ctx, body, opts...)
	if err == nil {
		span.SetAttributes(semconv.MessagingMessageID(id))
	}
	return id, err
}

// Middleware returns a queue.Middleware that reads the trace context from
// each message's attributes and runs the handler in a consumer span named
// "process " + queueName, a child of the publisher's span when the message
// carries one. The span records the handler's error; a panic is recorded,
// ends the span and goes on up to the Consumer, which treats it as a
// failure. The handler's context carries the span, so that the work it does
// joins the trace; its cancellation is the Consumer's.
func Middleware(queueName string, opts ...Option) queue.Middleware {
	c := newConfig(opts)
	tracer := c.tracer()
	return func(next queue.Handler) queue.Handler {
		return func(ctx context.Context, m *queue.Message) (err error) {
			ctx = c.propagator.Extract(ctx, propagation.MapCarrier(m.Attributes))
			ctx, span := tracer.Start(ctx, "process "+queueName,
				trace.WithSpanKind(trace.SpanKindConsumer),
				trace.WithAttributes(
					semconv.MessagingSystemKey.String(c.system),
					semconv.MessagingOperationName("process"),
					semconv.MessagingOperationTypeProcess,
					semconv.MessagingDestinationName(queueName),
					semconv.MessagingMessageID(m.ID),
					semconv.MessagingMessageBodySize(len(m.Body)),
					AttemptKey.Int(m.Attempt),
				))
			defer func() { endSpan(span, err, recover()) }()
			return next(ctx, m)
		}
	}
}

// endSpan records err, or the panic value v, on span and ends it; a panic
// then goes on up.
func endSpan(span trace.Span, err error, v any) {
	errType := semconv.ErrorType(err)
	if v != nil {
		err = fmt.Errorf("panic: %v", v)
		errType = semconv.ErrorTypeKey.String("panic")
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		span.SetAttributes(errType)
	}
	span.End()
	if v != nil {
		panic(v)
	}
}
