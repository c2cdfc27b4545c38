package immediate_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"taxrefund/internal/db"
	"taxrefund/internal/dbtest"
	"taxrefund/internal/fault"
	"taxrefund/internal/forms"
	"taxrefund/internal/idempotency"
	"taxrefund/internal/immediate"
	"taxrefund/internal/invariants"
	"taxrefund/internal/ledger"
	"taxrefund/internal/params"
	"taxrefund/internal/payouts"
	"taxrefund/internal/pii"
	"taxrefund/internal/refund"
)

// t0 is 2026-03-10T04:00:00Z: 12:00 on Tuesday 2026-03-10 in Asia/Shanghai. A form issued
// then has its committed date on Friday 2026-03-27 (+17 days) and its capture due on
// Wednesday 2026-04-01 (Mon 30, Tue 31, Wed 1 with the calendar empty).
var t0 = time.Date(2026, 3, 10, 4, 0, 0, 0, time.UTC)

// localNoon is 12:00 Asia/Shanghai on the date "YYYY-MM-DD".
func localNoon(t *testing.T, day string) time.Time {
	t.Helper()
	d, err := time.Parse(time.DateOnly, day)
	if err != nil {
		t.Fatal(err)
	}
	return d.Add(4 * time.Hour)
}

// localMidnight is 00:00 Asia/Shanghai on the date "YYYY-MM-DD" (16:00Z the day before).
func localMidnight(t *testing.T, day string) time.Time {
	t.Helper()
	d, err := time.Parse(time.DateOnly, day)
	if err != nil {
		t.Fatal(err)
	}
	return d.Add(-8 * time.Hour)
}

func date(t *testing.T, s string) time.Time {
	t.Helper()
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// env is a fresh database with the standard test registry and the services wired as
// cmd/taxrefund newApp does (forms, payouts, then immediate, which hooks into forms), on
// one settable clock.
type env struct {
	t       *testing.T
	ctx     context.Context
	pool    *pgxpool.Pool
	clock   *dbtest.Clock
	ledger  *ledger.Store
	params  *params.Cache
	forms   *forms.Service
	payouts *payouts.Service
	imm     *immediate.Service
	keys    *pii.Keyring
	seq     atomic.Int64
}

func newEnv(t *testing.T) *env {
	t.Helper()
	pool := dbtest.NewPool(t)
	dbtest.Registry(t, pool)
	clock := dbtest.NewClock(t0)
	led := ledger.NewStore()
	keys := dbtest.Keyring(t)
	par := params.NewCache(pool, 0)
	log := slog.New(slog.DiscardHandler)
	f := forms.New(forms.Deps{Pool: pool, Ledger: led, Keys: keys, Params: par, Now: clock.Now, Log: log})
	p := payouts.New(payouts.Deps{Pool: pool, Ledger: led, Keys: keys, Params: par, Forms: f, Now: clock.Now, Log: log})
	imm := immediate.New(immediate.Deps{Pool: pool, Ledger: led, Keys: keys, Params: par, Forms: f, Now: clock.Now, Log: log})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return &env{t: t, ctx: ctx, pool: pool, clock: clock, ledger: led, params: par, forms: f, payouts: p, imm: imm, keys: keys}
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

// domainLines is DOMAIN.md §3's example: 1,000.00 at 13% (2 units) and 500.00 at 9%:
// A 1,500.00, G 150.00, F (2%) 30.00, N 120.00.
var domainLines = []line{{2, "1000.00", "0.13"}, {1, "500.00", "0.09"}}

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
	return e.forms.Issue(e.ctx, forms.IssueRequest{
		Idem:        forms.Idempotency{Caller: "store/" + store, RequestID: uuid.New(), Hash: forms.HashOf([]byte(inv))},
		StoreCode:   store,
		Application: app,
	})
}

// issue issues a form today at store, failing the test on error.
func (e *env) issue(store string, doc refund.Document, lines ...line) forms.Form {
	e.t.Helper()
	if len(lines) == 0 {
		lines = domainLines
	}
	f, err := e.tryIssue(store, doc, lines...)
	if err != nil {
		e.t.Fatalf("issue at %s: %v", store, err)
	}
	return f
}

// payReq is a prepayment of form number at desk for the traveller doc, with a fresh
// request_id: a hold of exactly 120.00 on a card expiring 2027-12, departure at TFU, the
// committed date left to the default.
func payReq(desk, number string, doc refund.Document) immediate.PayRequest {
	r := immediate.PayRequest{
		Idem:      idempotency.Key{Caller: "desk/" + desk + "/cashier-7", RequestID: uuid.New()},
		DeskCode:  desk,
		Cashier:   "cashier-7",
		Number:    number,
		Presented: doc,
		Agreement: "AGR-" + number,
		PreAuth: immediate.PreAuth{
			Token: testToken(), Last4: "4242",
			Expiry: time.Date(2027, 12, 1, 0, 0, 0, 0, time.UTC), Authorized: decimal.RequireFromString("120.00"),
		},
		DeparturePort: "TFU",
	}
	rehash(&r)
	return r
}

// rehash sets the request's content hash, as the gRPC layer's canonical hash would.
func rehash(r *immediate.PayRequest) {
	r.Idem.Hash = idempotency.Hash(fmt.Appendf(nil, "%s|%s|%v|%s|%+v|%s|%s", r.DeskCode, r.Number, r.Presented, r.Agreement,
		r.PreAuth, r.DeparturePort, r.CommittedDate))
}

func (e *env) pay(r immediate.PayRequest) (immediate.Prepayment, error) {
	return e.imm.Pay(e.ctx, r)
}

func (e *env) mustPay(r immediate.PayRequest) immediate.Prepayment {
	e.t.Helper()
	p, err := e.pay(r)
	if err != nil {
		e.t.Fatalf("pay %s at %s: %v", r.Number, r.DeskCode, err)
	}
	return p
}

// prepaid issues a DOMAIN example form at S-CXL-1 and prepays it at IFS-RP.
func (e *env) prepaid(doc refund.Document) (forms.Form, immediate.Prepayment) {
	e.t.Helper()
	f := e.issue("S-CXL-1", doc)
	return f, e.mustPay(payReq("IFS-RP", f.Number, doc))
}

func (e *env) returnPrepayment(desk, number string) (immediate.Prepayment, error) {
	return e.imm.Return(e.ctx, immediate.ReturnRequest{
		Idem:     idempotency.Key{Caller: "desk/" + desk + "/cashier-7", RequestID: uuid.New(), Hash: idempotency.Hash([]byte(number))},
		DeskCode: desk, Number: number,
	})
}

// immediateKey is a cashier's idempotency key at desk for a request about what.
func immediateKey(desk, what string) idempotency.Key {
	return idempotency.Key{Caller: "desk/" + desk + "/cashier-7", RequestID: uuid.New(), Hash: idempotency.Hash([]byte(what))}
}

func (e *env) void(store, number string) (forms.Form, error) {
	return e.forms.Void(e.ctx, forms.VoidRequest{
		Idem:      forms.Idempotency{Caller: "store/" + store, RequestID: uuid.New(), Hash: forms.HashOf([]byte(number))},
		StoreCode: store, Number: number, Reason: "goods returned",
	})
}

// all confirms every unit of f.
func all(f forms.Form) map[int]int32 {
	out := map[int]int32{}
	for _, l := range f.Lines {
		out[l.No] = l.Quantity
	}
	return out
}

func (e *env) verify(port, number string, doc refund.Document, confirmed map[int]int32) (forms.Form, error) {
	return e.forms.Verify(e.ctx, forms.VerifyRequest{
		Idem: forms.Idempotency{Caller: "customs/" + port + "/officer-3", RequestID: uuid.New(),
			Hash: forms.HashOf(fmt.Appendf(nil, "%s|%v", number, confirmed))},
		Port: port, Officer: "officer-3", Number: number, Presented: doc, Confirmed: confirmed,
	})
}

func (e *env) mustVerify(port string, f forms.Form, doc refund.Document, confirmed map[int]int32) forms.Form {
	e.t.Helper()
	if confirmed == nil {
		confirmed = all(f)
	}
	v, err := e.verify(port, f.Number, doc, confirmed)
	if err != nil {
		e.t.Fatalf("verify %s at %s: %v", f.Number, port, err)
	}
	return v
}

func (e *env) settle(desk string, doc refund.Document, numbers ...string) (payouts.Payout, error) {
	return e.payouts.Settle(e.ctx, payouts.SettleRequest{
		Idem:     idempotency.Key{Caller: "desk/" + desk + "/cashier-2", RequestID: uuid.New(), Hash: idempotency.Hash([]byte(strings.Join(numbers, ",")))},
		DeskCode: desk, Cashier: "cashier-2", Numbers: numbers, Presented: doc, Method: payouts.Cash, Receipt: "RCPT-" + desk,
	})
}

func (e *env) captures() int {
	e.t.Helper()
	n, err := e.imm.Captures(e.ctx, "test capture job")
	if err != nil {
		e.t.Fatalf("captures: %v", err)
	}
	return n
}

func (e *env) setDay(day string, working bool, note string) {
	e.t.Helper()
	key := idempotency.Key{Caller: "authority/sat-test", RequestID: uuid.New(), Hash: idempotency.Hash([]byte(day + note))}
	if err := e.imm.SetCalendarDay(e.ctx, key, date(e.t, day), working, note); err != nil {
		e.t.Fatalf("set calendar day %s: %v", day, err)
	}
}

// tables are the tables a refused request must leave untouched.
var tables = []string{
	"forms", "form_lines", "journal_txns", "journal_entries", "pending_resolutions", "idempotency_keys",
	"audit_events", "payouts", "payout_forms", "prepayments", "acquirer_outbox", "calendar_days",
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

func sameCounts(t *testing.T, what string, before, after map[string]int) {
	t.Helper()
	for _, tbl := range tables {
		if before[tbl] != after[tbl] {
			t.Errorf("%s: %s has %d rows before, %d after: a refused request wrote", what, tbl, before[tbl], after[tbl])
		}
	}
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

// pendingBal returns an account's pending balance (debit − credit) with two decimals.
func (e *env) pendingBal(code string) string {
	e.t.Helper()
	b, err := e.ledger.Balance(e.ctx, e.pool, code)
	if err != nil {
		e.t.Fatal(err)
	}
	return b.Pending.StringFixed(2)
}

// wantBalances checks posted balances, by account code.
func (e *env) wantBalances(what string, want map[string]string) {
	e.t.Helper()
	for code, w := range want {
		if got := e.posted(code); got != w {
			e.t.Errorf("%s: %s posted %s, want %s", what, code, got, w)
		}
	}
}

// entries lists the entries of the journal transaction with idem key k, e.g.
// "D agency:AG-CD:prepayments 120.00", debits first, then by account and amount.
func (e *env) entries(k string) []string {
	e.t.Helper()
	rows, err := e.pool.Query(e.ctx, `
		SELECT e.side::text || CASE WHEN e.pending THEN ' pending ' ELSE ' ' END || a.code || ' ' || to_char(e.amount, 'FM999999999990.00')
		  FROM journal_txns t JOIN journal_entries e ON e.txn_id = t.id JOIN accounts a ON a.id = e.account_id
		 WHERE t.idem_key = $1 ORDER BY e.side DESC, a.code, e.amount`, k)
	if err != nil {
		e.t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *env) wantEntries(k string, want ...string) {
	e.t.Helper()
	got := e.entries(k)
	slices.Sort(got)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		e.t.Errorf("journal txn %s:\n\tgot  %q\n\twant %q", k, got, want)
	}
}

// txnKind returns the kind and effective date of the journal transaction with idem key k.
func (e *env) txnKind(k string) (string, string) {
	e.t.Helper()
	var kind string
	var eff time.Time
	if err := e.pool.QueryRow(e.ctx, `SELECT kind, effective_date FROM journal_txns WHERE idem_key = $1`, k).Scan(&kind, &eff); err != nil {
		e.t.Fatalf("journal txn %s: %v", k, err)
	}
	return kind, eff.Format(time.DateOnly)
}

// prepaymentOf reads the prepayment row of form id.
func (e *env) prepaymentOf(formID uuid.UUID) db.Prepayment {
	e.t.Helper()
	p, err := db.New().PrepaymentOfForm(e.ctx, e.pool, formID)
	if err != nil {
		e.t.Fatalf("prepayment of form %s: %v", formID, err)
	}
	return p
}

func (e *env) formState(number string) refund.State {
	e.t.Helper()
	f, err := e.forms.FindByNumber(e.ctx, number)
	if err != nil {
		e.t.Fatalf("find %s: %v", number, err)
	}
	return f.State
}

// outboxRow is an acquirer instruction as stored.
type outboxRow struct {
	Key, Kind, Amount, Token string
	Prepayment               uuid.UUID
}

func (r outboxRow) String() string { return fmt.Sprintf("%s %s %s", r.Key, r.Kind, r.Amount) }

// outbox lists the acquirer outbox in id order.
func (e *env) outbox() []outboxRow {
	e.t.Helper()
	rows, err := e.pool.Query(e.ctx, `SELECT idem_key, kind, to_char(amount, 'FM999999999990.00'), card_token, prepayment_id FROM acquirer_outbox ORDER BY id`)
	if err != nil {
		e.t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (outboxRow, error) {
		var o outboxRow
		err := r.Scan(&o.Key, &o.Kind, &o.Amount, &o.Token, &o.Prepayment)
		return o, err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// outboxOf lists the instructions for one prepayment, as "KIND amount".
func (e *env) outboxOf(id uuid.UUID) []string {
	e.t.Helper()
	var out []string
	for _, o := range e.outbox() {
		if o.Prepayment == id {
			out = append(out, o.Kind+" "+o.Amount)
		}
	}
	return out
}

func (e *env) checkInvariants(what string) {
	e.t.Helper()
	vs, err := invariants.Check(e.ctx, e.pool)
	if err != nil {
		e.t.Fatalf("invariants: %v", err)
	}
	for _, v := range vs {
		e.t.Errorf("%s: invariant %s violated: %s", what, v.Invariant, v.Detail)
	}
}

// wantFault fails unless err is a *fault.Error of kind k and reason; fields, when given,
// must be exactly the violations' fields, in order ("-" for none).
func wantFault(t *testing.T, err error, k fault.Kind, reason string, fields ...string) *fault.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s %s %q", k, reason, fields)
	}
	fe, ok := fault.As(err)
	if !ok {
		t.Fatalf("got %T %v, want a *fault.Error %s %s", err, err, k, reason)
	}
	if fe.Kind != k || fe.Reason != reason {
		t.Fatalf("got %s %s (%v), want %s %s", fe.Kind, fe.Reason, err, k, reason)
	}
	if len(fields) > 0 {
		got := []string{}
		for _, v := range fe.Violations {
			got = append(got, v.Field)
		}
		want := fields
		if len(fields) == 1 && fields[0] == "-" {
			want = []string{}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: violations name %q, want %q", reason, got, want)
		}
	}
	return fe
}

func reasonOf(err error) string {
	if err == nil {
		return "OK"
	}
	if fe, ok := fault.As(err); ok {
		return fe.Reason
	}
	return "ERROR " + err.Error()
}

func fixed(d decimal.Decimal) string { return d.StringFixed(2) }

func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// cardPattern finds a 16-digit test card number, whatever separators were used.
const cardPattern = `4111[^0-9]?1111[^0-9]?1111[^0-9]?1111`

// cardNumberRows counts, per table of the public schema, the rows whose text form (bytea
// columns decoded, so that stored JSON answers are searched too) contains a card number
// matching cardPattern.
func (e *env) cardNumberRows() map[string]int {
	e.t.Helper()
	rows, err := e.pool.Query(e.ctx, `
		SELECT t.table_name, coalesce(string_agg(format('encode(x.%I, ''escape'')', c.column_name), ' || ') FILTER (WHERE c.data_type = 'bytea'), '''''')
		  FROM information_schema.tables t JOIN information_schema.columns c USING (table_schema, table_name)
		 WHERE t.table_schema = 'public' AND t.table_type = 'BASE TABLE'
		 GROUP BY t.table_name ORDER BY 1`)
	if err != nil {
		e.t.Fatal(err)
	}
	type table struct{ name, bytes string }
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (table, error) {
		var tb table
		err := r.Scan(&tb.name, &tb.bytes)
		return tb, err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]int{}
	for _, tb := range list {
		var c int
		q := fmt.Sprintf(`SELECT count(*) FROM %s x WHERE x::text ~ $1 OR (%s) ~ $1`, pgx.Identifier{tb.name}.Sanitize(), tb.bytes)
		if err := e.pool.QueryRow(e.ctx, q, cardPattern).Scan(&c); err != nil {
			e.t.Fatalf("scan %s: %v\n%s", tb.name, err, q)
		}
		if c > 0 {
			out[tb.name] = c
		}
	}
	return out
}

// testToken is a random acquirer token without digits: a run of random hex digits could
// pass the Luhn check and be refused as a card number.
func testToken() string {
	return "tok_" + strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return 'g' + (r - '0')
		}
		return r
	}, strings.ReplaceAll(uuid.NewString(), "-", ""))
}
