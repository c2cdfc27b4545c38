package agency_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"taxrefund/internal/agency"
	"taxrefund/internal/auth"
	"taxrefund/internal/dbtest"
	"taxrefund/internal/fault"
	"taxrefund/internal/forms"
	"taxrefund/internal/idempotency"
	"taxrefund/internal/ledger"
	"taxrefund/internal/params"
	"taxrefund/internal/payouts"
	"taxrefund/internal/refund"
	"taxrefund/internal/settlement"
)

// local is y-m-d hh:mm in Shanghai (UTC+8), as an instant.
func local(y int, m time.Month, d, hh, mm int) time.Time {
	return time.Date(y, m, d, hh, mm, 0, 0, time.FixedZone("UTC+8", 8*60*60)).UTC()
}

// env is a fresh database with dbtest.Registry's registry (AG-CQ: desks CKG-01, CKG-02,
// refund point JFB-RP; AG-CD: desks TFU-01, CTU-01), the services on one clock and the
// agency handler.
type env struct {
	t       *testing.T
	ctx     context.Context
	pool    *pgxpool.Pool
	clock   *dbtest.Clock
	forms   *forms.Service
	payouts *payouts.Service
	h       *agency.Handler
	seq     int
}

func newEnv(t *testing.T) *env {
	t.Helper()
	pool := dbtest.NewPool(t)
	dbtest.Registry(t, pool)
	clock := dbtest.NewClock(local(2026, 10, 5, 10, 0))
	led := ledger.NewStore()
	keys := dbtest.Keyring(t)
	par := params.NewCache(pool, 0)
	log := slog.New(slog.DiscardHandler)
	f := forms.New(forms.Deps{Pool: pool, Ledger: led, Keys: keys, Params: par, Now: clock.Now, Log: log})
	p := payouts.New(payouts.Deps{Pool: pool, Ledger: led, Keys: keys, Params: par, Forms: f, Now: clock.Now, Log: log})
	return &env{t: t, ctx: context.Background(), pool: pool, clock: clock, forms: f, payouts: p,
		h: agency.New(settlement.New(pool, led, clock.Now))}
}

// paid issues a form of amount at 13% at S-JFB-1, confirms it at the desk's port and pays
// it at desk, at the clock's time.
func (e *env) paid(desk, port, amount string) payouts.Payout {
	e.t.Helper()
	e.seq++
	doc := fmt.Sprintf("P%07d", e.seq)
	pp := refund.Document{Type: refund.Passport, Number: doc, IssuingCountry: "GB"}
	today := refund.LocalDate(e.clock.Now())
	inv := fmt.Sprintf("INV-%04d", e.seq)
	f, err := e.forms.Issue(e.ctx, forms.IssueRequest{
		Idem:      idempotency.Key{Caller: "taxrefund://store/S-JFB-1", RequestID: uuid.New(), Hash: idempotency.Hash([]byte(inv))},
		StoreCode: "S-JFB-1",
		Application: refund.Application{
			Traveller: refund.Traveller{Document: pp, Expiry: time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC),
				Nationality: "GB", LastEntry: refund.AddDays(today, -3)},
			Invoices: []refund.Invoice{{Number: inv, Date: today}},
			Lines: []refund.Line{{Description: "tea", Category: refund.General, VATRate: decimal.RequireFromString("0.13"),
				Quantity: 1, Amount: decimal.RequireFromString(amount), InvoiceNumber: inv}},
		},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.forms.Verify(e.ctx, forms.VerifyRequest{
		Idem: idempotency.Key{Caller: "taxrefund://customs/" + port + "/o-1", RequestID: uuid.New(), Hash: idempotency.Hash([]byte(f.Number))},
		Port: port, Officer: "o-1", Number: f.Number, Presented: pp, Confirmed: map[int]int32{1: 1},
	}); err != nil {
		e.t.Fatal(err)
	}
	p, err := e.payouts.Settle(e.ctx, payouts.SettleRequest{
		Idem:     idempotency.Key{Caller: "taxrefund://desk/" + desk + "/c-1", RequestID: uuid.New(), Hash: idempotency.Hash([]byte(f.Number))},
		DeskCode: desk, Cashier: "c-1", Numbers: []string{f.Number}, Presented: pp, Method: payouts.Cash, Receipt: "R-" + doc,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// desk is a cashier's context at desk.
func (e *env) desk(code, cashier string) context.Context {
	return auth.NewContext(e.ctx, auth.Party{Role: auth.RoleDesk, Desk: code, Cashier: cashier,
		URI: "taxrefund://desk/" + code + "/" + cashier})
}

// backOffice is an agency back-office user's context.
func (e *env) backOffice(agency string) context.Context {
	return auth.NewContext(e.ctx, auth.Party{Role: auth.RoleAgency, Agency: agency, User: "bo-1",
		URI: "taxrefund://agency/" + agency + "/bo-1"})
}

func (e *env) snapshot() string {
	e.t.Helper()
	s := ""
	for _, tbl := range []string{"declarations", "declaration_payouts", "idempotency_keys", "audit_events", "journal_txns"} {
		var n int
		if err := e.pool.QueryRow(e.ctx, `SELECT count(*) FROM `+tbl).Scan(&n); err != nil {
			e.t.Fatal(err)
		}
		s += fmt.Sprintf("%s=%d ", tbl, n)
	}
	return s
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
