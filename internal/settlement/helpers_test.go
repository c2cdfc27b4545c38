package settlement_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"taxrefund/internal/dbtest"
	"taxrefund/internal/forms"
	"taxrefund/internal/idempotency"
	"taxrefund/internal/ledger"
	"taxrefund/internal/params"
	"taxrefund/internal/payouts"
	"taxrefund/internal/refund"
	"taxrefund/internal/settlement"
)

// shanghai is UTC+8, written out here rather than taken from package refund.
var shanghai = time.FixedZone("UTC+8", 8*60*60)

// local is y-m-d hh:mm in Shanghai, as an instant.
func local(y int, m time.Month, d, hh, mm int) time.Time {
	return time.Date(y, m, d, hh, mm, 0, 0, shanghai).UTC()
}

// month is the first day of a month, as package settlement takes it.
func month(y int, m time.Month) time.Time { return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC) }

// Callers.
const (
	cashierCQ = "taxrefund://desk/CKG-01/cashier-1"
	cashierCD = "taxrefund://desk/TFU-01/cashier-5"
	officer   = "taxrefund://authority/sat-officer-7"
)

// env is a fresh database with dbtest.Registry's registry (AG-CQ: desks CKG-01, CKG-02 at
// CKG; AG-CD: TFU-01 at TFU, CTU-01 at CTU; fee 0.02), the forms, payouts and settlement
// services on one settable clock.
type env struct {
	t       *testing.T
	ctx     context.Context
	pool    *pgxpool.Pool
	clock   *dbtest.Clock
	ledger  *ledger.Store
	forms   *forms.Service
	payouts *payouts.Service
	svc     *settlement.Service
	seq     atomic.Int64
}

func newEnv(t *testing.T) *env {
	t.Helper()
	pool := dbtest.NewPool(t)
	dbtest.Registry(t, pool)
	clock := dbtest.NewClock(local(2026, 10, 1, 9, 0))
	led := ledger.NewStore()
	keys := dbtest.Keyring(t)
	par := params.NewCache(pool, 0)
	log := slog.New(slog.DiscardHandler)
	f := forms.New(forms.Deps{Pool: pool, Ledger: led, Keys: keys, Params: par, Now: clock.Now, Log: log})
	p := payouts.New(payouts.Deps{Pool: pool, Ledger: led, Keys: keys, Params: par, Forms: f, Now: clock.Now, Log: log})
	return &env{t: t, ctx: context.Background(), pool: pool, clock: clock, ledger: led, forms: f, payouts: p,
		svc: settlement.New(pool, led, clock.Now)}
}

// key is a fresh idempotency key of caller for a request with content.
func key(caller, content string) idempotency.Key {
	return idempotency.Key{Caller: caller, RequestID: uuid.New(), Hash: idempotency.Hash([]byte(content))}
}

// portOf is the port of each airport desk of dbtest.Registry.
var portOf = map[string]string{"CKG-01": "CKG", "CKG-02": "CKG", "TFU-01": "TFU", "CTU-01": "CTU"}

// item is one line: amount (a decimal string) at VAT rate vat, one unit.
type item struct{ amount, vat string }

// issue issues a form at store, now, to a passport of its own, failing on error.
func (e *env) issue(store, doc string, items ...item) forms.Form {
	e.t.Helper()
	today := refund.LocalDate(e.clock.Now())
	inv := fmt.Sprintf("INV-%06d", e.seq.Add(1))
	app := refund.Application{
		Traveller: refund.Traveller{
			Document: passport(doc), Expiry: time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC), Nationality: "GB",
			LastEntry: refund.AddDays(today, -5),
		},
		Invoices: []refund.Invoice{{Number: inv, Date: today}},
	}
	for i, it := range items {
		app.Lines = append(app.Lines, refund.Line{
			Description: fmt.Sprintf("goods %d", i+1), Category: refund.General, VATRate: decimal.RequireFromString(it.vat),
			Quantity: 1, Amount: decimal.RequireFromString(it.amount), InvoiceNumber: inv,
		})
	}
	f, err := e.forms.Issue(e.ctx, forms.IssueRequest{
		Idem:      idempotency.Key{Caller: "taxrefund://store/" + store, RequestID: uuid.New(), Hash: idempotency.Hash([]byte(inv))},
		StoreCode: store, Application: app,
	})
	if err != nil {
		e.t.Fatalf("issue at %s: %v", store, err)
	}
	return f
}

func passport(doc string) refund.Document {
	return refund.Document{Type: refund.Passport, Number: doc, IssuingCountry: "GB"}
}

// verify confirms every unit of f at port, now.
func (e *env) verify(f forms.Form, doc, port string) forms.Form {
	e.t.Helper()
	confirmed := map[int]int32{}
	for _, l := range f.Lines {
		confirmed[l.No] = l.Quantity
	}
	v, err := e.forms.Verify(e.ctx, forms.VerifyRequest{
		Idem: idempotency.Key{Caller: "taxrefund://customs/" + port + "/officer-2", RequestID: uuid.New(), Hash: idempotency.Hash([]byte(f.Number))},
		Port: port, Officer: "officer-2", Number: f.Number, Presented: passport(doc), Confirmed: confirmed,
	})
	if err != nil {
		e.t.Fatalf("verify %s: %v", f.Number, err)
	}
	return v
}

// pay pays the forms (VERIFIED, of traveller doc) in cash at desk, now.
func (e *env) pay(desk, doc string, numbers ...string) payouts.Payout {
	e.t.Helper()
	receipt := fmt.Sprintf("RCPT-%s-%03d", desk, e.seq.Add(1))
	p, err := e.payouts.Settle(e.ctx, payouts.SettleRequest{
		Idem:     idempotency.Key{Caller: "taxrefund://desk/" + desk + "/cashier-1", RequestID: uuid.New(), Hash: idempotency.Hash([]byte(receipt))},
		DeskCode: desk, Cashier: "cashier-1", Numbers: numbers, Presented: passport(doc), Method: payouts.Cash, Receipt: receipt,
	})
	if err != nil {
		e.t.Fatalf("pay %v at %s: %v", numbers, desk, err)
	}
	return p
}

// paid issues a form at store at issueAt, confirms it at desk's port an hour later and pays
// it at desk at payAt.
func (e *env) paid(store, desk string, issueAt, payAt time.Time, items ...item) (forms.Form, payouts.Payout) {
	e.t.Helper()
	doc := fmt.Sprintf("P%07d", e.seq.Add(1))
	e.clock.Set(issueAt)
	f := e.issue(store, doc, items...)
	e.clock.Set(issueAt.Add(time.Hour))
	f = e.verify(f, doc, portOf[desk])
	e.clock.Set(payAt)
	return f, e.pay(desk, doc, f.Number)
}

// october is the settlement fixture (amounts at fee 0.02):
//
//	AG-CQ, October (local paid date): P1 at CKG-01 on 10-05, one form 1000.00 at 13%
//	  (G 110.00, F 20.00, N 90.00); P2 at CKG-02 on 10-12, two forms of one traveller,
//	  500.00 at 9% (40.00/10.00/30.00) and 2000.00 at 13% (220.00/40.00/180.00); P3 at
//	  CKG-01 on 10-31 23:30, 300.00 at 13% (33.00/6.00/27.00). October: 4 forms,
//	  G 403.00, F 76.00, N 327.00.
//	AG-CQ, outside October: P0 on 09-30 23:00 (800.00: 88.00/16.00/72.00) and P4 on
//	  11-01 00:30 (1500.00: 165.00/30.00/135.00).
//	AG-CD, October: P5 at TFU-01 on 10-20, 1200.00 at 13% (132.00/24.00/108.00).
//
// The clock is left at 2026-11-03 10:00.
type october struct {
	P0, P1, P2, P3, P4, P5 payouts.Payout
	// Forms by payout, in the payout's order.
	Forms map[uuid.UUID][]forms.Form
}

func (e *env) october() october {
	e.t.Helper()
	var o october
	o.Forms = map[uuid.UUID][]forms.Form{}
	var f forms.Form
	f, o.P0 = e.paid("S-JFB-1", "CKG-01", local(2026, 9, 28, 10, 0), local(2026, 9, 30, 23, 0), item{"800.00", "0.13"})
	o.Forms[o.P0.ID] = []forms.Form{f}
	f, o.P1 = e.paid("S-JFB-1", "CKG-01", local(2026, 10, 3, 10, 0), local(2026, 10, 5, 11, 0), item{"1000.00", "0.13"})
	o.Forms[o.P1.ID] = []forms.Form{f}

	// P2: one traveller, two stores, one payout.
	e.clock.Set(local(2026, 10, 10, 10, 0))
	fa := e.issue("S-JFB-2", "P-TWO", item{"500.00", "0.09"})
	fb := e.issue("S-CXL-1", "P-TWO", item{"2000.00", "0.13"})
	e.clock.Set(local(2026, 10, 12, 8, 0))
	fa, fb = e.verify(fa, "P-TWO", "CKG"), e.verify(fb, "P-TWO", "CKG")
	e.clock.Set(local(2026, 10, 12, 9, 0))
	o.P2 = e.pay("CKG-02", "P-TWO", fa.Number, fb.Number)
	o.Forms[o.P2.ID] = []forms.Form{fa, fb}
	if o.P2.Forms[0].Number != fa.Number {
		o.Forms[o.P2.ID] = []forms.Form{fb, fa}
	}

	f, o.P5 = e.paid("S-CXL-1", "TFU-01", local(2026, 10, 18, 10, 0), local(2026, 10, 20, 15, 0), item{"1200.00", "0.13"})
	o.Forms[o.P5.ID] = []forms.Form{f}
	f, o.P3 = e.paid("S-JFB-2", "CKG-01", local(2026, 10, 30, 10, 0), local(2026, 10, 31, 23, 30), item{"300.00", "0.13"})
	o.Forms[o.P3.ID] = []forms.Form{f}
	f, o.P4 = e.paid("S-JFB-1", "CKG-01", local(2026, 10, 30, 11, 0), local(2026, 11, 1, 0, 30), item{"1500.00", "0.13"})
	o.Forms[o.P4.ID] = []forms.Form{f}
	e.clock.Set(local(2026, 11, 3, 10, 0))
	return o
}

// posted returns an account's posted balance (debit − credit) with two decimals.
func (e *env) posted(code string) string {
	e.t.Helper()
	b, err := e.ledger.Balance(e.ctx, e.pool, code)
	if err != nil {
		e.t.Fatal(err)
	}
	return b.Posted.StringFixed(2)
}

func (e *env) count(sql string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(e.ctx, sql, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// tables are what a refused request must leave untouched.
var tables = []string{
	"declarations", "declaration_payouts", "closed_months", "forms", "journal_txns", "journal_entries",
	"pending_resolutions", "idempotency_keys", "audit_events", "payouts",
}

func (e *env) counts() map[string]int {
	e.t.Helper()
	out := map[string]int{}
	for _, tbl := range tables {
		out[tbl] = e.count(`SELECT count(*) FROM ` + tbl)
	}
	return out
}

func sameCounts(t *testing.T, what string, before, after map[string]int) {
	t.Helper()
	for _, tbl := range tables {
		if before[tbl] != after[tbl] {
			t.Errorf("%s: %s has %d rows before, %d after: a refused request wrote", what, tbl, before[tbl], after[tbl])
		}
	}
}

// states reads the forms' states by number.
func (e *env) states() map[string]string {
	e.t.Helper()
	rows, err := e.pool.Query(e.ctx, `SELECT number, state FROM forms`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var n, s string
		if err := rows.Scan(&n, &s); err != nil {
			e.t.Fatal(err)
		}
		out[n] = s
	}
	return out
}

func (e *env) checkInvariants() {
	e.t.Helper()
	dbtest.CheckInvariants(e.t, e.ctx, e.pool)
}

// wantFault fails unless err is a *fault.Error of kind k and reason; fields, when given,
// must be exactly the violations' fields, in order.
var wantFault = dbtest.WantFault

func fixed(d decimal.Decimal) string { return d.StringFixed(2) }
