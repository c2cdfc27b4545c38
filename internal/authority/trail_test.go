package authority_test

import (
	"testing"

	"google.golang.org/protobuf/proto"

	authorityv1 "taxrefund/api/taxrefund/authority/v1"
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
