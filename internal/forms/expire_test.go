package forms_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"taxrefund/internal/fault"
	"taxrefund/internal/forms"
	"taxrefund/internal/refund"
)

// TestExpireOverdueForms: on local day D+91 a form issued on D and still ISSUED becomes
// EXPIRED and its pending transfer is voided; a form whose deadline is today stays
// ISSUED; VERIFIED, VOIDED and REJECTED forms are untouched; a second run expires nothing.
func TestExpireOverdueForms(t *testing.T) {
	t.Parallel()
	e := deskNewEnv(t)
	doc := deskDoc("E12345678", "GB")
	// Issued on D = 2026-03-10 (deadline 2026-06-08), G = 110.00 each.
	overdue := e.issue("S-JFB-1", doc, deskLine{1, "1000.00", "0.13"})
	verified := e.issue("S-JFB-1", doc, deskLine{1, "1000.00", "0.13"})
	voided := e.issue("S-JFB-2", doc, deskLine{1, "1000.00", "0.13"})
	rejected := e.issue("S-CXL-1", doc, deskLine{1, "1000.00", "0.13"})
	// Issued on D+1 = 2026-03-11 (deadline 2026-06-09).
	e.clock.Set(deskT0.Add(24 * time.Hour))
	nextDay := e.issue("S-JFB-1", doc, deskLine{1, "1000.00", "0.13"})
	if got := refund.FormatDate(nextDay.ExportDeadline); got != "2026-06-09" {
		t.Fatalf("deadline %s, want 2026-06-09", got)
	}
	if _, err := e.verify("CKG", verified.Number, doc, deskAll(verified)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.verify("CKG", rejected.Number, doc, map[int]int32{1: 0}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.forms.Void(e.ctx, forms.VoidRequest{
		Idem:      forms.Idempotency{Caller: "store/S-JFB-2", RequestID: uuid.New(), Hash: []byte("void")},
		StoreCode: "S-JFB-2", Number: voided.Number, Reason: "goods returned",
	}); err != nil {
		t.Fatal(err)
	}

	// 2026-06-08 23:59:59 local: every deadline is today or later.
	e.clock.Set(time.Date(2026, 6, 8, 15, 59, 59, 0, time.UTC))
	before := e.counts()
	if n, err := e.forms.Expire(e.ctx, "test"); err != nil || n != 0 {
		t.Fatalf("Expire on D+90 = %d, %v; want 0", n, err)
	}
	deskSameCounts(t, before, e.counts())

	// 2026-06-09 00:00:00 local (D+91): only the overdue form expires.
	expiredAt := time.Date(2026, 6, 8, 16, 0, 0, 0, time.UTC)
	e.clock.Set(expiredAt)
	if n, err := e.forms.Expire(e.ctx, "test"); err != nil || n != 1 {
		t.Fatalf("Expire on D+91 = %d, %v; want 1", n, err)
	}
	got, err := e.forms.FindByNumber(e.ctx, overdue.Number)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != refund.Expired || got.ClosedAt == nil || !got.ClosedAt.Equal(expiredAt) {
		t.Errorf("overdue form: %s closed at %v, want EXPIRED closed at %s", got.State, got.ClosedAt, expiredAt)
	}
	if outcome, posted := e.resolution(overdue.Number); outcome != "VOIDED" || posted != "0.00" {
		t.Errorf("overdue form's pending resolved %q for %s, want VOIDED 0.00", outcome, posted)
	}
	want := []string{"D pending travellers:refund_payable 110.00", "C pending authority:refund_expense 110.00"}
	if got := e.entries("form:" + overdue.Number + ":expire"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("expiry entries\n got %q\nwant %q", got, want)
	}
	if n := e.count(`SELECT count(*) FROM audit_events WHERE action = 'FORM_EXPIRED' AND object = $1`, overdue.Number); n != 1 {
		t.Errorf("%d FORM_EXPIRED audit events for the overdue form, want 1", n)
	}
	wantStates := map[string]refund.State{
		overdue.Number: refund.Expired, verified.Number: refund.Verified, voided.Number: refund.Voided,
		rejected.Number: refund.Rejected, nextDay.Number: refund.Issued,
	}
	for number, want := range wantStates {
		if s := e.state(number); s != want {
			t.Errorf("form %s is %s, want %s", number, s, want)
		}
	}
	if outcome, _ := e.resolution(nextDay.Number); outcome != "" {
		t.Errorf("the form due today had its pending transfer resolved %s", outcome)
	}
	if n := e.count(`SELECT count(*) FROM journal_txns WHERE kind = 'FORM_EXPIRED'`); n != 1 {
		t.Errorf("%d FORM_EXPIRED journal txns, want 1", n)
	}
	// Pending now: only the form due today (110.00). Posted: the verified form's G' 110.00.
	if posted, pending := e.balance("travellers:refund_payable"); posted != "-110.00" || pending != "-110.00" {
		t.Errorf("travellers:refund_payable posted %s pending %s, want -110.00 and -110.00", posted, pending)
	}

	// A second run expires nothing and writes nothing.
	before = e.counts()
	if n, err := e.forms.Expire(e.ctx, "test"); err != nil || n != 0 {
		t.Fatalf("second Expire = %d, %v; want 0", n, err)
	}
	deskSameCounts(t, before, e.counts())

	// An expired form can no longer be confirmed.
	_, err = e.verify("CKG", overdue.Number, doc, deskAll(overdue))
	deskWantFault(t, err, fault.Precondition, "FORM_STATE")
	deskSameCounts(t, before, e.counts())

	// The next local day the D+1 form expires too.
	e.clock.Set(expiredAt.Add(24 * time.Hour))
	if n, err := e.forms.Expire(e.ctx, "test"); err != nil || n != 1 {
		t.Fatalf("Expire on D+92 = %d, %v; want 1", n, err)
	}
	if s := e.state(nextDay.Number); s != refund.Expired {
		t.Errorf("D+1 form is %s, want EXPIRED", s)
	}
	if posted, pending := e.balance("travellers:refund_payable"); posted != "-110.00" || pending != "0.00" {
		t.Errorf("travellers:refund_payable posted %s pending %s, want -110.00 and 0.00", posted, pending)
	}
	e.checkInvariants()
}

// TestExpireConcurrentRunners: two expiry runs started together over 250 overdue forms
// (more than one batch of 200) expire each form exactly once between them.
func TestExpireConcurrentRunners(t *testing.T) {
	t.Parallel()
	e := deskNewEnv(t)
	const total = 250
	numbers := make([]string, total)
	var wg sync.WaitGroup
	const workers = 8
	for w := range workers {
		wg.Go(func() {
			doc := deskDoc(fmt.Sprintf("E9000000%d", w), "DE")
			for i := w; i < total; i += workers {
				f, err := e.tryIssue("S-JFB-1", doc, deskLine{1, "250.00", "0.13"})
				if err != nil {
					t.Errorf("issue %d: %v", i, err)
					return
				}
				numbers[i] = f.Number
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// One form is not overdue: issued on D+1.
	e.clock.Set(deskT0.Add(24 * time.Hour))
	dueToday := e.issue("S-JFB-2", deskDoc("E12345678", "GB"), deskLine{1, "250.00", "0.13"})

	e.clock.Set(time.Date(2026, 6, 8, 16, 0, 0, 0, time.UTC)) // D+91 local
	var counts [2]int
	var errs [2]error
	start := make(chan struct{})
	for i := range counts {
		wg.Go(func() {
			<-start
			counts[i], errs[i] = e.forms.Expire(e.ctx, fmt.Sprintf("runner %d", i))
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("runner %d: %v", i, err)
		}
	}
	t.Logf("concurrent expiry of %d overdue forms: runner counts %d + %d = %d", total, counts[0], counts[1], counts[0]+counts[1])
	if counts[0]+counts[1] != total {
		t.Errorf("runners expired %d + %d = %d forms, want %d", counts[0], counts[1], counts[0]+counts[1], total)
	}
	if n := e.count(`SELECT count(*) FROM forms WHERE state = 'EXPIRED' AND number = ANY($1)`, numbers); n != total {
		t.Errorf("%d of the overdue forms EXPIRED, want %d", n, total)
	}
	if s := e.state(dueToday.Number); s != refund.Issued {
		t.Errorf("form due today is %s, want ISSUED", s)
	}
	if n := e.count(`SELECT count(*) FROM forms f JOIN pending_resolutions r ON r.pending_id = f.pending_id
		WHERE f.number = ANY($1) AND r.outcome = 'VOIDED'`, numbers); n != total {
		t.Errorf("%d voided pending transfers among the overdue forms, want %d", n, total)
	}
	if n := e.count(`SELECT count(*) FROM pending_resolutions`); n != total {
		t.Errorf("%d pending resolutions in all, want %d (one per expired form)", n, total)
	}
	if n := e.count(`SELECT count(*) FROM journal_txns WHERE kind = 'FORM_EXPIRED'`); n != total {
		t.Errorf("%d FORM_EXPIRED journal txns, want %d", n, total)
	}
	if n := e.count(`SELECT count(DISTINCT object) FROM audit_events WHERE action = 'FORM_EXPIRED'`); n != total {
		t.Errorf("%d forms with a FORM_EXPIRED audit event, want %d", n, total)
	}
	if n := e.count(`SELECT count(*) FROM audit_events WHERE action = 'FORM_EXPIRED'`); n != total {
		t.Errorf("%d FORM_EXPIRED audit events, want %d", n, total)
	}
	// Only the form due today is pending: 250.00 × 0.11 = 27.50.
	if posted, pending := e.balance("travellers:refund_payable"); posted != "0.00" || pending != "-27.50" {
		t.Errorf("travellers:refund_payable posted %s pending %s, want 0.00 and -27.50", posted, pending)
	}
	if n, err := e.forms.Expire(e.ctx, "again"); err != nil || n != 0 {
		t.Errorf("a third run expired %d, %v; want 0", n, err)
	}
	e.checkInvariants()
}
