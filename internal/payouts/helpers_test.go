package payouts_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"taxrefund/internal/db"
	"taxrefund/internal/dbtest"
	"taxrefund/internal/forms"
	"taxrefund/internal/ledger"
	"taxrefund/internal/params"
	"taxrefund/internal/payouts"
	"taxrefund/internal/refund"
)

// t0 is 2026-03-10T04:00:00Z: 12:00 on 2026-03-10 in Asia/Shanghai.
var t0 = time.Date(2026, 3, 10, 4, 0, 0, 0, time.UTC)

// shanghai is UTC+8, written out here rather than taken from package refund.
var shanghai = time.FixedZone("UTC+8", 8*60*60)

// env is a fresh database with the standard test registry (dbtest.Registry: desks
// CKG-01/CKG-02 of AG-CQ at CKG, TFU-01/CTU-01 of AG-CD, refund point JFB-RP; fee 0.02;
// cash cap 20000.00), forms and payouts services on one settable clock.
type env struct {
	t       *testing.T
	ctx     context.Context
	pool    *pgxpool.Pool
	clock   *dbtest.Clock
	ledger  *ledger.Store
	params  *params.Cache
	forms   *forms.Service
	payouts *payouts.Service
	seq     atomic.Int64
}

// newEnv builds the services as cmd/taxrefund does, with a parameters cache that reloads
// on every call (TTL 0), so that each call reads the parameters it applies.
func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, dbtest.NewPool(t), 0)
}

// newRaceEnv is newEnv for tests where 32 payouts run at once on the 32-connection pool.
// Its parameters cache is loaded once and kept (as in production between reloads):
// Settle reloads stale parameters through the pool from inside its transaction, a bug
// with a test of its own (TestSettleNeedsOneConnectionOnly) that would otherwise
// deadlock these tests on a slow machine and hide what they check.
func newRaceEnv(t *testing.T) *env {
	t.Helper()
	e := newEnvWith(t, dbtest.NewPool(t), time.Hour)
	if _, err := e.params.Get(e.ctx); err != nil {
		t.Fatal(err)
	}
	return e
}

func newEnvWith(t *testing.T, pool *pgxpool.Pool, paramsTTL time.Duration) *env {
	t.Helper()
	return newEnvWithPools(t, pool, pool, paramsTTL)
}

// newAppEnv is newEnv with the services on the application role's pool, as in
// production, where row-level security applies; the test itself looks at the database
// through the owner's pool (e.pool).
func newAppEnv(t *testing.T) *env {
	t.Helper()
	url := dbtest.NewURL(t)
	return newEnvWithPools(t, dbtest.OpenPool(t, url, ""), dbtest.OpenPool(t, url, db.AppRole), 0)
}

// newEnvWithPools sets up the registry through owner and the services on pool.
func newEnvWithPools(t *testing.T, owner, pool *pgxpool.Pool, paramsTTL time.Duration) *env {
	t.Helper()
	dbtest.Registry(t, owner)
	clock := dbtest.NewClock(t0)
	led := ledger.NewStore()
	keys := dbtest.Keyring(t)
	par := params.NewCache(pool, paramsTTL)
	log := slog.New(slog.DiscardHandler)
	f := forms.New(forms.Deps{Pool: pool, Ledger: led, Keys: keys, Params: par, Now: clock.Now, Log: log})
	p := payouts.New(payouts.Deps{Pool: pool, Ledger: led, Keys: keys, Params: par, Forms: f, Now: clock.Now, Log: log})
	// A deadlock fails the test in two minutes instead of hanging the package.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return &env{t: t, ctx: ctx, pool: owner, clock: clock, ledger: led, params: par, forms: f, payouts: p}
}

func passport(number, country string) refund.Document {
	return refund.Document{Type: refund.Passport, Number: number, IssuingCountry: country}
}

// line is qty units for amount (a decimal string) at VAT rate vat.
type line struct {
	qty    int32
	amount string
	vat    string
}

func (e *env) tryIssue(store string, doc refund.Document, lines ...line) (forms.Form, error) {
	today := refund.LocalDate(e.clock.Now())
	inv := fmt.Sprintf("INV-%06d", e.seq.Add(1))
	app := refund.Application{
		Traveller: refund.Traveller{
			Document: doc, Expiry: time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC), Nationality: "GB",
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
	return e.forms.Issue(db.WithParty(e.ctx, "store", store), forms.IssueRequest{
		Idem:        forms.Idempotency{Caller: "store/" + store, RequestID: uuid.New(), Hash: forms.HashOf([]byte(inv))},
		StoreCode:   store,
		Application: app,
	})
}

// issue issues a form today, failing the test on error.
func (e *env) issue(store string, doc refund.Document, lines ...line) forms.Form {
	e.t.Helper()
	f, err := e.tryIssue(store, doc, lines...)
	if err != nil {
		e.t.Fatalf("issue: %v", err)
	}
	return f
}

func (e *env) tryVerify(port, number string, doc refund.Document, confirmed map[int]int32) (forms.Form, error) {
	return e.forms.Verify(db.WithParty(e.ctx, "customs", port), forms.VerifyRequest{
		Idem: forms.Idempotency{Caller: "customs/" + port + "/officer-9", RequestID: uuid.New(), Hash: forms.HashOf(fmt.Appendf(nil, "%s|%v", number, confirmed))},
		Port: port, Officer: "officer-9", Number: number, Presented: doc, Confirmed: confirmed,
	})
}

// verify confirms f at CKG for the given quantities (nil: every unit), failing on error.
func (e *env) verify(f forms.Form, doc refund.Document, confirmed map[int]int32) forms.Form {
	e.t.Helper()
	return e.verifyAt("CKG", f, doc, confirmed)
}

// verifyAt confirms f at port for the given quantities (nil: every unit), failing on error.
func (e *env) verifyAt(port string, f forms.Form, doc refund.Document, confirmed map[int]int32) forms.Form {
	e.t.Helper()
	if confirmed == nil {
		confirmed = map[int]int32{}
		for _, l := range f.Lines {
			confirmed[l.No] = l.Quantity
		}
	}
	v, err := e.tryVerify(port, f.Number, doc, confirmed)
	if err != nil {
		e.t.Fatalf("verify %s: %v", f.Number, err)
	}
	return v
}

// verified issues a form at S-JFB-1 and confirms every unit.
func (e *env) verified(doc refund.Document, lines ...line) forms.Form {
	e.t.Helper()
	return e.verify(e.issue("S-JFB-1", doc, lines...), doc, nil)
}

// settleReq is a payout request at desk with a fresh request_id; account is the card or
// wallet (empty for CASH).
func settleReq(desk string, doc refund.Document, method payouts.Method, account string, numbers ...string) payouts.SettleRequest {
	r := payouts.SettleRequest{
		Idem:     forms.Idempotency{Caller: "desk/" + desk + "/cashier-4", RequestID: uuid.New()},
		DeskCode: desk, Cashier: "cashier-4", Numbers: numbers, Presented: doc, Method: method, Account: account,
		Receipt: "RCPT-" + desk,
	}
	rehash(&r)
	return r
}

// rehash sets the request's content hash, as the gRPC layer's canonical hash would.
func rehash(r *payouts.SettleRequest) {
	r.Idem.Hash = forms.HashOf(fmt.Appendf(nil, "%s|%s|%q|%v|%s|%s|%s", r.DeskCode, r.Cashier, r.Numbers, r.Presented, r.Method, r.Account, r.Receipt))
}

func (e *env) settle(r payouts.SettleRequest) (payouts.Payout, error) {
	return e.payouts.Settle(db.WithParty(e.ctx, "desk", r.DeskCode), r)
}

// mustSettle pays, failing the test on error.
func (e *env) mustSettle(r payouts.SettleRequest) payouts.Payout {
	e.t.Helper()
	p, err := e.settle(r)
	if err != nil {
		e.t.Fatalf("settle %v at %s: %v", r.Numbers, r.DeskCode, err)
	}
	return p
}

// tables are the tables a refused request must leave untouched.
var tables = []string{
	"forms", "form_lines", "journal_txns", "journal_entries", "pending_resolutions",
	"idempotency_keys", "audit_events", "payouts", "payout_forms",
}

func (e *env) counts() map[string]int {
	e.t.Helper()
	out := map[string]int{}
	for _, tbl := range tables {
		out[tbl] = e.count(`SELECT count(*) FROM ` + tbl)
	}
	return out
}

func (e *env) count(sql string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(e.ctx, sql, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func sameCounts(t *testing.T, before, after map[string]int) {
	t.Helper()
	for _, tbl := range tables {
		if before[tbl] != after[tbl] {
			t.Errorf("%s: %d rows before, %d after: a refused request wrote", tbl, before[tbl], after[tbl])
		}
	}
}

// states reads the state of every form, by number.
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

// posted returns an account's posted balance (debit − credit) with two decimals.
func (e *env) posted(code string) string {
	e.t.Helper()
	b, err := e.ledger.Balance(e.ctx, e.pool, code)
	if err != nil {
		e.t.Fatal(err)
	}
	return b.Posted.StringFixed(2)
}

// wantBalances checks posted balances, by account code.
func (e *env) wantBalances(want map[string]string) {
	e.t.Helper()
	for code, w := range want {
		if got := e.posted(code); got != w {
			e.t.Errorf("%s posted %s, want %s", code, got, w)
		}
	}
}

// entries lists the entries of the journal transaction with idem key k, e.g.
// "D agency:AG-CQ:receivable 150.00", sorted debit first, then by account.
func (e *env) entries(k string) []string {
	e.t.Helper()
	rows, err := e.pool.Query(e.ctx, `
		SELECT e.side::text || CASE WHEN e.pending THEN ' pending ' ELSE ' ' END || a.code || ' ' || to_char(e.amount, 'FM999999999990.00')
		  FROM journal_txns t JOIN journal_entries e ON e.txn_id = t.id JOIN accounts a ON a.id = e.account_id
		 WHERE t.idem_key = $1 ORDER BY e.side DESC, a.code`, k)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, s)
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

// asJSON renders a value for comparison: equal JSON means equal fields (decimals by
// value, times to the nanosecond).
func asJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Errorf("marshal: %v", err)
	}
	return string(b)
}

// wantShare checks a payout's or a form share's A', G', F', N' (A' only for shares).
func wantAmounts(t *testing.T, what string, got [4]decimal.Decimal, want [4]string) {
	t.Helper()
	names := [4]string{"A'", "G'", "F'", "N'"}
	for i := range got {
		if want[i] == "" {
			continue
		}
		if g := fixed(got[i]); g != want[i] {
			t.Errorf("%s: %s = %s, want %s", what, names[i], g, want[i])
		}
	}
}

// The oracle: DOMAIN.md §3's arithmetic, written independently of package refund, on
// exact rationals with one half-up rounding at the end.

type oracleLine struct {
	qty    int32
	amount string
	vat    string
}

// refundRate is the registry's refund rate by VAT rate.
var refundRate = map[string]*big.Rat{"0.13": big.NewRat(11, 100), "0.09": big.NewRat(8, 100)}

// exact returns the exact A' and G' of lines with confirmed quantities (nil: all).
func exact(lines []oracleLine, confirmed []int32) (a, g *big.Rat) {
	a, g = new(big.Rat), new(big.Rat)
	for i, l := range lines {
		amt, ok := new(big.Rat).SetString(l.amount)
		if !ok {
			panic(l.amount)
		}
		if confirmed != nil {
			amt.Mul(amt, big.NewRat(int64(confirmed[i]), int64(l.qty)))
		}
		a.Add(a, amt)
		g.Add(g, new(big.Rat).Mul(amt, refundRate[l.vat]))
	}
	return a, g
}

// roundHalfUp rounds a non-negative rational to fen.
func roundHalfUp(r *big.Rat) decimal.Decimal {
	cents := new(big.Rat).Mul(r, big.NewRat(100, 1))
	cents.Add(cents, big.NewRat(1, 2))
	q := new(big.Int).Quo(cents.Num(), cents.Denom()) // floor, as cents ≥ 0
	return decimal.NewFromBigInt(q, -2)
}

// share is a form's A', G', F' (fee rate 0.02) and N'.
type share struct{ a, g, f, n decimal.Decimal }

func oracle(lines []oracleLine, confirmed []int32) share {
	a, g := exact(lines, confirmed)
	f := roundHalfUp(new(big.Rat).Mul(a, big.NewRat(2, 100)))
	gg := roundHalfUp(g)
	return share{a: roundHalfUp(a), g: gg, f: f, n: gg.Sub(f)}
}

// localDay is the Asia/Shanghai date of t.
func localDay(t time.Time) string { return t.In(shanghai).Format(time.DateOnly) }

// joinLines renders entries for messages.
func joinLines(s []string) string { return "\n\t" + strings.Join(s, "\n\t") }

// mustDec parses a decimal string.
func mustDec(t *testing.T, s string) decimal.Decimal {
	t.Helper()
	d, err := decimal.NewFromString(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
