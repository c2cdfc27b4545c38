package settlement_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"taxrefund/internal/db"
	"taxrefund/internal/dbtest"
	"taxrefund/internal/fault"
	"taxrefund/internal/forms"
	"taxrefund/internal/idempotency"
	"taxrefund/internal/ledger"
	"taxrefund/internal/payouts"
	"taxrefund/internal/settlement"
)

// lineOf is the declaration line a payout's share of form f must give.
func lineOf(p payouts.Payout, f forms.Form, g, fee, n string) settlement.Line {
	return settlement.Line{
		FormNumber: f.Number, PayoutID: p.ID, StoreCode: f.StoreCode, VerifiedPort: f.Verification.Port,
		VerifiedAt: f.Verification.At, Receipt: p.ReceiptReference, PaidAt: p.PaidAt,
		Gross: decimal.RequireFromString(g), Fee: decimal.RequireFromString(fee), Net: decimal.RequireFromString(n),
	}
}

func showLine(l settlement.Line) string {
	return fmt.Sprintf("%s payout=%s store=%s port=%s verified=%s receipt=%s paid=%s G=%s F=%s N=%s",
		l.FormNumber, l.PayoutID, l.StoreCode, l.VerifiedPort, l.VerifiedAt.UTC().Format(time.RFC3339Nano), l.Receipt,
		l.PaidAt.UTC().Format(time.RFC3339Nano), fixed(l.Gross), fixed(l.Fee), fixed(l.Net))
}

func wantLines(t *testing.T, got, want []settlement.Line) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d lines, want %d", len(got), len(want))
	}
	for i := range max(len(got), len(want)) {
		var g, w string
		if i < len(got) {
			g = showLine(got[i])
		}
		if i < len(want) {
			w = showLine(want[i])
		}
		if g != w {
			t.Errorf("line %d:\n\tgot  %s\n\twant %s", i, g, w)
		}
	}
}

// octoberLinesCQ are AG-CQ's October lines of the fixture, in paid_at then number order.
func octoberLinesCQ(o october) []settlement.Line {
	p2 := o.Forms[o.P2.ID]
	// Within P2 the lines are in form number order.
	p2Lines := []settlement.Line{}
	for _, f := range p2 {
		if f.StoreCode == "S-JFB-2" {
			p2Lines = append(p2Lines, lineOf(o.P2, f, "40.00", "10.00", "30.00"))
		} else {
			p2Lines = append(p2Lines, lineOf(o.P2, f, "220.00", "40.00", "180.00"))
		}
	}
	slices.SortFunc(p2Lines, func(a, b settlement.Line) int { return strings.Compare(a.FormNumber, b.FormNumber) })
	lines := []settlement.Line{lineOf(o.P1, o.Forms[o.P1.ID][0], "110.00", "20.00", "90.00")}
	lines = append(lines, p2Lines...)
	return append(lines, lineOf(o.P3, o.Forms[o.P3.ID][0], "33.00", "6.00", "27.00"))
}

func TestDeclareListsEveryPayoutOfTheMonth(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.october()
	k := key(cashierCQ, "declare 2026-10")
	d, err := e.svc.Declare(e.ctx, k, "AG-CQ", month(2026, 10))
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != settlement.Declared || d.AgencyCode != "AG-CQ" || !d.Month.Equal(month(2026, 10)) ||
		d.DeclaredBy != cashierCQ || !d.DeclaredAt.Equal(local(2026, 11, 3, 10, 0)) ||
		d.ReviewedBy != nil || d.ReviewedAt != nil || d.TxnID != nil || len(d.ReturnReasons) != 0 {
		t.Errorf("declaration %+v", d.Declaration)
	}
	// P1 (110.00/20.00/90.00), P2 (40.00/10.00/30.00 + 220.00/40.00/180.00) and P3
	// (33.00/6.00/27.00); not P0 (paid 09-30 23:00) nor P4 (paid 11-01 00:30).
	if d.Forms != 4 || fixed(d.GrossRefund) != "403.00" || fixed(d.Fee) != "76.00" || fixed(d.NetRefund) != "327.00" {
		t.Errorf("totals %d forms %s/%s/%s, want 4 forms 403.00/76.00/327.00", d.Forms, fixed(d.GrossRefund), fixed(d.Fee), fixed(d.NetRefund))
	}
	want := octoberLinesCQ(o)
	wantLines(t, d.Lines, want)
	var g, f, n decimal.Decimal
	for _, l := range d.Lines {
		g, f, n = g.Add(l.Gross), f.Add(l.Fee), n.Add(l.Net)
	}
	if !g.Equal(d.GrossRefund) || !f.Equal(d.Fee) || !n.Equal(d.NetRefund) {
		t.Errorf("lines sum to %s/%s/%s, totals say %s/%s/%s", g, f, n, d.GrossRefund, d.Fee, d.NetRefund)
	}

	// What was stored reads back the same, for the owner and the authority only.
	for _, owner := range []string{"", "AG-CQ"} {
		got, err := e.svc.Get(e.ctx, d.ID, owner)
		if err != nil {
			t.Fatalf("Get as %q: %v", owner, err)
		}
		wantLines(t, got.Lines, want)
		if got.Forms != 4 || fixed(got.GrossRefund) != "403.00" || got.Status != settlement.Declared {
			t.Errorf("Get as %q: %+v", owner, got.Declaration)
		}
	}
	_, err = e.svc.Get(e.ctx, d.ID, "AG-CD")
	wantFault(t, err, fault.NotFound, "DECLARATION_NOT_FOUND", "declaration_id")
	if n := e.count(`SELECT count(*) FROM declaration_payouts WHERE declaration_id = $1`, d.ID); n != 3 {
		t.Errorf("%d declared payouts, want 3 (P1, P2, P3)", n)
	}
	if n := e.count(`SELECT count(*) FROM audit_events WHERE actor = $1 AND action = 'MONTH_DECLARED' AND object = $2 AND request_id = $3`,
		cashierCQ, d.ID.String(), k.RequestID); n != 1 {
		t.Errorf("%d MONTH_DECLARED audit events, want 1", n)
	}

	// AG-CD's October is P5 alone; AG-CQ's September is P0 alone.
	cd, err := e.svc.Declare(e.ctx, key(cashierCD, "declare 2026-10"), "AG-CD", month(2026, 10))
	if err != nil {
		t.Fatal(err)
	}
	wantLines(t, cd.Lines, []settlement.Line{lineOf(o.P5, o.Forms[o.P5.ID][0], "132.00", "24.00", "108.00")})
	if cd.Forms != 1 || fixed(cd.GrossRefund) != "132.00" || fixed(cd.Fee) != "24.00" || fixed(cd.NetRefund) != "108.00" {
		t.Errorf("AG-CD totals %d %s/%s/%s", cd.Forms, fixed(cd.GrossRefund), fixed(cd.Fee), fixed(cd.NetRefund))
	}
	sep, err := e.svc.Declare(e.ctx, key(cashierCQ, "declare 2026-09"), "AG-CQ", month(2026, 9))
	if err != nil {
		t.Fatal(err)
	}
	wantLines(t, sep.Lines, []settlement.Line{lineOf(o.P0, o.Forms[o.P0.ID][0], "88.00", "16.00", "72.00")})

	// A month without payouts is declared empty.
	aug, err := e.svc.Declare(e.ctx, key(cashierCQ, "declare 2026-08"), "AG-CQ", month(2026, 8))
	if err != nil {
		t.Fatal(err)
	}
	if aug.Forms != 0 || len(aug.Lines) != 0 || !aug.GrossRefund.IsZero() {
		t.Errorf("empty month: %+v", aug)
	}

	// Declaring does not settle anything.
	for number, state := range e.states() {
		if state != "REFUNDED" {
			t.Errorf("form %s is %s after declaring, want REFUNDED", number, state)
		}
	}

	// A retry returns the first declaration and writes nothing.
	before := e.counts()
	again, err := e.svc.Declare(e.ctx, k, "AG-CQ", month(2026, 10))
	if err != nil || again.ID != d.ID || len(again.Lines) != 4 {
		t.Errorf("retry: %v, %v (%d lines), want %s", err, again.ID, len(again.Lines), d.ID)
	}
	sameCounts(t, "retry", before, e.counts())
}

func TestDeclareRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.october() // clock at 2026-11-03 10:00
	refuse := func(what string, at time.Time, agency string, m time.Time, reason string) {
		t.Helper()
		e.clock.Set(at)
		before := e.counts()
		_, err := e.svc.Declare(e.ctx, key(cashierCQ, what), agency, m)
		wantFault(t, err, fault.Precondition, reason, "month")
		sameCounts(t, what, before, e.counts())
	}
	nov3 := local(2026, 11, 3, 10, 0)
	refuse("the current month", nov3, "AG-CQ", month(2026, 11), "MONTH_NOT_ENDED")
	refuse("next month", nov3, "AG-CQ", month(2026, 12), "MONTH_NOT_ENDED")
	refuse("next year", nov3, "AG-CQ", month(2027, 10), "MONTH_NOT_ENDED")
	// Months before the agency was appointed: the year 1, before the national scheme
	// (2015-01-01, the default), and before AG-CQ's appointment on 2018-03-01.
	refuse("0001-01", nov3, "AG-CQ", month(1, 1), "MONTH_BEFORE_AGENCY")
	refuse("2014-12, before the scheme", nov3, "AG-CD", month(2014, 12), "MONTH_BEFORE_AGENCY")
	if _, err := e.pool.Exec(e.ctx, `UPDATE agencies SET appointed_on = '2018-03-01' WHERE code = 'AG-CQ'`); err != nil {
		t.Fatal(err)
	}
	refuse("2018-02, before AG-CQ was appointed", nov3, "AG-CQ", month(2018, 2), "MONTH_BEFORE_AGENCY")
	// 2026-10-31 23:30 in Shanghai: October has not ended there.
	refuse("October on its last evening", local(2026, 10, 31, 23, 30), "AG-CD", month(2026, 10), "MONTH_NOT_ENDED")
	// 2026-11-01 00:30 in Shanghai (still October 31 in UTC): October has ended.
	e.clock.Set(local(2026, 11, 1, 0, 30))
	if _, err := e.svc.Declare(e.ctx, key(cashierCD, "oct"), "AG-CD", month(2026, 10)); err != nil {
		t.Fatalf("October just after local midnight: %v", err)
	}

	e.clock.Set(nov3)
	d, err := e.svc.Declare(e.ctx, key(cashierCQ, "oct"), "AG-CQ", month(2026, 10))
	if err != nil {
		t.Fatal(err)
	}
	// Once per agency and month, whoever declares.
	refuse("October again", nov3, "AG-CQ", month(2026, 10), "ALREADY_DECLARED")
	before := e.counts()
	_, err = e.svc.Declare(e.ctx, key("taxrefund://agency/AG-CQ/backoffice-1", "oct"), "AG-CQ", month(2026, 10))
	wantFault(t, err, fault.Precondition, "ALREADY_DECLARED", "month")
	sameCounts(t, "October again by the back office", before, e.counts())

	// Review refusals.
	before = e.counts()
	_, err = e.svc.Return(e.ctx, key(officer, "no reasons"), d.ID, nil)
	wantFault(t, err, fault.Invalid, "INVALID_REQUEST", "reasons")
	_, err = e.svc.Approve(e.ctx, key(officer, "unknown"), uuid.New())
	wantFault(t, err, fault.NotFound, "DECLARATION_NOT_FOUND", "declaration_id")
	_, err = e.svc.Return(e.ctx, key(officer, "unknown"), uuid.New(), []string{"why"})
	wantFault(t, err, fault.NotFound, "DECLARATION_NOT_FOUND", "declaration_id")
	sameCounts(t, "review refusals", before, e.counts())
}

func TestReturnThenDeclareAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.october()
	d1, err := e.svc.Declare(e.ctx, key(cashierCQ, "oct"), "AG-CQ", month(2026, 10))
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Set(local(2026, 11, 6, 15, 0))
	reasons := []string{"receipt of P2 not signed", "CKG-02 cash count differs"}
	k := key(officer, "return")
	r, err := e.svc.Return(e.ctx, k, d1.ID, reasons)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != settlement.Returned || r.ReviewedBy == nil || *r.ReviewedBy != officer || r.ReviewedAt == nil ||
		!r.ReviewedAt.Equal(local(2026, 11, 6, 15, 0)) || fmt.Sprint(r.ReturnReasons) != fmt.Sprint(reasons) || r.TxnID != nil {
		t.Errorf("returned %+v", r.Declaration)
	}
	stored, err := e.svc.Get(e.ctx, d1.ID, "AG-CQ")
	if err != nil || stored.Status != settlement.Returned || fmt.Sprint(stored.ReturnReasons) != fmt.Sprint(reasons) {
		t.Errorf("stored %+v, %v", stored.Declaration, err)
	}
	if n := e.count(`SELECT count(*) FROM audit_events WHERE actor = $1 AND action = 'DECLARATION_RETURNED' AND object = $2
		AND detail->'reasons' = to_jsonb($3::text[])`, officer, d1.ID.String(), reasons); n != 1 {
		t.Errorf("%d DECLARATION_RETURNED audit events with the reasons, want 1", n)
	}

	// A returned declaration cannot be reviewed again.
	before := e.counts()
	_, err = e.svc.Return(e.ctx, key(officer, "return again"), d1.ID, []string{"again"})
	fe := wantFault(t, err, fault.Precondition, "DECLARATION_STATUS", "declaration_id")
	if fe.Metadata["status"] != settlement.Returned {
		t.Errorf("metadata %v", fe.Metadata)
	}
	_, err = e.svc.Approve(e.ctx, key(officer, "approve returned"), d1.ID)
	wantFault(t, err, fault.Precondition, "DECLARATION_STATUS", "declaration_id")
	sameCounts(t, "review of a returned declaration", before, e.counts())

	// The agency corrects and declares again: a new declaration of the same payouts.
	e.clock.Set(local(2026, 11, 7, 9, 0))
	d2, err := e.svc.Declare(e.ctx, key(cashierCQ, "oct again"), "AG-CQ", month(2026, 10))
	if err != nil {
		t.Fatalf("declare after return: %v", err)
	}
	if d2.ID == d1.ID || d2.Status != settlement.Declared || d2.Forms != 4 || fixed(d2.GrossRefund) != "403.00" {
		t.Errorf("second declaration %+v", d2.Declaration)
	}
	wantLines(t, d2.Lines, octoberLinesCQ(o))
	all, err := e.svc.List(e.ctx, "AG-CQ", new(month(2026, 10)), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].ID != d2.ID || all[1].ID != d1.ID || all[0].Lines != nil {
		t.Errorf("list: %d declarations %v", len(all), all)
	}
	returned, err := e.svc.List(e.ctx, "", nil, settlement.Returned)
	if err != nil || len(returned) != 1 || returned[0].ID != d1.ID {
		t.Errorf("returned declarations: %v, %v", returned, err)
	}
	// Only the live declaration settles its forms.
	if _, err := e.svc.Approve(e.ctx, key(officer, "approve d2"), d2.ID); err != nil {
		t.Fatal(err)
	}
	settled := 0
	for _, s := range e.states() {
		if s == "SETTLED" {
			settled++
		}
	}
	if settled != 4 {
		t.Errorf("%d forms SETTLED, want 4", settled)
	}
	e.checkInvariants()
}

// entries lists the entries of journal transaction id, e.g. "D agency:AG-CQ:bank 403.00",
// debits first, then by account.
func (e *env) entries(id uuid.UUID) []string {
	e.t.Helper()
	rows, err := e.pool.Query(e.ctx, `
		SELECT e.side::text || ' ' || a.code || ' ' || to_char(e.amount, 'FM999999999990.00')
		  FROM journal_entries e JOIN accounts a ON a.id = e.account_id
		 WHERE e.txn_id = $1 ORDER BY e.side DESC, a.code`, id)
	if err != nil {
		e.t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func TestApproveReimbursesTheAgency(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.october()
	d, err := e.svc.Declare(e.ctx, key(cashierCQ, "oct"), "AG-CQ", month(2026, 10))
	if err != nil {
		t.Fatal(err)
	}
	// Before: AG-CQ was paid P0 88.00 + October 403.00 + P4 165.00 = 656.00; AG-CD 132.00.
	want := map[string]string{
		ledger.Receivable("AG-CQ"): "656.00", ledger.AgencyPayable("AG-CQ"): "-656.00",
		ledger.Treasury: "0.00", ledger.Bank("AG-CQ"): "0.00",
		ledger.Receivable("AG-CD"): "132.00", ledger.AgencyPayable("AG-CD"): "-132.00",
	}
	for acct, w := range want {
		if got := e.posted(acct); got != w {
			t.Errorf("before: %s posted %s, want %s", acct, got, w)
		}
	}

	e.clock.Set(local(2026, 11, 10, 14, 0))
	k := key(officer, "approve")
	a, err := e.svc.Approve(e.ctx, k, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if a.Status != settlement.Approved || a.ReviewedBy == nil || *a.ReviewedBy != officer ||
		a.ReviewedAt == nil || !a.ReviewedAt.Equal(local(2026, 11, 10, 14, 0)) || a.TxnID == nil {
		t.Fatalf("approved %+v", a.Declaration)
	}
	wantLines(t, a.Lines, octoberLinesCQ(o))

	// S = 403.00: the agency's receivable and the authority's payable both drop by S.
	want = map[string]string{
		ledger.Receivable("AG-CQ"): "253.00", ledger.AgencyPayable("AG-CQ"): "-253.00",
		ledger.Treasury: "-403.00", ledger.Bank("AG-CQ"): "403.00",
		ledger.Receivable("AG-CD"): "132.00", ledger.AgencyPayable("AG-CD"): "-132.00",
	}
	for acct, w := range want {
		if got := e.posted(acct); got != w {
			t.Errorf("after: %s posted %s, want %s", acct, got, w)
		}
	}
	wantEntries := []string{
		"D agency:AG-CQ:bank 403.00", "D authority:agency_payable:AG-CQ 403.00",
		"C agency:AG-CQ:receivable 403.00", "C authority:treasury 403.00",
	}
	if got := e.entries(*a.TxnID); fmt.Sprint(got) != fmt.Sprint(wantEntries) {
		t.Errorf("reimbursement entries %q, want %q", got, wantEntries)
	}
	var kind, ref string
	var eff time.Time
	if err := e.pool.QueryRow(e.ctx, `SELECT kind, ref, effective_date FROM journal_txns WHERE id = $1`, *a.TxnID).Scan(&kind, &ref, &eff); err != nil {
		t.Fatal(err)
	}
	if kind != "MONTH_REIMBURSED" || ref != d.ID.String() || eff.Format(time.DateOnly) != "2026-11-10" {
		t.Errorf("reimbursement txn %s %s %s", kind, ref, eff.Format(time.DateOnly))
	}
	stored, err := e.svc.Get(e.ctx, d.ID, "")
	if err != nil || stored.Status != settlement.Approved || stored.TxnID == nil || *stored.TxnID != *a.TxnID {
		t.Errorf("stored %+v, %v", stored.Declaration, err)
	}

	// The declared forms are SETTLED; P0, P4 (other months) and P5 (AG-CD) stay REFUNDED.
	states := e.states()
	for _, p := range []payouts.Payout{o.P0, o.P1, o.P2, o.P3, o.P4, o.P5} {
		w := "REFUNDED"
		if p.ID == o.P1.ID || p.ID == o.P2.ID || p.ID == o.P3.ID {
			w = "SETTLED"
		}
		for _, f := range o.Forms[p.ID] {
			if states[f.Number] != w {
				t.Errorf("form %s of payout %s is %s, want %s", f.Number, p.ID, states[f.Number], w)
			}
		}
	}
	e.checkInvariants()
	if n := e.count(`SELECT count(*) FROM audit_events WHERE actor = $1 AND action = 'DECLARATION_APPROVED' AND object = $2 AND request_id = $3`,
		officer, d.ID.String(), k.RequestID); n != 1 {
		t.Errorf("%d DECLARATION_APPROVED audit events, want 1", n)
	}

	// A retry returns the first answer; approving twice is refused; nothing is written.
	before := e.counts()
	again, err := e.svc.Approve(e.ctx, k, d.ID)
	if err != nil || again.Status != settlement.Approved || again.TxnID == nil || *again.TxnID != *a.TxnID {
		t.Errorf("retry: %+v, %v", again.Declaration, err)
	}
	_, err = e.svc.Approve(e.ctx, key(officer, "approve twice"), d.ID)
	fe := wantFault(t, err, fault.Precondition, "DECLARATION_STATUS", "declaration_id")
	if fe.Metadata["status"] != settlement.Approved {
		t.Errorf("metadata %v", fe.Metadata)
	}
	_, err = e.svc.Return(e.ctx, key(officer, "return approved"), d.ID, []string{"too late"})
	wantFault(t, err, fault.Precondition, "DECLARATION_STATUS", "declaration_id")
	_, err = e.svc.Declare(e.ctx, key(cashierCQ, "oct again"), "AG-CQ", month(2026, 10))
	wantFault(t, err, fault.Precondition, "ALREADY_DECLARED", "month")
	sameCounts(t, "second approval", before, e.counts())
	if got := e.posted(ledger.Receivable("AG-CQ")); got != "253.00" {
		t.Errorf("receivable after the refused second approval: %s", got)
	}

	// An empty month is approved without a journal transaction.
	aug, err := e.svc.Declare(e.ctx, key(cashierCQ, "aug"), "AG-CQ", month(2026, 8))
	if err != nil {
		t.Fatal(err)
	}
	txns := e.count(`SELECT count(*) FROM journal_txns`)
	augA, err := e.svc.Approve(e.ctx, key(officer, "approve aug"), aug.ID)
	if err != nil || augA.Status != settlement.Approved || augA.TxnID != nil {
		t.Errorf("empty month: %+v, %v", augA.Declaration, err)
	}
	if n := e.count(`SELECT count(*) FROM journal_txns`); n != txns {
		t.Errorf("an empty month's approval wrote %d journal transactions", n-txns)
	}
	e.checkInvariants()
}

// TestApproveRace: eight officials approve the same declaration at once; exactly one
// approval posts the reimbursement. Then eight retries of one request (same request_id)
// at once all get that one answer.
func TestApproveRace(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.october()
	cq, err := e.svc.Declare(e.ctx, key(cashierCQ, "oct"), "AG-CQ", month(2026, 10))
	if err != nil {
		t.Fatal(err)
	}
	cd, err := e.svc.Declare(e.ctx, key(cashierCD, "oct"), "AG-CD", month(2026, 10))
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	race := func(keys []idempotency.Key, id uuid.UUID) ([]settlement.Declaration, []error) {
		out := make([]settlement.Declaration, n)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				out[i], errs[i] = e.svc.Approve(e.ctx, keys[i], id)
			}()
		}
		close(start)
		wg.Wait()
		return out, errs
	}

	keys := make([]idempotency.Key, n)
	for i := range keys {
		keys[i] = key(fmt.Sprintf("taxrefund://authority/officer-%d", i), "approve")
	}
	out, errs := race(keys, cq.ID)
	approved := 0
	for i, err := range errs {
		if err == nil {
			approved++
			if out[i].Status != settlement.Approved || out[i].TxnID == nil {
				t.Errorf("attempt %d: %+v", i, out[i].Declaration)
			}
			continue
		}
		fe, ok := fault.As(err)
		if !ok || fe.Reason != "DECLARATION_STATUS" || fe.Metadata["status"] != settlement.Approved {
			t.Errorf("attempt %d: %v, want DECLARATION_STATUS (APPROVED)", i, err)
		}
	}
	t.Logf("distinct requests: %d attempts, %d approved", n, approved)
	if approved != 1 {
		t.Errorf("%d approvals, want exactly 1", approved)
	}
	if c := e.count(`SELECT count(*) FROM journal_txns WHERE kind = 'MONTH_REIMBURSED' AND ref = $1`, cq.ID.String()); c != 1 {
		t.Errorf("%d reimbursement transactions, want 1", c)
	}
	if got := e.posted(ledger.Receivable("AG-CQ")); got != "253.00" {
		t.Errorf("AG-CQ receivable %s, want 253.00", got)
	}

	same := key(officer, "approve cd")
	for i := range keys {
		keys[i] = same
	}
	out, errs = race(keys, cd.ID)
	answers := map[uuid.UUID]int{}
	for i, err := range errs {
		if err != nil {
			t.Errorf("retry %d: %v", i, err)
			continue
		}
		if out[i].Status != settlement.Approved || out[i].TxnID == nil {
			t.Errorf("retry %d: %+v", i, out[i].Declaration)
			continue
		}
		answers[*out[i].TxnID]++
	}
	t.Logf("one request sent %d times at once: answers by reimbursement txn %v", n, answers)
	if len(answers) != 1 {
		t.Errorf("retries got %d different answers, want 1", len(answers))
	}
	if c := e.count(`SELECT count(*) FROM journal_txns WHERE kind = 'MONTH_REIMBURSED'`); c != 2 {
		t.Errorf("%d reimbursement transactions in all, want 2", c)
	}
	if got := e.posted(ledger.Receivable("AG-CD")); got != "0.00" {
		t.Errorf("AG-CD receivable %s, want 0.00", got)
	}
	e.checkInvariants()
}

// TestDeclareRace: the agency's back office and both CKG cashiers declare October at once:
// one declaration.
func TestDeclareRace(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.october()
	callers := []string{cashierCQ, "taxrefund://desk/CKG-02/cashier-2", "taxrefund://agency/AG-CQ/backoffice-1", "taxrefund://desk/CKG-01/cashier-9"}
	errs := make([]error, len(callers))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = e.svc.Declare(e.ctx, key(c, "oct"), "AG-CQ", month(2026, 10))
		}()
	}
	close(start)
	wg.Wait()
	ok := 0
	for i, err := range errs {
		if err == nil {
			ok++
			continue
		}
		if fe, isFault := fault.As(err); !isFault || fe.Reason != "ALREADY_DECLARED" {
			t.Errorf("attempt %d: %v, want ALREADY_DECLARED", i, err)
		}
	}
	t.Logf("%d attempts, %d declared", len(callers), ok)
	if ok != 1 {
		t.Errorf("%d declarations accepted, want 1", ok)
	}
	if n := e.count(`SELECT count(*) FROM declarations`); n != 1 {
		t.Errorf("%d declarations stored, want 1", n)
	}
}

func TestCloseMonthFreezesIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// An October payout of AG-CQ, and a form issued in October still ISSUED.
	_, p := e.paid("S-JFB-1", "CKG-01", local(2026, 10, 5, 10, 0), local(2026, 10, 6, 10, 0), item{"1000.00", "0.13"})
	e.clock.Set(local(2026, 10, 20, 10, 0))
	open := e.issue("S-JFB-2", "P-OPEN", item{"600.00", "0.13"})

	// While in October, neither October nor a later month can be closed.
	for _, m := range []time.Time{month(2026, 10), month(2026, 11)} {
		before := e.counts()
		_, err := e.svc.CloseMonth(e.ctx, key(officer, "close"), m)
		wantFault(t, err, fault.Precondition, "MONTH_NOT_ENDED", "month")
		sameCounts(t, "close "+settlement.FormatMonth(m), before, e.counts())
	}
	e.clock.Set(local(2026, 10, 31, 23, 59))
	_, err := e.svc.CloseMonth(e.ctx, key(officer, "close"), month(2026, 10))
	wantFault(t, err, fault.Precondition, "MONTH_NOT_ENDED", "month")

	e.clock.Set(local(2026, 11, 3, 10, 0))
	k := key(officer, "close oct")
	cm, err := e.svc.CloseMonth(e.ctx, k, month(2026, 10))
	if err != nil {
		t.Fatal(err)
	}
	if !cm.Month.Equal(month(2026, 10)) || cm.ClosedBy != officer || cm.ClosedAt.IsZero() {
		t.Errorf("closed %+v", cm)
	}
	if n := e.count(`SELECT count(*) FROM audit_events WHERE actor = $1 AND action = 'MONTH_CLOSED' AND object = '2026-10' AND request_id = $2`,
		officer, k.RequestID); n != 1 {
		t.Errorf("%d MONTH_CLOSED audit events", n)
	}
	// Closing it again is a no-op that answers with the first closing.
	cm2, err := e.svc.CloseMonth(e.ctx, key("taxrefund://authority/officer-2", "close oct"), month(2026, 10))
	if err != nil || cm2.ClosedBy != officer || !cm2.ClosedAt.Equal(cm.ClosedAt) {
		t.Errorf("second close: %+v, %v", cm2, err)
	}
	if n := e.count(`SELECT count(*) FROM closed_months`); n != 1 {
		t.Errorf("%d closed months", n)
	}

	// The database refuses a journal transaction dated inside October.
	ids, err := e.ledger.Accounts(e.ctx, e.pool, ledger.Treasury, ledger.RefundExpense)
	if err != nil {
		t.Fatal(err)
	}
	post := func(idem string, eff time.Time) error {
		b := &pgx.Batch{}
		txn := ledger.Txn{ID: ledger.NewID(), IdemKey: idem, Kind: "TEST_CORRECTION", Ref: idem, EffectiveDate: eff,
			Entries: []ledger.Entry{
				{Account: ledger.RefundExpense, Side: ledger.Debit, Amount: decimal.RequireFromString("1.00")},
				{Account: ledger.Treasury, Side: ledger.Credit, Amount: decimal.RequireFromString("1.00")},
			}}
		if err := e.ledger.Queue(b, txn, ids); err != nil {
			t.Fatal(err)
		}
		return db.SendBatch(e.ctx, e.pool, b)
	}
	for _, day := range []time.Time{month(2026, 10), time.Date(2026, 10, 31, 0, 0, 0, 0, time.UTC)} {
		before := e.counts()
		err := post("test:"+day.Format(time.DateOnly), day)
		if dbtest.SQLState(err) != "TR002" {
			t.Errorf("posting dated %s: %v, want the closed-month refusal TR002", day.Format(time.DateOnly), err)
		}
		sameCounts(t, "posting in October", before, e.counts())
	}

	// A service whose clock is back in October fails and writes nothing.
	e.clock.Set(local(2026, 10, 25, 10, 0))
	before := e.counts()
	voidReq := forms.VoidRequest{
		Idem:      idempotency.Key{Caller: "taxrefund://store/S-JFB-2", RequestID: uuid.New(), Hash: idempotency.Hash([]byte("void"))},
		StoreCode: "S-JFB-2", Number: open.Number, Reason: "goods returned",
	}
	_, err = e.forms.Void(e.ctx, voidReq)
	if dbtest.SQLState(err) != "TR002" {
		t.Errorf("void dated in October: %v, want the closed-month refusal TR002", err)
	}
	sameCounts(t, "void in October", before, e.counts())
	if s := e.states()[open.Number]; s != "ISSUED" {
		t.Errorf("form %s is %s after the refused void", open.Number, s)
	}

	// November, and an open September, still take postings.
	e.clock.Set(local(2026, 11, 3, 11, 0))
	voidReq.Idem.RequestID = uuid.New()
	v, err := e.forms.Void(e.ctx, voidReq)
	if err != nil || v.State != "VOIDED" {
		t.Fatalf("void in November: %+v, %v", v.State, err)
	}
	var eff time.Time
	if err := e.pool.QueryRow(e.ctx, `SELECT effective_date FROM journal_txns WHERE idem_key = $1`, "form:"+open.Number+":void").Scan(&eff); err != nil {
		t.Fatal(err)
	}
	if eff.Format(time.DateOnly) != "2026-11-03" {
		t.Errorf("void posted on %s, want 2026-11-03", eff.Format(time.DateOnly))
	}
	if err := post("test:nov", month(2026, 11)); err != nil {
		t.Errorf("posting dated 2026-11-01: %v", err)
	}
	if err := post("test:sep", time.Date(2026, 9, 30, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Errorf("posting dated 2026-09-30 (an open month): %v", err)
	}

	// October's declaration is still approved: the reimbursement posts in November.
	d, err := e.svc.Declare(e.ctx, key(cashierCQ, "oct"), "AG-CQ", month(2026, 10))
	if err != nil {
		t.Fatal(err)
	}
	if d.Forms != 1 || d.Lines[0].PayoutID != p.ID || fixed(d.GrossRefund) != "110.00" {
		t.Errorf("declaration %+v", d.Declaration)
	}
	a, err := e.svc.Approve(e.ctx, key(officer, "approve"), d.ID)
	if err != nil {
		t.Fatalf("approve October after closing it: %v", err)
	}
	if err := e.pool.QueryRow(e.ctx, `SELECT effective_date FROM journal_txns WHERE id = $1`, *a.TxnID).Scan(&eff); err != nil {
		t.Fatal(err)
	}
	if eff.Format(time.DateOnly) != "2026-11-03" {
		t.Errorf("reimbursement posted on %s", eff.Format(time.DateOnly))
	}
	if got := e.posted(ledger.Receivable("AG-CQ")); got != "0.00" {
		t.Errorf("AG-CQ receivable %s, want 0.00", got)
	}
}
