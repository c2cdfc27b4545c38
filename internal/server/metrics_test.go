package server_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/shopspring/decimal"
	"google.golang.org/grpc"

	deskv1 "taxrefund/api/taxrefund/desk/v1"
	storev1 "taxrefund/api/taxrefund/store/v1"
	"taxrefund/internal/metrics"
	"taxrefund/internal/server"
)

// TestMetricsMatchTheDatabase runs a short script (six forms issued by two stores, two
// voided, one exported at CKG and paid in cash, one refused call), scrapes /metrics and
// finds the business counters equal to what the service answered (counts and CNY), and
// the RPC counters equal to the calls made.
func TestMetricsMatchTheDatabase(t *testing.T) {
	t.Parallel()
	var met *metrics.Metrics
	env := newSecEnv(t, secOptions{options: func(app *pgxpool.Pool, o *server.Options) {
		met = metrics.New(app, 0)
		o.Unary = []grpc.UnaryServerInterceptor{met.GRPC.UnaryServerInterceptor()}
		o.Stream = []grpc.StreamServerInterceptor{met.GRPC.StreamServerInterceptor()}
	}})
	met.GRPC.InitializeMetrics(env.srv)
	ctx := ctxTimeout(t)

	issued, voided := decimal.Zero, decimal.Zero
	var numbers []string
	doc := passport(env.tr.secret("M7654-3210"))
	for i := range 6 {
		name := storeJFB1
		if i%3 == 2 {
			name = storeJFB2
		}
		req := domainExample(doc.GetNumber(), fmt.Sprintf("INV-M%d", i))
		req.Lines[0].Amount = fmt.Sprintf("%d.00", 1000+i*137)
		f := env.issue(t, name, req)
		numbers = append(numbers, f.GetNumber())
		issued = issued.Add(decimal.RequireFromString(f.GetGrossRefund()))
	}
	for _, n := range numbers[:2] {
		resp, err := env.store(t, storeJFB1).VoidForm(ctx, &storev1.VoidFormRequest{RequestId: uuid.NewString(), FormNumber: n, Reason: "goods returned"})
		if err != nil {
			t.Fatalf("VoidForm %s: %v", n, err)
		}
		voided = voided.Add(decimal.RequireFromString(resp.GetForm().GetGrossRefund()))
	}
	f3, err := env.store(t, storeJFB1).GetForm(ctx, &storev1.GetFormRequest{FormNumber: numbers[3]})
	if err != nil {
		t.Fatal(err)
	}
	env.verifyAll(t, customsCKG, f3.GetForm(), doc)
	paid, err := env.desk(t, cashier1).SettleRefund(ctx, settleReq(doc, "RCPT-M1", numbers[3]))
	if err != nil {
		t.Fatalf("SettleRefund: %v", err)
	}
	// A refused call: a store may not confirm exports.
	if _, err := env.desk(t, storeJFB2).VerifyExport(ctx, &deskv1.VerifyExportRequest{RequestId: uuid.NewString(), FormNumber: numbers[4]}); err == nil {
		t.Fatal("a store confirmed an export")
	}

	fams := scrape(t, met)
	sample := func(name string, labels map[string]string) (float64, bool) {
		for _, m := range fams[name].GetMetric() {
			match := true
			for k, v := range labels {
				found := false
				for _, l := range m.GetLabel() {
					if l.GetName() == k && l.GetValue() == v {
						found = true
					}
				}
				match = match && found
			}
			if match {
				switch {
				case m.GetCounter() != nil:
					return m.GetCounter().GetValue(), true
				case m.GetGauge() != nil:
					return m.GetGauge().GetValue(), true
				}
			}
		}
		return 0, false
	}
	expect := func(name string, labels map[string]string, want float64) {
		t.Helper()
		got, ok := sample(name, labels)
		if !ok || got != want {
			t.Errorf("%s%v = %v (present %v), want %v", name, labels, got, ok, want)
		}
	}
	f := func(d decimal.Decimal) float64 { return d.InexactFloat64() }
	expect("taxrefund_forms_total", map[string]string{"outcome": "issued", "block": "JFB"}, 6)
	expect("taxrefund_forms_refund_cny_total", map[string]string{"outcome": "issued", "block": "JFB"}, f(issued))
	expect("taxrefund_forms_total", map[string]string{"outcome": "voided", "block": "JFB", "port": ""}, 2)
	expect("taxrefund_forms_refund_cny_total", map[string]string{"outcome": "voided", "block": "JFB", "port": ""}, f(voided))
	expect("taxrefund_forms_total", map[string]string{"outcome": "refunded", "block": "JFB", "port": "CKG"}, 1)
	expect("taxrefund_forms_refund_cny_total", map[string]string{"outcome": "refunded", "block": "JFB", "port": "CKG"},
		f(decimal.RequireFromString(paid.GetPayout().GetGrossRefund())))
	expect("taxrefund_forms_open", map[string]string{"state": "ISSUED", "block": "JFB"}, 3)
	expect("taxrefund_payouts_total", map[string]string{"method": "CASH"}, 1)
	expect("taxrefund_payouts_net_cny_total", map[string]string{"method": "CASH"}, f(decimal.RequireFromString(paid.GetPayout().GetNetRefund())))
	expect("taxrefund_acquirer_outbox_pending", nil, 0)
	expect("taxrefund_business_scrape_success", nil, 1)
	expect("taxrefund_cash_cap_cny", nil, 20000)
	expect("taxrefund_prepayments_pending", map[string]string{"working_days_left": "overdue"}, 0)
	// The desk's cash today: the harness's clock is in 2025, the scrape's day is today.
	if _, ok := sample("taxrefund_desk_cash_paid_today_cny", map[string]string{"desk": "CKG-01"}); !ok {
		t.Error("no taxrefund_desk_cash_paid_today_cny for desk CKG-01")
	}
	// And the RPCs, by the provider's interceptor.
	expect("grpc_server_handled_total", map[string]string{"grpc_method": "IssueForm", "grpc_code": "OK"}, 6)
	expect("grpc_server_handled_total", map[string]string{"grpc_method": "VoidForm", "grpc_code": "OK"}, 2)
	expect("grpc_server_handled_total", map[string]string{"grpc_method": "VerifyExport", "grpc_code": "PermissionDenied"}, 1)
	expect("grpc_server_handled_total", map[string]string{"grpc_method": "SettleRefund", "grpc_code": "OK"}, 1)
	if _, ok := fams["grpc_server_handling_seconds"]; !ok {
		t.Error("no grpc_server_handling_seconds histogram")
	}
	for _, name := range []string{"taxrefund_db_pool_connections", "go_goroutines"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("no %s", name)
		}
	}

	// The chain and invariant check records its outcome.
	if n, err := met.Checks.Run(context.Background(), env.app); err != nil || n != 0 {
		t.Fatalf("checks: %d problems, %v", n, err)
	}
	fams = scrape(t, met)
	expect("taxrefund_chain_verification_ok", map[string]string{"chain": "journal"}, 1)
	expect("taxrefund_chain_verification_ok", map[string]string{"chain": "audit"}, 1)
	expect("taxrefund_invariant_violations", nil, 0)
}

// scrape reads /metrics as Prometheus does.
func scrape(t *testing.T, met *metrics.Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	hs := httptest.NewServer(met.Handler())
	defer hs.Close()
	resp, err := http.Get(hs.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}
