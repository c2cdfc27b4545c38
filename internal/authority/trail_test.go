package authority_test

import (
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"
	"google.golang.org/protobuf/proto"

	authorityv1 "taxrefund/api/taxrefund/authority/v1"
	settlementv1 "taxrefund/api/taxrefund/settlement/v1"
	"taxrefund/internal/auth"
	"taxrefund/internal/db"
	"taxrefund/internal/fault"
)

// TestReconcileSummaryAndFormTrail: the summary of a month (summary_limit) has the full
// reconciliation's sides and counts, no trial balance and no invariants; a limit out of
// 0..100 is refused naming the field. A form's trail has the form's lines and the entries
// of its transactions as the database holds them, and its payout.
func TestReconcileSummaryAndFormTrail(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.fixture()
	party := auth.Party{Role: auth.RoleAuthority, Office: "sat", URI: "taxrefund://authority/sat"}
	official := db.WithParty(auth.NewContext(e.ctx, party), string(party.Role), party.Code())

	full, err := e.h.Reconcile(official, &authorityv1.ReconcileRequest{Month: "2026-10"})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := e.h.Reconcile(official, &authorityv1.ReconcileRequest{Month: "2026-10", SummaryLimit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if full.GetSummaryOnly() || len(full.GetTrialBalance()) == 0 || len(full.GetExceptionCounts()) != 7 {
		t.Errorf("the full reconciliation: summary_only %v, %d balance lines, %d counts", full.GetSummaryOnly(), len(full.GetTrialBalance()), len(full.GetExceptionCounts()))
	}
	if !sum.GetSummaryOnly() || len(sum.GetTrialBalance()) != 0 || len(sum.GetInvariantViolations()) != 0 {
		t.Errorf("the summary: summary_only %v, %d balance lines, %d violations", sum.GetSummaryOnly(), len(sum.GetTrialBalance()), len(sum.GetInvariantViolations()))
	}
	for i, c := range full.GetExceptionCounts() {
		if !proto.Equal(c, sum.GetExceptionCounts()[i]) {
			t.Errorf("count %d: full %v, summary %v", i, c, sum.GetExceptionCounts()[i])
		}
	}
	for i, s := range full.GetSummary() {
		if !proto.Equal(s, sum.GetSummary()[i]) {
			t.Errorf("side %d: full %v, summary %v", i, s, sum.GetSummary()[i])
		}
	}
	for _, limit := range []int32{-1, 101} {
		_, err := e.h.Reconcile(official, &authorityv1.ReconcileRequest{Month: "2026-10", SummaryLimit: limit})
		wantFault(t, "summary_limit out of range", err, fault.Invalid, "INVALID_REQUEST")
		if fe, _ := fault.As(err); fe == nil || len(fe.Violations) != 1 || fe.Violations[0].Field != "summary_limit" {
			t.Errorf("summary_limit %d: %v, want the field named", limit, err)
		}
	}

	var number string
	var lines, entries int
	if err := e.pool.QueryRow(e.ctx, `
		SELECT f.number, (SELECT count(*) FROM form_lines WHERE form_id = f.id),
		       (SELECT count(*) FROM journal_entries WHERE txn_id IN (f.pending_id, p.txn_id,
		               (SELECT txn_id FROM pending_resolutions WHERE pending_id = f.pending_id)))
		  FROM forms f JOIN payouts p ON p.id = f.payout_id LIMIT 1`).Scan(&number, &lines, &entries); err != nil {
		t.Fatal(err)
	}
	tr, err := e.h.GetFormTrail(official, &authorityv1.GetFormTrailRequest{FormNumber: number})
	if err != nil {
		t.Fatal(err)
	}
	if tr.GetNumber() != number || len(tr.GetLines()) != lines || len(tr.GetEntries()) != entries || entries < 6 || tr.GetPayout() == nil || tr.GetVerifiedAt() == nil {
		t.Errorf("GetFormTrail(%s): %d lines (want %d), %d entries (want %d), payout %v", number, len(tr.GetLines()), lines, len(tr.GetEntries()), entries, tr.GetPayout())
	}
	_, err = e.h.GetFormTrail(official, &authorityv1.GetFormTrailRequest{FormNumber: "TR-NONE"})
	wantFault(t, "the trail of no form", err, fault.NotFound, "NO_SUCH_FORM")
	_, err = e.h.GetFormTrail(official, &authorityv1.GetFormTrailRequest{})
	wantFault(t, "the trail of no number", err, fault.Invalid, "INVALID_REQUEST")
}

// TestPayoutTrail: a payout's trail has the payout's row, its forms' rows and their sums,
// the entries of its journal transaction and the declaration it is in, as the database
// holds them; an id of no payout is NOT_FOUND, a malformed one INVALID_ARGUMENT naming
// payout_id.
func TestPayoutTrail(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cq, _ := e.fixture()
	party := auth.Party{Role: auth.RoleAuthority, Office: "sat", URI: "taxrefund://authority/sat"}
	official := db.WithParty(auth.NewContext(e.ctx, party), string(party.Role), party.Code())

	var id, desk, agency, port, cashier, method, paidDate, gross, fee, net, formNumber, formGross, formFee, formNet string
	var entries int
	if err := e.pool.QueryRow(e.ctx, `
		SELECT p.id::text, p.desk_code, p.agency_code, p.port_code, p.cashier, p.method, p.paid_date::text,
		       p.gross_refund::text, p.fee::text, p.net_refund::text, f.number, pf.gross_refund::text, pf.fee::text, pf.net_refund::text,
		       (SELECT count(*) FROM journal_entries WHERE txn_id = p.txn_id)
		  FROM payouts p JOIN payout_forms pf ON pf.payout_id = p.id JOIN forms f ON f.id = pf.form_id`).Scan(
		&id, &desk, &agency, &port, &cashier, &method, &paidDate, &gross, &fee, &net, &formNumber, &formGross, &formFee, &formNet, &entries); err != nil {
		t.Fatal(err)
	}
	tr, err := e.h.GetPayoutTrail(official, &authorityv1.GetPayoutTrailRequest{PayoutId: id})
	if err != nil {
		t.Fatal(err)
	}
	dec := func(s string) string { return decimal.RequireFromString(s).StringFixed(2) }
	got := []string{tr.GetPayoutId(), tr.GetDeskCode(), tr.GetAgencyCode(), tr.GetPortCode(), tr.GetCashier(), tr.GetMethod(), tr.GetPaidDate(),
		tr.GetGrossRefund(), tr.GetFee(), tr.GetNetRefund()}
	want := []string{id, desk, agency, port, cashier, method, paidDate, dec(gross), dec(fee), dec(net)}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the payout: %v, want %v", got, want)
	}
	if len(tr.GetForms()) != 1 {
		t.Fatalf("the payout's forms: %v, want 1", tr.GetForms())
	}
	pf := tr.GetForms()[0]
	if pf.GetNumber() != formNumber || pf.GetGrossRefund() != dec(formGross) || pf.GetFee() != dec(formFee) || pf.GetNetRefund() != dec(formNet) ||
		pf.GetState() != "REFUNDED" || pf.GetConfirmedGrossRefund() != dec(formGross) {
		t.Errorf("the payout's form: %v, want %s %s/%s/%s", pf, formNumber, formGross, formFee, formNet)
	}
	if tr.GetFormsGrossRefund() != tr.GetGrossRefund() || tr.GetFormsFee() != tr.GetFee() || tr.GetFormsNetRefund() != tr.GetNetRefund() {
		t.Errorf("the forms' sums %s/%s/%s differ from the totals %s/%s/%s of a payout made by the service",
			tr.GetFormsGrossRefund(), tr.GetFormsFee(), tr.GetFormsNetRefund(), tr.GetGrossRefund(), tr.GetFee(), tr.GetNetRefund())
	}
	if len(tr.GetEntries()) != entries || entries < 3 {
		t.Errorf("the payout's entries: %d, the database %d", len(tr.GetEntries()), entries)
	}
	for _, en := range tr.GetEntries() {
		if en.GetKind() != tr.GetEntries()[0].GetKind() || en.GetPending() {
			t.Errorf("entry %v: not of the payout's one posted transaction", en)
		}
	}
	if len(tr.GetDeclarations()) != 1 || tr.GetDeclarations()[0].GetDeclarationId() != cq || tr.GetDeclarations()[0].GetMonth() != "2026-10" ||
		tr.GetDeclarations()[0].GetStatus() != settlementv1.DeclarationStatus_DECLARATION_STATUS_DECLARED {
		t.Errorf("the payout's declarations: %v, want %s DECLARED", tr.GetDeclarations(), cq)
	}

	_, err = e.h.GetPayoutTrail(official, &authorityv1.GetPayoutTrailRequest{PayoutId: "5b0f3c52-2f7e-4f5e-9d55-0c1f2a3b4c5d"})
	wantFault(t, "the trail of no payout", err, fault.NotFound, "NO_SUCH_PAYOUT")
	for _, bad := range []string{"", "not-a-uuid", id + "x"} {
		_, err = e.h.GetPayoutTrail(official, &authorityv1.GetPayoutTrailRequest{PayoutId: bad})
		wantFault(t, "payout id "+bad, err, fault.Invalid, "INVALID_REQUEST")
		if fe, _ := fault.As(err); fe == nil || len(fe.Violations) != 1 || fe.Violations[0].Field != "payout_id" {
			t.Errorf("payout id %q: %v, want the field named", bad, err)
		}
	}

	// SetStoreGrade through the handler: the fields named, all at once.
	_, err = e.h.SetStoreGrade(official, &authorityv1.SetStoreGradeRequest{RequestId: uuid.NewString(), Code: "S-JFB-1", CreditGrade: "C"})
	fe, _ := fault.As(err)
	if fe == nil || fe.Kind != fault.Invalid || len(fe.Violations) != 2 || fe.Violations[0].Field != "credit_grade" || fe.Violations[1].Field != "reason" {
		t.Errorf("SetStoreGrade with grade C and no reason: %v", err)
	}
	resp, err := e.h.SetStoreGrade(official, &authorityv1.SetStoreGradeRequest{RequestId: uuid.NewString(), Code: "S-JFB-1", CreditGrade: "M", Reason: "tax arrears"})
	if err != nil || resp.GetStore().GetCreditGrade() != "M" || resp.GetEffectiveDate() != "2026-11-03" {
		t.Errorf("SetStoreGrade: %v, %v", resp, err)
	}
	_, err = e.h.SetStoreGrade(official, &authorityv1.SetStoreGradeRequest{RequestId: uuid.NewString(), Code: "S-EXIT", CreditGrade: "A", Reason: "back"})
	wantFault(t, "the grade of an exited store", err, fault.Precondition, "STORE_STATUS")
}
