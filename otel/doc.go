// Package otel carries OpenTelemetry traces through crew's queues, so that
// the work a message causes shows up in the same trace as the request that
// published it, however long it waited and whichever backend carried it.
//
// The trace context travels in the message's attributes, in the W3C Trace
// Context format (the traceparent and tracestate attributes), which every
// backend keeps. On the publishing side, either pass [Inject] to Publish, or
// wrap the publisher with [NewPublisher], which also records a producer
// span for each message. On the consuming side, wrap the handler with
// [Middleware]: it reads the context back and runs the handler in a
// consumer span, named and annotated following OpenTelemetry's semantic
// conventions for messaging ("process emails", messaging.system,
// messaging.destination.name, messaging.message.id, ...):
//
//	pub := crewotel.NewPublisher(q, "emails")
//	_, err := pub.Publish(ctx, body) // in the span of an HTTP request, say
//
//	c := &queue.Consumer{Source: q, Handler: queue.Chain(send, crewotel.Middleware("emails"))}
//
// The crew command speaks the same format: crew enqueue copies the
// TRACEPARENT and TRACESTATE environment variables into the message, and
// crew work passes them to the command it runs for it.
//
// Spans come from the global TracerProvider (otel.SetTracerProvider)
// unless [WithTracerProvider] says otherwise; the context is written and
// read with the W3C Trace Context propagator unless [WithPropagator]
// chooses another, such as one that also carries baggage.
package otel
