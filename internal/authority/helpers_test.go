package authority_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"
	"google.golang.org/grpc"

	authorityv1 "taxrefund/api/taxrefund/authority/v1"
	"taxrefund/internal/authority"
	"taxrefund/internal/dbtest"
	"taxrefund/internal/fault"
	"taxrefund/internal/forms"
	"taxrefund/internal/idempotency"
	"taxrefund/internal/ledger"
	"taxrefund/internal/params"
	"taxrefund/internal/payouts"
	"taxrefund/internal/refund"
	"taxrefund/internal/registry"
	"taxrefund/internal/settlement"
)

// local is y-m-d hh:mm in Shanghai (UTC+8), as an instant.
func local(y int, m time.Month, d, hh, mm int) time.Time {
	return time.Date(y, m, d, hh, mm, 0, 0, time.FixedZone("UTC+8", 8*60*60)).UTC()
}

// env is a fresh database with dbtest.Registry's registry, the services on one clock and
// the authority handler wired as cmd/taxrefund wires it.
type env struct {
	t       *testing.T
	ctx     context.Context
	pool    *pgxpool.Pool
	clock   *dbtest.Clock
	forms   *forms.Service
	payouts *payouts.Service
	settle  *settlement.Service
	h       *authority.Handler
	seq     int
}

func newEnv(t *testing.T) *env {
	t.Helper()
	pool := dbtest.NewPool(t)
	dbtest.Registry(t, pool)
	clock := dbtest.NewClock(local(2026, 7, 10, 10, 0))
	led := ledger.NewStore()
	keys := dbtest.Keyring(t)
	par := params.NewCache(pool, 0)
	log := slog.New(slog.DiscardHandler)
	f := forms.New(forms.Deps{Pool: pool, Ledger: led, Keys: keys, Params: par, Now: clock.Now, Log: log})
	p := payouts.New(payouts.Deps{Pool: pool, Ledger: led, Keys: keys, Params: par, Forms: f, Now: clock.Now, Log: log})
	s := settlement.New(pool, led, clock.Now)
	h := authority.New(authority.Deps{Expirer: f, Pool: pool, Registry: registry.New(pool, clock.Now), Settlement: s, Now: clock.Now})
	return &env{t: t, ctx: context.Background(), pool: pool, clock: clock, forms: f, payouts: p, settle: s, h: h}
}

func passport(doc string) refund.Document {
	return refund.Document{Type: refund.Passport, Number: doc, IssuingCountry: "GB"}
}

// issue issues a 1000.00 form at 13% (G 110.00) at S-JFB-1, now.
func (e *env) issue(doc string) forms.Form {
	e.t.Helper()
	e.seq++
	today := refund.LocalDate(e.clock.Now())
	inv := fmt.Sprintf("INV-%04d", e.seq)
	f, err := e.forms.Issue(e.ctx, forms.IssueRequest{
		Idem:      idempotency.Key{Caller: "taxrefund://store/S-JFB-1", RequestID: uuid.New(), Hash: idempotency.Hash([]byte(inv))},
		StoreCode: "S-JFB-1",
		Application: refund.Application{
			Traveller: refund.Traveller{Document: passport(doc), Expiry: time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC),
				Nationality: "GB", LastEntry: refund.AddDays(today, -3)},
			Invoices: []refund.Invoice{{Number: inv, Date: today}},
			Lines: []refund.Line{{Description: "silk", Category: refund.General, VATRate: decimal.RequireFromString("0.13"),
				Quantity: 1, Amount: decimal.RequireFromString("1000.00"), InvoiceNumber: inv}},
		},
	})
	if err != nil {
		e.t.Fatalf("issue: %v", err)
	}
	return f
}

// paid issues, confirms at CKG and pays at CKG-01 a form, at the clock's time.
func (e *env) paid(doc string) payouts.Payout {
	e.t.Helper()
	f := e.issue(doc)
	if _, err := e.forms.Verify(e.ctx, forms.VerifyRequest{
		Idem: idempotency.Key{Caller: "taxrefund://customs/CKG/o-1", RequestID: uuid.New(), Hash: idempotency.Hash([]byte(f.Number))},
		Port: "CKG", Officer: "o-1", Number: f.Number, Presented: passport(doc), Confirmed: map[int]int32{1: 1},
	}); err != nil {
		e.t.Fatal(err)
	}
	p, err := e.payouts.Settle(e.ctx, payouts.SettleRequest{
		Idem:     idempotency.Key{Caller: "taxrefund://desk/CKG-01/c-1", RequestID: uuid.New(), Hash: idempotency.Hash([]byte(f.Number))},
		DeskCode: "CKG-01", Cashier: "c-1", Numbers: []string{f.Number}, Presented: passport(doc), Method: payouts.Cash, Receipt: "R-" + doc,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *env) count(sql string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(e.ctx, sql, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// tables are what a refused call must leave untouched.
var tables = []string{
	"stores", "parameters", "declarations", "closed_months", "forms", "journal_txns", "idempotency_keys", "audit_events",
}

func (e *env) snapshot() string {
	e.t.Helper()
	s := ""
	for _, tbl := range tables {
		s += fmt.Sprintf("%s=%d ", tbl, e.count(`SELECT count(*) FROM `+tbl))
	}
	var states string
	if err := e.pool.QueryRow(e.ctx, `SELECT coalesce(string_agg(number || ':' || state, ',' ORDER BY number), '') FROM forms`).Scan(&states); err != nil {
		e.t.Fatal(err)
	}
	var stores string
	if err := e.pool.QueryRow(e.ctx, `SELECT string_agg(code || ':' || status, ',' ORDER BY code) FROM stores`).Scan(&stores); err != nil {
		e.t.Fatal(err)
	}
	var decls string
	if err := e.pool.QueryRow(e.ctx, `SELECT coalesce(string_agg(id::text || ':' || status, ',' ORDER BY id), '') FROM declarations`).Scan(&decls); err != nil {
		e.t.Fatal(err)
	}
	return s + "forms[" + states + "] stores[" + stores + "] declarations[" + decls + "]"
}

// wantFault fails unless err is a *fault.Error of kind k and reason.
func wantFault(t *testing.T, what string, err error, k fault.Kind, reason string) {
	t.Helper()
	fe, ok := fault.As(err)
	if !ok {
		t.Errorf("%s: got %T %v, want %s %s", what, err, err, k, reason)
		return
	}
	if fe.Kind != k || fe.Reason != reason {
		t.Errorf("%s: got %s %s (%v), want %s %s", what, fe.Kind, fe.Reason, err, k, reason)
	}
}

// exportStream collects what ExportReport sends; it is the server side of the stream,
// with only Context and Send in use.
type exportStream struct {
	grpc.ServerStream
	ctx  context.Context
	sent []*authorityv1.ExportReportResponse
}

func (s *exportStream) Context() context.Context { return s.ctx }

func (s *exportStream) Send(m *authorityv1.ExportReportResponse) error {
	s.sent = append(s.sent, m)
	return nil
}

// october is the month the fixture declares and reports.
var october = time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
