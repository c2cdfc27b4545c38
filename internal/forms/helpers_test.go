package forms_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"taxrefund/internal/dbtest"
	"taxrefund/internal/fault"
	"taxrefund/internal/forms"
	"taxrefund/internal/invariants"
	"taxrefund/internal/ledger"
	"taxrefund/internal/money"
	"taxrefund/internal/params"
	"taxrefund/internal/refund"
)

// The fixture of the issuing and voiding tests: a fresh database of the test's own with
// dbtest.Registry's stores and parameters, and the forms service on a settable clock.

// noonMarch10 is 2026-03-10 12:00 in Shanghai, after the 2025-04-27 change of the minimum
// to 200.00.
var noonMarch10 = time.Date(2026, 3, 10, 4, 0, 0, 0, time.UTC)

// The default traveller: a French passport, last entry 2026-02-28 (10 days before
// 2026-03-10), valid until 2030.
const (
	defaultDoc = "E1234567"
)

var (
	defaultLastEntry = civilDate("2026-02-28")
	defaultExpiry    = civilDate("2030-01-01")
)

type skeleton struct {
	t      testing.TB
	ctx    context.Context
	pool   *pgxpool.Pool
	clock  *dbtest.Clock
	ledger *ledger.Store
	svc    *forms.Service
	nextNo *atomic.Int64
}

// newSkeleton returns the fixture with its clock at now.
func newSkeleton(t testing.TB, now time.Time) *skeleton {
	t.Helper()
	pool := dbtest.NewPool(t)
	dbtest.Registry(t, pool)
	clock := dbtest.NewClock(now)
	ls := ledger.NewStore()
	svc := forms.New(forms.Deps{
		Pool: pool, Ledger: ls, Keys: dbtest.Keyring(t), Params: params.NewCache(pool, 0),
		Now: clock.Now, Log: slog.New(slog.DiscardHandler),
	})
	return &skeleton{t: t, ctx: context.Background(), pool: pool, clock: clock, ledger: ls, svc: svc, nextNo: new(atomic.Int64)}
}

// as returns the fixture reporting to t (a subtest's).
func (s *skeleton) as(t testing.TB) *skeleton {
	c := *s
	c.t = t
	return &c
}

// warmAccounts creates the two ledger accounts issuing uses (and caches their ids), so that
// a race test races on what it means to test, not on the accounts' first use.
func (s *skeleton) warmAccounts() {
	s.t.Helper()
	if _, err := s.ledger.Accounts(s.ctx, s.pool, ledger.RefundExpense, ledger.RefundPayable); err != nil {
		s.t.Fatalf("accounts: %v", err)
	}
}

// today is the clock's Asia/Shanghai date.
func (s *skeleton) today() time.Time { return refund.LocalDate(s.clock.Now()) }

// civilDate parses "YYYY-MM-DD" as a civil date (00:00 UTC).
func civilDate(v string) time.Time {
	d, err := time.Parse(time.DateOnly, v)
	if err != nil {
		panic(fmt.Sprintf("bad test date %q: %v", v, err))
	}
	return d
}

// cny parses an amount or rate written out in a test.
func cny(v string) decimal.Decimal { return decimal.RequireFromString(v) }

// goods is one unit of general (refundable) goods of amount at VAT rate vat.
func goods(amount, vat string) refund.Line {
	return refund.Line{Description: "goods", Category: refund.General, VATRate: cny(vat), Quantity: 1, Amount: cny(amount)}
}

// passport is the default traveller with a foreign (FR) passport numbered doc.
func passport(doc string) refund.Traveller {
	return refund.Traveller{
		Document:    refund.Document{Type: refund.Passport, Number: doc, IssuingCountry: "FR"},
		Expiry:      defaultExpiry,
		Nationality: "FR",
		LastEntry:   defaultLastEntry,
	}
}

// invoiceNo returns a fresh invoice number.
func (s *skeleton) invoiceNo() string {
	return fmt.Sprintf("INV%08d", s.nextNo.Add(1))
}

// sale is an application by the traveller for lines, all on one fresh invoice dated today.
func (s *skeleton) sale(tr refund.Traveller, lines ...refund.Line) refund.Application {
	return s.saleOn(tr, s.invoiceNo(), lines...)
}

// saleOn is sale on the invoice numbered invoice.
func (s *skeleton) saleOn(tr refund.Traveller, invoice string, lines ...refund.Line) refund.Application {
	ls := slices.Clone(lines)
	for i := range ls {
		ls[i].InvoiceNumber = invoice
	}
	return refund.Application{
		Traveller: tr,
		Invoices:  []refund.Invoice{{Number: invoice, Date: s.today()}},
		Lines:     ls,
	}
}

// caller is how a store appears as the idempotency caller.
func caller(store string) string { return "taxrefund://store/" + store }

// issueHash is the content hash of an issue request: its JSON, which is deterministic.
func issueHash(store string, app refund.Application) []byte {
	b, err := json.Marshal(struct {
		Store string
		App   refund.Application
	}{store, app})
	if err != nil {
		panic(err)
	}
	return forms.HashOf(b)
}

// issueAs issues app at store with request id rid.
func (s *skeleton) issueAs(rid uuid.UUID, store string, app refund.Application) (forms.Form, error) {
	return s.svc.Issue(s.ctx, forms.IssueRequest{
		Idem:        forms.Idempotency{Caller: caller(store), RequestID: rid, Hash: issueHash(store, app)},
		StoreCode:   store,
		Application: app,
	})
}

// issue issues app at store with a fresh request id.
func (s *skeleton) issue(store string, app refund.Application) (forms.Form, error) {
	return s.issueAs(uuid.New(), store, app)
}

// mustIssue issues app at store and fails the test on any error.
func (s *skeleton) mustIssue(store string, app refund.Application) forms.Form {
	s.t.Helper()
	f, err := s.issue(store, app)
	if err != nil {
		s.t.Fatalf("issue at %s: %v", store, err)
	}
	return f
}

// voidAs voids number as store with request id rid.
func (s *skeleton) voidAs(rid uuid.UUID, store, number string) (forms.Form, error) {
	reason := "goods returned"
	b, _ := json.Marshal([]string{store, number, reason})
	return s.svc.Void(s.ctx, forms.VoidRequest{
		Idem:      forms.Idempotency{Caller: caller(store), RequestID: rid, Hash: forms.HashOf(b)},
		StoreCode: store, Number: number, Reason: reason,
	})
}

// void voids number as store with a fresh request id.
func (s *skeleton) void(store, number string) (forms.Form, error) {
	return s.voidAs(uuid.New(), store, number)
}

// mustVoid voids number as store and fails the test on any error.
func (s *skeleton) mustVoid(store, number string) forms.Form {
	s.t.Helper()
	f, err := s.void(store, number)
	if err != nil {
		s.t.Fatalf("void %s at %s: %v", number, store, err)
	}
	return f
}

// countedTables are the tables a request writes to.
var countedTables = []string{
	"forms", "form_lines", "form_invoices", "journal_txns", "journal_entries",
	"pending_transfers", "pending_resolutions", "idempotency_keys", "audit_events", "account_balances_sum",
}

// rowCounts are the row counts of countedTables ("account_balances_sum" is the sum of
// every maintained balance column, in fen, so that a change to a balance shows).
type rowCounts map[string]int64

func (s *skeleton) counts() rowCounts {
	s.t.Helper()
	q := "SELECT "
	for i, table := range countedTables {
		if i > 0 {
			q += ", "
		}
		if table == "account_balances_sum" {
			q += "(SELECT coalesce(sum(posted_dr + posted_cr + pending_dr + pending_cr) * 100, 0)::bigint FROM account_balances)"
		} else {
			q += "(SELECT count(*) FROM " + table + ")"
		}
	}
	n := make([]int64, len(countedTables))
	dest := make([]any, len(n))
	for i := range n {
		dest[i] = &n[i]
	}
	if err := s.pool.QueryRow(s.ctx, q).Scan(dest...); err != nil {
		s.t.Fatalf("count rows: %v", err)
	}
	out := rowCounts{}
	for i, table := range countedTables {
		out[table] = n[i]
	}
	return out
}

// requireUnchanged fails unless the counts are still before.
func (s *skeleton) requireUnchanged(before rowCounts, after string) {
	s.t.Helper()
	now := s.counts()
	if !maps.Equal(before, now) {
		s.t.Errorf("after %s the database changed:\n before %v\n after  %v", after, before, now)
	}
}

// requireCount fails unless table holds want rows.
func (s *skeleton) requireCount(table string, want int64) {
	s.t.Helper()
	if got := s.counts()[table]; got != want {
		s.t.Errorf("%s has %d rows, want %d", table, got, want)
	}
}

// requireBalance fails unless the maintained balance of account is posted/pending (debit
// minus credit).
func (s *skeleton) requireBalance(account, posted, pending string) {
	s.t.Helper()
	b, err := s.ledger.Balance(s.ctx, s.pool, account)
	if err != nil {
		s.t.Fatalf("balance %s: %v", account, err)
	}
	if !b.Posted.Equal(cny(posted)) || !b.Pending.Equal(cny(pending)) {
		s.t.Errorf("%s balance is posted %s / pending %s, want %s / %s", account, b.Posted, b.Pending, posted, pending)
	}
}

// requireConsistent fails on any violation of DOMAIN.md §8's invariants.
func (s *skeleton) requireConsistent() {
	s.t.Helper()
	vs, err := invariants.Check(s.ctx, s.pool)
	if err != nil {
		s.t.Fatalf("invariants: %v", err)
	}
	for _, v := range vs {
		s.t.Errorf("invariant %s violated: %s", v.Invariant, v.Detail)
	}
}

// requireFault fails unless err is a *fault.Error of kind k with the reason and, when
// field is not empty, exactly one violation, naming field. It returns the error.
func requireFault(t testing.TB, err error, k fault.Kind, reason, field string) *fault.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s %s (field %q)", k, reason, field)
	}
	fe, ok := fault.As(err)
	if !ok {
		t.Fatalf("got %T %v, want a *fault.Error %s %s", err, err, k, reason)
	}
	if fe.Kind != k || fe.Reason != reason {
		t.Fatalf("got %s %s (%v), want %s %s", fe.Kind, fe.Reason, err, k, reason)
	}
	if field != "" {
		var fields []string
		for _, v := range fe.Violations {
			fields = append(fields, v.Field)
		}
		if len(fields) != 1 || fields[0] != field {
			t.Errorf("got violations on %q, want exactly one on %q", fields, field)
		}
	}
	return fe
}

// requireAmounts fails unless f's A and G are the strings given.
func requireAmounts(t testing.TB, f forms.Form, eligible, gross string) {
	t.Helper()
	if got := money.Format(f.Eligible); got != eligible {
		t.Errorf("form %s: A = %s, want %s", f.Number, got, eligible)
	}
	if got := money.Format(f.Gross); got != gross {
		t.Errorf("form %s: G = %s, want %s", f.Number, got, gross)
	}
}
