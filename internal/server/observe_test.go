package server_test

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/exaring/otelpgx"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	deskv1 "taxrefund/api/taxrefund/desk/v1"
	storev1 "taxrefund/api/taxrefund/store/v1"
	"taxrefund/internal/db"
	"taxrefund/internal/pki"
	"taxrefund/internal/server"
	"taxrefund/internal/tracing"
)

// tracedEnv is the security harness with traces on: the otelgrpc stats handler on the
// server, otelpgx on the services' pool, both into an in-memory exporter.
func tracedEnv(t *testing.T) (*secEnv, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	env := newSecEnv(t, secOptions{
		pool: []db.Option{db.WithTracer(otelpgx.NewTracer(otelpgx.WithTracerProvider(tp)))},
		options: func(_ *pgxpool.Pool, o *server.Options) {
			o.ServerOptions = []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(
				otelgrpc.WithTracerProvider(tp), otelgrpc.WithPropagators(tracing.Propagator)))}
		},
	})
	return env, exp
}

// tracedConn dials as certificate name with the client's stats handler: each call starts
// a trace of the client's own provider and sends its traceparent.
func tracedConn(t *testing.T, env *secEnv, name string) *grpc.ClientConn {
	t.Helper()
	cfg, err := pki.ClientTLSConfig(filepath.Join(env.certDir, pki.CACertFile),
		filepath.Join(env.certDir, name+".pem"), filepath.Join(env.certDir, name+"-key.pem"), "localhost")
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	c, err := grpc.NewClient(env.addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(tp), otelgrpc.WithPropagators(tracing.Propagator))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestTraceOfOneCall: a call's trace continues from the client into the server and its
// SQL statements, and the call's log line names the trace.
func TestTraceOfOneCall(t *testing.T) {
	t.Parallel()
	env, exp := tracedEnv(t)
	conn := tracedConn(t, env, storeJFB1)
	ctx := ctxTimeout(t)

	// An IssueForm: the server span and its statements share the client's trace.
	var header trace.SpanContext
	req := domainExample(env.tr.secret("T1234-5678"), "INV-TR")
	if _, err := storev1.NewStoreServiceClient(conn).IssueForm(ctx, req); err != nil {
		t.Fatal(err)
	}
	var serverSpan sdktrace.ReadOnlySpan
	spans := exp.GetSpans().Snapshots()
	for _, s := range spans {
		if s.Name() == "taxrefund.store.v1.StoreService/IssueForm" && s.SpanKind() == trace.SpanKindServer {
			serverSpan = s
			header = s.Parent()
		}
	}
	if serverSpan == nil {
		t.Fatalf("no server span of IssueForm among %d spans", len(spans))
	}
	if !header.IsRemote() {
		t.Errorf("the server span's parent %v is not the client's (remote) span", header)
	}
	var sql int
	for _, s := range spans {
		if s.SpanContext().TraceID() == serverSpan.SpanContext().TraceID() && s.SpanKind() == trace.SpanKindClient {
			sql++
		}
	}
	if sql == 0 {
		t.Errorf("the IssueForm trace has no database span; spans: %v", spanNames(spans))
	}
	t.Logf("IssueForm trace %s: %d database spans: %q", serverSpan.SpanContext().TraceID(), sql, spanNames(spans))

	// A refused call logs one line carrying its trace ID.
	exp.Reset()
	bad := domainExample(env.tr.secret("T8765-4321"), "INV-TR2")
	bad.Lines[0].Amount = "abc"
	_, err := storev1.NewStoreServiceClient(conn).IssueForm(ctx, bad)
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("IssueForm with an amount abc: %v, want INVALID_ARGUMENT", err)
	}
	var traceID string
	for _, s := range exp.GetSpans().Snapshots() {
		if s.SpanKind() == trace.SpanKindServer {
			traceID = s.SpanContext().TraceID().String()
		}
	}
	if traceID == "" {
		t.Fatal("no server span for the refused call")
	}
	var lines []string
	for _, l := range strings.Split(env.logs.String(), "\n") {
		if strings.Contains(l, "trace_id="+traceID) {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], `msg="call refused"`) || !strings.Contains(lines[0], "code=InvalidArgument") ||
		!strings.Contains(lines[0], "party=taxrefund://store/S-JFB-1") || !strings.Contains(lines[0], "method=/taxrefund.store.v1.StoreService/IssueForm") {
		t.Errorf("log lines of trace %s: %q, want one refusal with party, method and code\nall logs:\n%s", traceID, lines, env.logs.String())
	}
}

func spanNames(spans []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name())
	}
	return out
}

// TestRefusalLogIsSampled: 400 refused calls of one party and method within about a
// second or two are logged SampleFirst times per second and then every SampleEvery-th,
// each line with party, method, code and reason, the later ones counting what they left
// out; another party's refusal is logged too.
func TestRefusalLogIsSampled(t *testing.T) {
	t.Parallel()
	env := newSecEnv(t, secOptions{})
	ctx := ctxTimeout(t)
	start := time.Now()
	const n = 400
	for range n {
		_, err := env.desk(t, storeJFB2).VerifyExport(ctx, &deskv1.VerifyExportRequest{RequestId: uuid.NewString(), FormNumber: "TR1"})
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("a store's VerifyExport: %v", err)
		}
	}
	// The sampling windows are calendar seconds: the calls may straddle one more.
	secs := int(time.Since(start).Seconds()) + 2
	if _, err := env.desk(t, storeJFB1).VerifyExport(ctx, &deskv1.VerifyExportRequest{RequestId: uuid.NewString(), FormNumber: "TR1"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a store's VerifyExport: %v", err)
	}
	re := regexp.MustCompile(`msg="call refused" party=taxrefund://store/S-JFB-2 method=/taxrefund.desk.v1.DeskService/VerifyExport code=PermissionDenied reason="[^"]+"( skipped=(\d+))?`)
	got := re.FindAllStringSubmatch(env.logs.String(), -1)
	most := secs*(server.SampleFirst+n/server.SampleEvery) + 1
	if len(got) < server.SampleFirst || len(got) > most {
		t.Errorf("%d refusal lines for %d refusals in %d s, want %d to %d", len(got), n, secs, server.SampleFirst, most)
	}
	skipped := false
	for _, m := range got {
		skipped = skipped || m[2] != ""
	}
	if !skipped {
		t.Errorf("no line says how many refusals it left out: %q", got)
	}
	if !strings.Contains(env.logs.String(), `party=taxrefund://store/S-JFB-1 method=/taxrefund.desk.v1.DeskService/VerifyExport code=PermissionDenied`) {
		t.Error("the other store's refusal was not logged")
	}
	t.Logf("%d refusals in %d s: %d lines", n, secs, len(got))
}
