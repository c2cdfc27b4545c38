package forms_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"taxrefund/internal/fault"
	"taxrefund/internal/forms"
	"taxrefund/internal/ledger"
	"taxrefund/internal/refund"
)

// Void (DOMAIN.md §5): only the issuing store, only while ISSUED; the pending transfer is
// voided, the ledger is back where it was, the invariants hold.
func TestVoid(t *testing.T) {
	t.Parallel()
	s := newSkeleton(t, noonMarch10)
	f := s.mustIssue("S-JFB-1", s.sale(passport(defaultDoc), goods("1000.00", "0.13"), goods("500.00", "0.09")))
	issued := s.counts()

	// Another store cannot see the form, let alone void it.
	_, err := s.void("S-JFB-2", f.Number)
	requireFault(t, err, fault.NotFound, "FORM_NOT_FOUND", "form_number")
	s.requireUnchanged(issued, "a void by another store")

	voidAt := noonMarch10.Add(2 * time.Hour)
	s.clock.Set(voidAt)
	rid := uuid.New()
	v, err := s.voidAs(rid, "S-JFB-1", f.Number)
	if err != nil {
		t.Fatalf("void: %v", err)
	}
	if v.Number != f.Number || v.State != refund.Voided || v.ClosedAt == nil || !v.ClosedAt.Equal(voidAt) {
		t.Errorf("void returned %s %s closed %v, want %s VOIDED closed %s", v.Number, v.State, v.ClosedAt, f.Number, voidAt)
	}
	requireAmounts(t, v, "1500.00", "150.00")
	got, err := s.svc.Get(s.ctx, "S-JFB-1", f.Number)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != refund.Voided || got.ClosedAt == nil || !got.ClosedAt.Equal(voidAt) {
		t.Errorf("stored form %s closed %v, want VOIDED closed %s", got.State, got.ClosedAt, voidAt)
	}

	var outcome, posted, kind, effective string
	if err := s.pool.QueryRow(s.ctx, `
		SELECT r.outcome, r.posted_amount::text, t.kind, t.effective_date::text
		  FROM forms f JOIN pending_resolutions r ON r.pending_id = f.pending_id JOIN journal_txns t ON t.id = r.txn_id
		 WHERE f.number = $1`, f.Number).Scan(&outcome, &posted, &kind, &effective); err != nil {
		t.Fatalf("resolution of the form's pending transfer: %v", err)
	}
	if outcome != "VOIDED" || !cny(posted).IsZero() || kind != "FORM_VOIDED" || effective != "2026-03-10" {
		t.Errorf("resolution %s %s by %s on %s, want VOIDED 0 by FORM_VOIDED on 2026-03-10", outcome, posted, kind, effective)
	}
	want := map[string]int64{
		"forms": 1, "journal_txns": 2, "journal_entries": 4, "pending_transfers": 1, "pending_resolutions": 1,
		"idempotency_keys": 2, "audit_events": 2,
	}
	for table, n := range want {
		s.requireCount(table, n)
	}
	var live int
	if err := s.pool.QueryRow(s.ctx, `SELECT count(*) FROM form_invoices WHERE live`).Scan(&live); err != nil {
		t.Fatal(err)
	}
	if live != 0 {
		t.Errorf("%d live invoices after the void, want 0", live)
	}
	s.requireBalance(ledger.RefundExpense, "0", "0")
	s.requireBalance(ledger.RefundPayable, "0", "0")
	s.requireConsistent()
	voided := s.counts()

	// The same request again: the same answer, nothing written.
	s.clock.Set(voidAt.Add(time.Hour))
	again, err := s.voidAs(rid, "S-JFB-1", f.Number)
	if err != nil {
		t.Fatalf("retry of the void: %v", err)
	}
	if again.Number != v.Number || again.State != refund.Voided || again.ClosedAt == nil || !again.ClosedAt.Equal(*v.ClosedAt) {
		t.Errorf("retry returned %s %s closed %v, want the first answer (closed %s)", again.Number, again.State, again.ClosedAt, v.ClosedAt)
	}
	s.requireUnchanged(voided, "the retried void")

	// Another void request: the form is no longer ISSUED.
	_, err = s.void("S-JFB-1", f.Number)
	fe := requireFault(t, err, fault.Precondition, "FORM_STATE", "")
	if fe.Metadata["state"] != "VOIDED" {
		t.Errorf("metadata %v, want state VOIDED", fe.Metadata)
	}
	s.requireUnchanged(voided, "a second void")

	// The void's request_id for another form is a reuse.
	other := s.mustIssue("S-JFB-1", s.sale(passport(defaultDoc), goods("300.00", "0.13")))
	before := s.counts()
	_, err = s.voidAs(rid, "S-JFB-1", other.Number)
	requireFault(t, err, fault.Precondition, "REQUEST_ID_REUSED", "request_id")
	s.requireUnchanged(before, "the void's request_id reused for another form")
}

// A void names a form by a number that must be well formed and exist.
func TestVoidUnknownOrMalformedNumber(t *testing.T) {
	t.Parallel()
	s := newSkeleton(t, noonMarch10)
	s.mustIssue("S-JFB-1", s.sale(passport(defaultDoc), goods("300.00", "0.13")))
	before := s.counts()
	for _, bad := range []string{"", "TR123", "tr0000000000000000", "TR00000000000000000000"} {
		_, err := s.void("S-JFB-1", bad)
		requireFault(t, err, fault.Invalid, "FORM_NUMBER", "form_number")
	}
	_, err := s.void("S-JFB-1", refund.NewFormNumber())
	requireFault(t, err, fault.NotFound, "FORM_NOT_FOUND", "form_number")
	s.requireUnchanged(before, "voids of malformed and unknown numbers")
}

// 20 concurrent voids of one form with different request_ids: one voids it, the others
// find it VOIDED; the pending transfer is resolved once.
func TestVoidRace(t *testing.T) {
	t.Parallel()
	const n = 20
	s := newSkeleton(t, noonMarch10)
	f := s.mustIssue("S-JFB-1", s.sale(passport(defaultDoc), goods("1000.00", "0.13")))
	got, errs := race(n, func(int) (forms.Form, error) { return s.void("S-JFB-1", f.Number) })
	winners := 0
	for i, err := range errs {
		if err == nil {
			winners++
			if got[i].State != refund.Voided {
				t.Errorf("call %d returned state %s", i, got[i].State)
			}
			continue
		}
		requireFault(t, err, fault.Precondition, "FORM_STATE", "")
	}
	t.Logf("%d concurrent voids of one form: %d winners", n, winners)
	if winners != 1 {
		t.Errorf("%d voids succeeded, want 1", winners)
	}
	s.requireCount("pending_resolutions", 1)
	s.requireCount("journal_txns", 2)
	s.requireCount("idempotency_keys", 2)
	s.requireCount("audit_events", 2)
	s.requireBalance(ledger.RefundExpense, "0", "0")
	s.requireConsistent()
}
