// Package tracing sets up OpenTelemetry traces for the service: a tracer provider that
// gives every call and every SQL statement a span, exported only when the standard
// OTEL_* environment asks for it (OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_ENDPOINT...,
// read by the contrib autoexport package), and a log handler that writes the trace ID of
// the call into each of its log lines.
package tracing

import (
	"context"
	"fmt"
	"log/slog"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
)

// Propagator reads and writes the W3C traceparent header.
var Propagator propagation.TextMapPropagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// Exporting reports whether the environment asks for traces to be exported.
func Exporting(getenv func(string) string) bool {
	if v := getenv("OTEL_TRACES_EXPORTER"); v != "" {
		return v != "none"
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// New returns the tracer provider. Spans always get IDs (the logs carry them, and a
// caller's traceparent is followed); they leave the process only when Exporting: with the
// exporter autoexport builds from the OTEL_* variables, sampled by OTEL_TRACES_SAMPLER
// (parent-based always-on by default). When nothing is exported no span is recorded:
// recording every call's and every statement's span with its attributes, for no reader,
// cost about a tenth of the server's CPU in a desk benchmark (BENCH.md). Shut it down to
// flush.
func New(ctx context.Context, getenv func(string) string, service string) (*sdktrace.TracerProvider, error) {
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(service)))
	if err != nil {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if Exporting(getenv) {
		exp, err := autoexport.NewSpanExporter(ctx)
		if err != nil {
			return nil, fmt.Errorf("trace exporter (OTEL_* environment): %w", err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	} else {
		opts = append(opts, sdktrace.WithSampler(sdktrace.NeverSample()))
	}
	return sdktrace.NewTracerProvider(opts...), nil
}

// LogHandler wraps h so that a record logged with a context that carries a span gets
// trace_id and span_id attributes: every log line of a call names its trace.
func LogHandler(h slog.Handler) slog.Handler { return logHandler{h} }

type logHandler struct{ slog.Handler }

func (l logHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return l.Handler.Handle(ctx, r)
}

func (l logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return logHandler{l.Handler.WithAttrs(attrs)}
}

func (l logHandler) WithGroup(name string) slog.Handler { return logHandler{l.Handler.WithGroup(name)} }
