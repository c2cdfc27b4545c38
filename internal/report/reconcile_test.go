package report_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"taxrefund/internal/forms"
	"taxrefund/internal/ledger"
	"taxrefund/internal/money"
	"taxrefund/internal/payouts"
	"taxrefund/internal/report"
	"taxrefund/internal/settlement"
)

const sat = "taxrefund://authority/sat-officer-7"

// exceptions renders a reconciliation's exceptions, one "KIND subject: reason" each.
func exceptions(r report.Reconciliation) []string {
	var out []string
	for _, x := range r.Exceptions {
		out = append(out, x.Kind+" "+x.Subject+": "+x.Reason)
	}
	return out
}

func sides(r report.Reconciliation) string {
	var out []string
	for _, s := range r.Sides {
		out = append(out, fmt.Sprintf("%s %d %s", s.Name, s.Forms, money.Format(s.Amount)))
	}
	return strings.Join(out, ", ")
}

// trialBalanced checks Σ debits = Σ credits over the trial balance and returns the
// balances by account.
func trialBalanced(t *testing.T, r report.Reconciliation) map[string]report.Balance {
	t.Helper()
	var dr, cr decimal.Decimal
	out := map[string]report.Balance{}
	for _, b := range r.TrialBalance {
		dr, cr = dr.Add(b.Debits), cr.Add(b.Credits)
		out[b.Account] = b
	}
	if !dr.Equal(cr) {
		t.Errorf("trial balance: debits %s, credits %s", dr, cr)
	}
	if dr.IsZero() {
		t.Errorf("empty trial balance")
	}
	return out
}

func wantList(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\n\tgot\n\t\t%s\n\twant\n\t\t%s", what, strings.Join(got, "\n\t\t"), strings.Join(want, "\n\t\t"))
	}
}

// paidForm issues a form at store to a traveller of its own at issue (Shanghai time),
// confirms it at desk's port an hour later and pays it at desk two hours later.
func (e *env) paidForm(store, desk string, issue time.Time, amount string) (forms.Form, payouts.Payout) {
	e.t.Helper()
	tr := traveller{doc: fmt.Sprintf("X%07d", e.seq.Add(1)), nationality: "GB"}
	e.at(issue)
	f := e.issue(store, tr, item{qty: 1, amount: amount, vat: "0.13"})
	e.at(issue.Add(time.Hour))
	f = e.verify(f, tr, map[string]string{"CKG-01": "CKG", "CKG-02": "CKG", "TFU-01": "TFU", "CTU-01": "CTU"}[desk], nil)
	e.at(issue.Add(2 * time.Hour))
	return f, e.pay(desk, tr, f)
}

// confirmedForm issues a form and confirms it at CKG at confirm (Shanghai time).
func (e *env) confirmedForm(store string, confirm time.Time, amount string) forms.Form {
	e.t.Helper()
	tr := traveller{doc: fmt.Sprintf("X%07d", e.seq.Add(1)), nationality: "JP"}
	e.at(confirm.Add(-2 * time.Hour))
	f := e.issue(store, tr, item{qty: 1, amount: amount, vat: "0.13"})
	e.at(confirm)
	return e.verify(f, tr, "CKG", nil)
}

// TestReconcileEveryExceptionOnce builds October 2026 with one case of every exception
// kind and checks the exact list, reasons included.
//
// Three of them must be impossible through the services, and the schema refuses them
// too: a paid form customs never confirmed, a form voided after customs confirmed it, a
// payout whose totals differ from its forms. The fourth (a form paid a gross other than
// customs confirmed) and the fifth (a declaration whose totals differ from the month's
// payouts) the services never write either. They are produced by corrupting rows through
// a superuser connection: dropping the CHECK that ties a form's state to its
// confirmation, and session_replication_role = replica to get past the append-only
// trigger on payouts. The reconciliation exists to catch exactly such rows (a bug, a
// manual fix in the database, a restore gone wrong).
func TestReconcileEveryExceptionOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	unpaid := e.confirmedForm("S-JFB-1", local(2026, 10, 5, 12, 0), "1000.00") // G 110.00, unpaid 46 days on 11-20
	voided := e.confirmedForm("S-JFB-2", local(2026, 10, 6, 12, 0), "600.00")  // G 66.00
	neverConfirmed, neverConfirmedPayout := e.paidForm("S-JFB-1", "CKG-01", local(2026, 10, 7, 10, 0), "500.00")
	mismatched, mismatchedPayout := e.paidForm("S-JFB-2", "CKG-01", local(2026, 10, 8, 10, 0), "800.00")
	_, badTotals := e.paidForm("S-CXL-1", "CKG-02", local(2026, 10, 9, 10, 0), "300.00")
	e.paidForm("S-JFB-1", "CKG-02", local(2026, 10, 10, 10, 0), "1200.00")
	_, undeclared := e.paidForm("S-CXL-1", "TFU-01", local(2026, 10, 12, 10, 0), "700.00")
	e.at(local(2026, 10, 14, 10, 0))
	e.issue("S-JFB-2", traveller{"KR0000001", "KR"}, item{qty: 1, amount: "400.00", vat: "0.13"})
	gone := e.issue("S-JFB-2", traveller{"KR0000002", "KR"}, item{qty: 1, amount: "250.00", vat: "0.13"})
	e.at(local(2026, 10, 15, 10, 0))
	e.void(gone)
	e.confirmedForm("S-JFB-1", local(2026, 10, 25, 12, 0), "900.00") // unpaid 26 days on 11-20: not yet an exception

	e.at(local(2026, 11, 3, 10, 0))
	d, err := e.settle.Declare(e.ctx, key("taxrefund://desk/CKG-01/cashier-1", "oct"), "AG-CQ", october)
	if err != nil {
		t.Fatal(err)
	}
	if d.Forms != 4 || money.Format(d.GrossRefund) != "308.00" {
		t.Fatalf("declaration %d forms %s, want 4 forms 308.00", d.Forms, money.Format(d.GrossRefund))
	}

	su := e.superuser()
	var check string
	if err := su.QueryRow(e.ctx, `SELECT conname FROM pg_constraint WHERE conrelid = 'forms'::regclass
		AND pg_get_constraintdef(oid) LIKE '%verified_at IS NOT NULL%'`).Scan(&check); err != nil {
		t.Fatal(err)
	}
	e.exec(su, `ALTER TABLE forms DROP CONSTRAINT `+check)
	// A confirmed export is final (a trigger): the corruption goes around it.
	e.exec(su, `SET session_replication_role = replica`)
	// PAID_NOT_CONFIRMED: a paid form without any customs confirmation.
	e.exec(su, `UPDATE forms SET verified_at = NULL, verified_port = NULL, verified_officer = NULL,
		confirmed_eligible = NULL, confirmed_gross = NULL WHERE number = $1`, neverConfirmed.Number)
	// VOIDED_AFTER_CONFIRMATION: a confirmed form voided.
	e.exec(su, `UPDATE forms SET state = 'VOIDED', closed_at = now(), close_reason = 'corrupted' WHERE number = $1`, voided.Number)
	// AMOUNT_MISMATCH: paid 88.00, customs (now) says 87.99.
	e.exec(su, `UPDATE forms SET confirmed_gross = 87.99 WHERE number = $1`, mismatched.Number)
	e.exec(su, `RESET session_replication_role`)
	// PAYOUT_TOTAL_MISMATCH: the payout says 1.00 more than its forms.
	e.exec(su, `SET session_replication_role = replica`)
	e.exec(su, `UPDATE payouts SET gross_refund = gross_refund + 1, net_refund = net_refund + 1 WHERE id = $1`, badTotals.ID)
	e.exec(su, `RESET session_replication_role`)
	// DECLARATION_MISMATCH: the declaration claims 10.00 more than the month's payouts.
	e.exec(su, `UPDATE declarations SET gross_refund = gross_refund + 10, net_refund = net_refund + 10 WHERE id = $1`, d.ID)

	now := local(2026, 11, 20, 12, 0)
	r, err := report.Reconcile(e.ctx, e.pool, october, 30, now)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"CONFIRMED_UNPAID " + unpaid.Number + ": confirmed at CKG on 2026-10-05 for 110.00, unpaid for 46 days",
		"PAID_NOT_CONFIRMED " + neverConfirmed.Number + ": paid by payout " + neverConfirmedPayout.ID.String() +
			" on 2026-10-07 but customs never confirmed the export",
		"VOIDED_AFTER_CONFIRMATION " + voided.Number + ": VOIDED after customs confirmed it at CKG on 2026-10-06",
		"AMOUNT_MISMATCH " + mismatched.Number + ": payout " + mismatchedPayout.ID.String() + " paid gross 88.00, customs confirmed 87.99",
		"PAYOUT_TOTAL_MISMATCH " + badTotals.ID.String() + ": payout totals 34.00/6.00/28.00, its forms sum to 33.00/6.00/27.00",
		"DECLARATION_MISMATCH " + d.ID.String() + ": AG-CQ declared 4 forms for 318.00; its payouts of the month are 4 forms for 308.00",
		"UNDECLARED_PAYOUT " + undeclared.ID.String() + ": AG-CD paid 77.00 on 2026-10-12; no declaration of the month by the 15th of the next",
	}
	wantList(t, "exceptions", exceptions(r), want)
	// The summary (the officials' month page): the same sides, one of each kind counted and
	// listed, no trial balance and no invariants; the full reconciliation counts the same.
	sum, err := report.ReconcileSummary(e.ctx, e.pool, october, 30, now, 1)
	if err != nil {
		t.Fatal(err)
	}
	wantList(t, "summary exceptions", exceptions(sum), want)
	if !sum.Summary || sum.TrialBalance != nil || sum.Violations != nil || sides(sum) != sides(r) {
		t.Errorf("summary: %v, %d balances, %d violations, %s", sum.Summary, len(sum.TrialBalance), len(sum.Violations), sides(sum))
	}
	for _, rc := range []report.Reconciliation{r, sum} {
		var counts []string
		for _, c := range rc.Counts {
			counts = append(counts, fmt.Sprintf("%s %d", c.Kind, c.Count))
		}
		wantList(t, "counts", counts, []string{"CONFIRMED_UNPAID 1", "PAID_NOT_CONFIRMED 1", "VOIDED_AFTER_CONFIRMATION 1", "AMOUNT_MISMATCH 1",
			"PAYOUT_TOTAL_MISMATCH 1", "DECLARATION_MISMATCH 1", "UNDECLARED_PAYOUT 1"})
	}

	// Issued: the 10 October forms (731.50); confirmed in October: 7 (the never-confirmed
	// one no longer counts; 87.99 instead of 88.00); paid in October: 5 forms.
	if got := sides(r); got != "ISSUED 10 731.50, CONFIRMED 7 604.99, PAID 5 385.00" {
		t.Errorf("sides: %s", got)
	}
	trialBalanced(t, r)
	var violations []string
	for _, v := range r.Violations {
		violations = append(violations, v.Invariant)
	}
	slices.Sort(violations)
	// The corrupted rows break the §8 invariants too: the traveller payable no longer
	// matches the VERIFIED forms (the voided one), three forms no longer match their
	// pending transfers, one payout no longer matches its forms nor its journal
	// transaction; the never-confirmed and the mismatched forms no longer match their
	// lines nor their payout rows; the declaration no longer matches its payouts.
	wantList(t, "invariant violations", violations, []string{
		"declaration_totals",
		"form_pending_matches_state", "form_pending_matches_state", "form_pending_matches_state",
		"form_totals", "form_totals", "payout_forms_match_forms", "payout_forms_match_forms", "payout_journal",
		"payout_totals", "refund_payable_equals_verified_unpaid",
	})

	// September has nothing to reconcile; the reconciliation of October a month later
	// (after the 15th) adds nothing but the older unpaid form.
	sep, err := report.Reconcile(e.ctx, e.pool, time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC), 30, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(sep.Exceptions) != 0 || sides(sep) != "ISSUED 0 0.00, CONFIRMED 0 0.00, PAID 0 0.00" {
		t.Errorf("September: %v, %s", exceptions(sep), sides(sep))
	}
}

// TestReconcileCleanMonth: a month run entirely through the services has no exception,
// its sides count what was issued, confirmed and paid, and its ledger balances.
func TestReconcileCleanMonth(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.paidForm("S-JFB-1", "CKG-01", local(2026, 10, 3, 10, 0), "1000.00") // G 110.00 F 20.00 N 90.00
	e.paidForm("S-CXL-1", "CKG-02", local(2026, 10, 4, 10, 0), "500.00")  // G 55.00 F 10.00 N 45.00
	e.paidForm("S-CXL-1", "TFU-01", local(2026, 10, 5, 10, 0), "2000.00") // G 220.00 F 40.00 N 180.00
	e.confirmedForm("S-JFB-2", local(2026, 10, 28, 12, 0), "300.00")      // G 33.00, unpaid 23 days on 11-20
	tr := traveller{"JP0000009", "JP"}
	e.at(local(2026, 10, 20, 10, 0))
	rejected := e.issue("S-JFB-2", tr, item{qty: 1, amount: "400.00", vat: "0.13"}) // G 44.00
	e.at(local(2026, 10, 21, 10, 0))
	e.verify(rejected, tr, "CKG", map[int]int32{1: 0})
	e.issue("S-JFB-1", traveller{"KR0000001", "KR"}, item{qty: 1, amount: "250.00", vat: "0.13"}) // G 27.50
	gone := e.issue("S-JFB-1", traveller{"KR0000002", "KR"}, item{qty: 1, amount: "600.00", vat: "0.13"})
	e.void(gone) // G 66.00

	e.at(local(2026, 11, 3, 10, 0))
	cq, err := e.settle.Declare(e.ctx, key("taxrefund://desk/CKG-01/cashier-1", "oct"), "AG-CQ", october)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.settle.Declare(e.ctx, key("taxrefund://desk/TFU-01/cashier-1", "oct"), "AG-CD", october); err != nil {
		t.Fatal(err)
	}
	e.at(local(2026, 11, 5, 10, 0))
	if _, err := e.settle.Approve(e.ctx, key(sat, "approve"), cq.ID); err != nil {
		t.Fatal(err)
	}

	r, err := report.Reconcile(e.ctx, e.pool, october, 30, local(2026, 11, 20, 12, 0))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Exceptions) != 0 {
		t.Errorf("a clean month has exceptions:\n\t%s", strings.Join(exceptions(r), "\n\t"))
	}
	// Issued: 110 + 55 + 220 + 33 + 44 + 27.50 + 66 = 555.50 over 7 forms; confirmed (not
	// the rejected one): 4 forms, 418.00; paid: 3 forms, 385.00.
	if got := sides(r); got != "ISSUED 7 555.50, CONFIRMED 4 418.00, PAID 3 385.00" {
		t.Errorf("sides: %s", got)
	}
	for _, v := range r.Violations {
		t.Errorf("invariant %s: %s", v.Invariant, v.Detail)
	}
	tb := trialBalanced(t, r)
	// Posted in October only: the confirmations and the payouts; the reimbursement of
	// 2026-11-05 is not in October's trial balance.
	wantTB := map[string]string{
		ledger.RefundExpense:            "418.00/0.00",
		ledger.RefundPayable:            "385.00/418.00",
		ledger.AgencyPayable("AG-CQ"):   "0.00/165.00",
		ledger.Receivable("AG-CQ"):      "165.00/0.00",
		ledger.Transfers("AG-CQ"):       "0.00/135.00",
		ledger.FeeIncome("AG-CQ"):       "0.00/30.00",
		ledger.AgencyPayable("AG-CD"):   "0.00/220.00",
		ledger.Receivable("AG-CD"):      "220.00/0.00",
		ledger.FeeIncome("AG-CD"):       "0.00/40.00",
		ledger.Transfers("AG-CD"):       "0.00/180.00",
		ledger.Treasury + " (November)": "absent",
	}
	for acct, w := range wantTB {
		name := strings.TrimSuffix(acct, " (November)")
		b, ok := tb[name]
		got := "absent"
		if ok {
			got = money.Format(b.Debits) + "/" + money.Format(b.Credits)
		}
		if got != w {
			t.Errorf("trial balance %s: %s, want %s", name, got, w)
		}
	}
	if len(tb) != len(wantTB)-1 {
		var names []string
		for n := range tb {
			names = append(names, n)
		}
		slices.Sort(names)
		t.Errorf("trial balance accounts %v, want %d", names, len(wantTB)-1)
	}
}

// TestReconcileDeclarationDeadlineIsShanghaiDate: a payout of October not declared by
// 2026-11-15 is an exception from 2026-11-16 00:00 in Asia/Shanghai (DOMAIN.md §3: every
// deadline is local), which is still 2026-11-15 in UTC.
func TestReconcileDeclarationDeadlineIsShanghaiDate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, p := e.paidForm("S-CXL-1", "TFU-01", local(2026, 10, 12, 10, 0), "700.00")
	undeclared := func(now time.Time) []string {
		t.Helper()
		r, err := report.Reconcile(e.ctx, e.pool, october, 30, now)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, x := range r.Exceptions {
			out = append(out, x.Kind+" "+x.Subject)
		}
		return out
	}
	want := []string{"UNDECLARED_PAYOUT " + p.ID.String()}
	wantList(t, "on 11-15 23:30 (Shanghai)", undeclared(local(2026, 11, 15, 23, 30)), nil)
	wantList(t, "on 11-16 12:00 (Shanghai)", undeclared(local(2026, 11, 16, 12, 0)), want)
	wantList(t, "on 11-16 00:30 (Shanghai), 11-15 16:30 UTC", undeclared(local(2026, 11, 16, 0, 30)), want)
}

// TestReconcileDeclaredPayouts: a DECLARED or APPROVED declaration covers its payouts; a
// RETURNED one does not.
func TestReconcileDeclaredPayouts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, p := e.paidForm("S-CXL-1", "TFU-01", local(2026, 10, 12, 10, 0), "700.00")
	now := local(2026, 11, 20, 12, 0)
	kinds := func() []string {
		t.Helper()
		r, err := report.Reconcile(e.ctx, e.pool, october, 30, now)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, x := range r.Exceptions {
			out = append(out, x.Kind+" "+x.Subject)
		}
		return out
	}
	e.at(local(2026, 11, 3, 10, 0))
	d, err := e.settle.Declare(e.ctx, key("taxrefund://agency/AG-CD/bo", "oct"), "AG-CD", october)
	if err != nil {
		t.Fatal(err)
	}
	wantList(t, "declared", kinds(), nil)
	if _, err := e.settle.Return(e.ctx, key(sat, "return"), d.ID, []string{"unsigned receipt"}); err != nil {
		t.Fatal(err)
	}
	wantList(t, "returned", kinds(), []string{"UNDECLARED_PAYOUT " + p.ID.String()})
	d2, err := e.settle.Declare(e.ctx, key("taxrefund://agency/AG-CD/bo", "oct again"), "AG-CD", october)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.settle.Approve(e.ctx, key(sat, "approve"), d2.ID); err != nil {
		t.Fatal(err)
	}
	wantList(t, "approved", kinds(), nil)
	if d2.Status != settlement.Declared {
		t.Errorf("second declaration %s", d2.Status)
	}
}

// TestReconcileConfirmedUnpaidCountsFromTheInstant: "confirmed but unpaid past N days"
// is measured from the confirmation's time to now. A form confirmed on 2026-10-21 at
// 10:00 (Shanghai) is unpaid for more than 30 days on 2026-11-20 at 12:00 (30 days and 2
// hours), and not yet at 09:00 (29 days and 23 hours).
func TestReconcileConfirmedUnpaidCountsFromTheInstant(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.confirmedForm("S-JFB-1", local(2026, 10, 21, 10, 0), "1000.00")
	unpaid := func(now time.Time) []string {
		t.Helper()
		r, err := report.Reconcile(e.ctx, e.pool, october, 30, now)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, x := range r.Exceptions {
			out = append(out, x.Kind+" "+x.Subject)
		}
		return out
	}
	wantList(t, "29 days 23 hours after", unpaid(local(2026, 11, 20, 9, 0)), nil)
	wantList(t, "30 days 2 hours after", unpaid(local(2026, 11, 20, 12, 0)), []string{"CONFIRMED_UNPAID " + f.Number})
	wantList(t, "31 days after", unpaid(local(2026, 11, 21, 10, 0)), []string{"CONFIRMED_UNPAID " + f.Number})

	// Confirmed on the month's last evening (Shanghai): 2026-10-31 23:30 is 15:30 UTC,
	// inside October's range of verified_at. The summary of two lists the first, counts two.
	g := e.confirmedForm("S-JFB-1", local(2026, 10, 31, 23, 30), "500.00")
	first := min(f.Number, g.Number)
	wantList(t, "two unpaid", unpaid(local(2026, 12, 5, 10, 0)), []string{"CONFIRMED_UNPAID " + first, "CONFIRMED_UNPAID " + max(f.Number, g.Number)})
	sum, err := report.ReconcileSummary(e.ctx, e.pool, october, 30, local(2026, 12, 5, 10, 0), 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Exceptions) != 1 || sum.Exceptions[0].Subject != first || sum.Counts[0] != (report.KindCount{Kind: "CONFIRMED_UNPAID", Count: 2}) {
		t.Errorf("summary of two unpaid, limit 1: %v, counts %v", sum.Exceptions, sum.Counts)
	}
	// A form confirmed on November's first morning (Shanghai), still October 31 in UTC, is
	// November's.
	e.confirmedForm("S-JFB-1", local(2026, 11, 1, 0, 30), "300.00")
	if got := unpaid(local(2026, 12, 5, 10, 0)); len(got) != 2 {
		t.Errorf("October's unpaid with a form confirmed on November 1st 00:30 (Shanghai): %v", got)
	}
}

// TestReconcileRuns: the reconciliation of any month, even an empty one, answers. Each
// exception query is sent the same four arguments (month start, month end, unpaid days,
// now) whether it uses them or not; PostgreSQL's description of a statement that uses
// only $1 and $2 has two parameters, so pgx refuses it ("expected 2 arguments, got 4"),
// and the Reconcile RPC fails for every month.
func TestReconcileRuns(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r, err := report.Reconcile(e.ctx, e.pool, october, 30, local(2026, 11, 20, 12, 0))
	if err != nil {
		t.Fatalf("Reconcile of an empty October: %v", err)
	}
	if len(r.Exceptions) != 0 || len(r.Violations) != 0 || sides(r) != "ISSUED 0 0.00, CONFIRMED 0 0.00, PAID 0 0.00" {
		t.Errorf("empty month: %+v", r)
	}
}
