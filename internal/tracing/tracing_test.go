package tracing

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/propagation"
)

func noEnv(string) string { return "" }

// TestUnexportedSpansKeepTheirIDs: with nothing to export no span is recorded, yet every
// span has a trace ID and a span ID, the log lines name them, and a caller's traceparent
// is followed.
func TestUnexportedSpansKeepTheirIDs(t *testing.T) {
	ctx := context.Background()
	tp, err := New(ctx, noEnv, "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tp.Shutdown(ctx) })
	tr := tp.Tracer("test")

	sctx, span := tr.Start(ctx, "root")
	sc := span.SpanContext()
	if span.IsRecording() {
		t.Error("a span is recorded although nothing exports it")
	}
	if !sc.TraceID().IsValid() || !sc.SpanID().IsValid() {
		t.Fatalf("span context %v: want a trace ID and a span ID", sc)
	}
	span.End()

	var buf bytes.Buffer
	slog.New(LogHandler(slog.NewTextHandler(&buf, nil))).InfoContext(sctx, "call")
	if !strings.Contains(buf.String(), "trace_id="+sc.TraceID().String()) || !strings.Contains(buf.String(), "span_id="+sc.SpanID().String()) {
		t.Errorf("log line %q does not name the span", buf.String())
	}

	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	in := Propagator.Extract(ctx, propagation.MapCarrier{"traceparent": parent})
	_, child := tr.Start(in, "server")
	defer child.End()
	if got := child.SpanContext().TraceID().String(); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("trace ID %s: the caller's traceparent was not followed", got)
	}
	if child.SpanContext().SpanID() == sc.SpanID() || !child.SpanContext().SpanID().IsValid() {
		t.Errorf("child span ID %v: want a new valid one", child.SpanContext().SpanID())
	}
}

// TestExportedSpansAreRecorded: when the environment asks for an exporter, spans are
// recorded (sampled parent-based always-on).
func TestExportedSpansAreRecorded(t *testing.T) {
	ctx := context.Background()
	// autoexport reads the process environment itself.
	t.Setenv("OTEL_TRACES_EXPORTER", "console")
	tp, err := New(ctx, func(k string) string { return map[string]string{"OTEL_TRACES_EXPORTER": "console"}[k] }, "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tp.Shutdown(ctx) })
	_, span := tp.Tracer("test").Start(ctx, "root")
	defer span.End()
	if !span.IsRecording() {
		t.Error("an exported span is not recorded")
	}
}
