package forms_test

// Helpers for the airport-desk tests of this package (verify_test.go, expire_test.go).
// Every name starts with "desk" so that they never clash with the helpers of the other
// test files of package forms_test.

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
	"taxrefund/internal/ledger"
	"taxrefund/internal/params"
	"taxrefund/internal/refund"
)

// deskT0 is 2026-03-10T04:00:00Z, i.e. 12:00 on 2026-03-10 in Asia/Shanghai: forms issued
// at deskT0 have purchase date 2026-03-10 and export deadline 2026-06-08 (D+90).
var deskT0 = time.Date(2026, 3, 10, 4, 0, 0, 0, time.UTC)

// deskEnv is a fresh database with the standard test registry and a forms service on a
// settable clock.
type deskEnv struct {
	t      *testing.T
	ctx    context.Context
	pool   *pgxpool.Pool
	clock  *dbtest.Clock
	ledger *ledger.Store
	forms  *forms.Service
	seq    atomic.Int64
}

func deskNewEnv(t *testing.T) *deskEnv {
	t.Helper()
	pool := dbtest.NewPool(t)
	dbtest.Registry(t, pool)
	clock := dbtest.NewClock(deskT0)
	led := ledger.NewStore()
	f := forms.New(forms.Deps{
		Pool: pool, Ledger: led, Keys: dbtest.Keyring(t), Params: params.NewCache(pool, 0),
		Now: clock.Now, Log: slog.New(slog.DiscardHandler),
	})
	return &deskEnv{t: t, ctx: context.Background(), pool: pool, clock: clock, ledger: led, forms: f}
}

// deskDoc returns a passport.
func deskDoc(number, country string) refund.Document {
	return refund.Document{Type: refund.Passport, Number: number, IssuingCountry: country}
}

// deskLine is a line of goods: qty units for amount (a decimal string) at VAT rate vat.
type deskLine struct {
	qty    int32
	amount string
	vat    string
}

// issue issues a form at store to doc's holder today (clock time), with one invoice dated
// today; it fails the test on any error.
func (e *deskEnv) issue(store string, doc refund.Document, lines ...deskLine) forms.Form {
	e.t.Helper()
	f, err := e.tryIssue(store, doc, lines...)
	if err != nil {
		e.t.Fatalf("issue at %s: %v", store, err)
	}
	return f
}

func (e *deskEnv) tryIssue(store string, doc refund.Document, lines ...deskLine) (forms.Form, error) {
	today := refund.LocalDate(e.clock.Now())
	inv := fmt.Sprintf("INV-%06d", e.seq.Add(1))
	app := refund.Application{
		Traveller: refund.Traveller{
			Document: doc, Expiry: time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC), Nationality: doc.IssuingCountry,
			LastEntry: refund.AddDays(today, -5),
		},
		Invoices: []refund.Invoice{{Number: inv, Date: today}},
	}
	for i, l := range lines {
		app.Lines = append(app.Lines, refund.Line{
			Description: fmt.Sprintf("goods %d", i+1), Category: refund.General, VATRate: decimal.RequireFromString(l.vat),
			Quantity: l.qty, Amount: decimal.RequireFromString(l.amount), InvoiceNumber: inv,
		})
	}
	return e.forms.Issue(e.ctx, forms.IssueRequest{
		Idem:        forms.Idempotency{Caller: "store/" + store, RequestID: uuid.New(), Hash: forms.HashOf([]byte(inv))},
		StoreCode:   store,
		Application: app,
	})
}

// deskVerifyReq builds a customs confirmation at port with a fresh request_id.
func deskVerifyReq(port, number string, doc refund.Document, confirmed map[int]int32) forms.VerifyRequest {
	return forms.VerifyRequest{
		Idem:      forms.Idempotency{Caller: "customs/" + port + "/officer-17", RequestID: uuid.New(), Hash: deskVerifyHash(number, doc, confirmed)},
		Port:      port,
		Officer:   "officer-17",
		Number:    number,
		Presented: doc,
		Confirmed: confirmed,
	}
}

// deskVerifyHash stands in for the canonical hash the gRPC layer computes: equal content,
// equal hash (fmt prints maps sorted by key).
func deskVerifyHash(number string, doc refund.Document, confirmed map[int]int32) []byte {
	return forms.HashOf(fmt.Appendf(nil, "%s|%v|%v", number, doc, confirmed))
}

func (e *deskEnv) verify(port, number string, doc refund.Document, confirmed map[int]int32) (forms.Form, error) {
	return e.forms.Verify(e.ctx, deskVerifyReq(port, number, doc, confirmed))
}

// deskAll confirms every unit of every line of f.
func deskAll(f forms.Form) map[int]int32 {
	m := map[int]int32{}
	for _, l := range f.Lines {
		m[l.No] = l.Quantity
	}
	return m
}

// deskTables are the tables a refused request must leave untouched.
var deskTables = []string{
	"forms", "form_lines", "form_invoices", "journal_txns", "journal_entries", "pending_transfers",
	"pending_resolutions", "idempotency_keys", "audit_events", "payouts", "payout_forms",
}

// counts returns the row count of every table in deskTables.
func (e *deskEnv) counts() map[string]int {
	e.t.Helper()
	out := map[string]int{}
	for _, tbl := range deskTables {
		out[tbl] = e.count(`SELECT count(*) FROM ` + tbl)
	}
	return out
}

// count runs a SELECT count(*) query.
func (e *deskEnv) count(sql string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(e.ctx, sql, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// deskSameCounts fails when a table's row count changed.
func deskSameCounts(t *testing.T, before, after map[string]int) {
	t.Helper()
	for _, tbl := range deskTables {
		if before[tbl] != after[tbl] {
			t.Errorf("%s: %d rows before, %d after: a refused request wrote", tbl, before[tbl], after[tbl])
		}
	}
}

// state reads a form's state from the database.
func (e *deskEnv) state(number string) refund.State {
	e.t.Helper()
	var s string
	if err := e.pool.QueryRow(e.ctx, `SELECT state FROM forms WHERE number = $1`, number).Scan(&s); err != nil {
		e.t.Fatalf("state of %s: %v", number, err)
	}
	return refund.State(s)
}

// resolution returns the outcome and posted amount of f's pending transfer ("" if open).
func (e *deskEnv) resolution(number string) (string, string) {
	e.t.Helper()
	var outcome *string
	var posted decimal.NullDecimal
	err := e.pool.QueryRow(e.ctx, `
		SELECT r.outcome, r.posted_amount FROM forms f LEFT JOIN pending_resolutions r ON r.pending_id = f.pending_id
		 WHERE f.number = $1`, number).Scan(&outcome, &posted)
	if err != nil {
		e.t.Fatalf("resolution of %s: %v", number, err)
	}
	if outcome == nil {
		return "", ""
	}
	return *outcome, deskFixed(posted.Decimal)
}

// deskEntry is one journal entry as written: "D posted travellers:refund_payable 22.00".
func (e *deskEnv) entries(idemKey string) []string {
	e.t.Helper()
	rows, err := e.pool.Query(e.ctx, `
		SELECT e.side::text, e.pending, a.code, e.amount::text
		  FROM journal_txns t JOIN journal_entries e ON e.txn_id = t.id JOIN accounts a ON a.id = e.account_id
		 WHERE t.idem_key = $1 ORDER BY e.pending DESC, e.side DESC, a.code`, idemKey)
	if err != nil {
		e.t.Fatalf("entries of %s: %v", idemKey, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var side, code, amount string
		var pending bool
		if err := rows.Scan(&side, &pending, &code, &amount); err != nil {
			e.t.Fatal(err)
		}
		layer := "posted"
		if pending {
			layer = "pending"
		}
		out = append(out, fmt.Sprintf("%s %s %s %s", side, layer, code, amount))
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// balance returns an account's posted and pending balance (debit − credit) as fixed
// two-digit strings.
func (e *deskEnv) balance(code string) (posted, pending string) {
	e.t.Helper()
	b, err := e.ledger.Balance(e.ctx, e.pool, code)
	if err != nil {
		e.t.Fatal(err)
	}
	return b.Posted.StringFixed(2), b.Pending.StringFixed(2)
}

// checkInvariants fails on any DOMAIN.md §8 violation.
func (e *deskEnv) checkInvariants() {
	e.t.Helper()
	dbtest.CheckInvariants(e.t, e.ctx, e.pool)
}

// deskWantFault fails unless err is a *fault.Error of kind k and reason; when fields are
// given, the violations must name exactly those fields, in order.
var deskWantFault = dbtest.WantFault

// deskFixed renders a decimal with two fraction digits.
func deskFixed(d decimal.Decimal) string { return d.StringFixed(2) }
