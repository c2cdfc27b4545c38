package immediate_test

import (
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"taxrefund/internal/fault"
	"taxrefund/internal/forms"
	"taxrefund/internal/immediate"
	"taxrefund/internal/payouts"
	"taxrefund/internal/refund"
)

// payoutRow is a payout as stored, with its one form share.
type payoutRow struct {
	Method, Desk, Agency, Port, Account, Receipt, Gross, Fee, Net string
	ShareEligible, ShareGross, ShareFee, ShareNet                 string
	Shares                                                        int
}

func (e *env) payoutOf(id uuid.UUID) payoutRow {
	e.t.Helper()
	var p payoutRow
	err := e.pool.QueryRow(e.ctx, `
		SELECT p.method, p.desk_code, p.agency_code, coalesce(p.port_code, ''), p.account_masked, p.receipt_reference,
		       to_char(p.gross_refund, 'FM9999999990.00'), to_char(p.fee, 'FM9999999990.00'), to_char(p.net_refund, 'FM9999999990.00'),
		       to_char(min(pf.eligible_amount), 'FM9999999990.00'), to_char(min(pf.gross_refund), 'FM9999999990.00'),
		       to_char(min(pf.fee), 'FM9999999990.00'), to_char(min(pf.net_refund), 'FM9999999990.00'), count(pf.form_id)
		  FROM payouts p LEFT JOIN payout_forms pf ON pf.payout_id = p.id WHERE p.id = $1 GROUP BY p.id`, id).
		Scan(&p.Method, &p.Desk, &p.Agency, &p.Port, &p.Account, &p.Receipt, &p.Gross, &p.Fee, &p.Net,
			&p.ShareEligible, &p.ShareGross, &p.ShareFee, &p.ShareNet, &p.Shares)
	if err != nil {
		e.t.Fatalf("payout %s: %v", id, err)
	}
	return p
}

// resolution returns the outcome and posted amount of form number's pending transfer.
func (e *env) resolution(number string) (string, string) {
	e.t.Helper()
	var outcome, posted string
	err := e.pool.QueryRow(e.ctx, `
		SELECT r.outcome, to_char(r.posted_amount, 'FM9999999990.00')
		  FROM forms f JOIN pending_resolutions r ON r.pending_id = f.pending_id WHERE f.number = $1`, number).Scan(&outcome, &posted)
	if err != nil {
		e.t.Fatalf("resolution of %s: %v", number, err)
	}
	return outcome, posted
}

// TestCompletionAtTFU verifies a prepaid DOMAIN example form at TFU within the 17 days:
// the form is REFUNDED by a payout of method PREPAYMENT, the §8 "completed" entries
// post, the prepayments account is back to zero, one RELEASE instruction is queued, and
// no desk may pay the form again. The committed date itself still counts (at CKG, at
// 23:59:59 local on that day).
func TestCompletionAtTFU(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	doc := passport("P1000001", "GB")
	f, p := e.prepaid(doc)
	g, q := e.prepaid(doc)

	e.clock.Set(localNoon(t, "2026-03-20"))
	v := e.mustVerify("TFU", f, doc, nil)
	if v.State != refund.Refunded || v.PayoutID == nil {
		t.Fatalf("after verification at TFU: state %s payout %v, want REFUNDED with a payout", v.State, v.PayoutID)
	}
	if st := e.formState(f.Number); st != refund.Refunded {
		t.Errorf("stored form state %s, want REFUNDED", st)
	}
	got := e.payoutOf(*v.PayoutID)
	want := payoutRow{Method: "PREPAYMENT", Desk: "IFS-RP", Agency: "AG-CD", Port: "TFU", Account: "card ****4242",
		Receipt: "AGR-" + f.Number, Gross: "150.00", Fee: "30.00", Net: "120.00",
		ShareEligible: "1500.00", ShareGross: "150.00", ShareFee: "30.00", ShareNet: "120.00", Shares: 1}
	if got != want {
		t.Errorf("payout:\n\tgot  %+v\n\twant %+v", got, want)
	}
	if outcome, posted := e.resolution(f.Number); outcome != "POSTED" || posted != "150.00" {
		t.Errorf("pending transfer %s %s, want POSTED 150.00", outcome, posted)
	}
	key := "prepayment:" + p.ID.String() + ":complete"
	e.wantEntries(key,
		"D agency:AG-CD:receivable 150.00", "D travellers:refund_payable 150.00",
		"C agency:AG-CD:fee_income 30.00", "C agency:AG-CD:prepayments 120.00", "C authority:agency_payable:AG-CD 150.00")
	if kind, eff := e.txnKind(key); kind != "IMMEDIATE_REFUND_COMPLETED" || eff != "2026-03-20" {
		t.Errorf("completion txn %s on %s, want IMMEDIATE_REFUND_COMPLETED on 2026-03-20", kind, eff)
	}
	e.wantBalances("completed", map[string]string{
		"authority:refund_expense": "150.00", "travellers:refund_payable": "0.00", "authority:agency_payable:AG-CD": "-150.00",
		"agency:AG-CD:receivable": "150.00", "agency:AG-CD:fee_income": "-30.00", "agency:AG-CD:card_captures": "0.00",
		// The second form's prepayment is still out.
		"agency:AG-CD:prepayments": "120.00", "agency:AG-CD:cash:IFS-RP": "-240.00",
	})
	if got := e.pendingBal("travellers:refund_payable"); got != "-150.00" {
		t.Errorf("refund_payable pending %s, want -150.00 (the second form only)", got)
	}
	row := e.prepaymentOf(f.ID)
	if row.State != immediate.Completed || row.ResolvedTxnID == nil || row.ResolvedAt == nil || !row.ResolvedAt.Equal(localNoon(t, "2026-03-20")) {
		t.Errorf("prepayment %s resolved %v at %v, want COMPLETED by the completion txn at the verification", row.State, row.ResolvedTxnID, row.ResolvedAt)
	}
	ob := e.outbox()
	if len(ob) != 1 || ob[0] != (outboxRow{Key: "prepayment:" + p.ID.String() + ":release", Kind: "RELEASE", Amount: "120.00", Token: p.CardToken, Prepayment: p.ID}) {
		t.Errorf("outbox %v, want one RELEASE of the 120.00 hold", ob)
	}

	// The desk cannot pay it again; the refund point cannot take it back; captures skip it.
	before := e.counts()
	_, err := e.settle("TFU-01", doc, f.Number)
	fe := wantFault(t, err, fault.Precondition, "FORM_ALREADY_PAID", "form_numbers")
	if fe.Metadata["payout_id"] != v.PayoutID.String() {
		t.Errorf("FORM_ALREADY_PAID names %q, want %s", fe.Metadata["payout_id"], v.PayoutID)
	}
	_, err = e.returnPrepayment("IFS-RP", f.Number)
	wantFault(t, err, fault.Precondition, "PREPAYMENT_STATE", "form_number")
	sameCounts(t, "after completion", before, e.counts())

	// On the committed date itself, at 23:59:59 local, at CKG: still completed.
	e.clock.Set(time.Date(2026, 3, 27, 15, 59, 59, 0, time.UTC))
	if v := e.mustVerify("CKG", g, doc, nil); v.State != refund.Refunded {
		t.Errorf("verified at CKG at 23:59:59 on the committed date: %s, want REFUNDED", v.State)
	}
	if got := e.outboxOf(q.ID); !slices.Equal(got, []string{"RELEASE 120.00"}) {
		t.Errorf("second form's instructions %v, want [RELEASE 120.00]", got)
	}
	e.wantBalances("two completed", map[string]string{"agency:AG-CD:prepayments": "0.00", "agency:AG-CD:receivable": "300.00"})
	e.clock.Set(localNoon(t, "2026-04-02"))
	if n := e.captures(); n != 0 {
		t.Errorf("captures after completion: %d, want 0", n)
	}
	e.checkInvariants("completion")
}

// TestPartialCompletion confirms fewer units than were prepaid at a designated port in
// time: the refund is recomputed and the difference N − N' recovered by a partial
// capture of exactly that amount, in the completion transaction.
func TestPartialCompletion(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name              string
		confirmed         map[int]int32
		eligible, g, f, n string
		recover           string
	}{
		// 1 of 2 units of the 13% line: A' 1000.00, G' 55.00 + 40.00 = 95.00, F' 20.00,
		// N' 75.00, recovered 120.00 − 75.00 = 45.00.
		{"one of two 13% units", map[int]int32{1: 1, 2: 1}, "1000.00", "95.00", "20.00", "75.00", "45.00"},
		// The 9% line not presented: A' 1000.00, G' 110.00, F' 20.00, N' 90.00, 30.00.
		{"9% line not presented", map[int]int32{1: 2, 2: 0}, "1000.00", "110.00", "20.00", "90.00", "30.00"},
		// Only the 9% line: A' 500.00, G' 40.00, F' 10.00, N' 30.00, 90.00.
		{"only the 9% line", map[int]int32{1: 0, 2: 1}, "500.00", "40.00", "10.00", "30.00", "90.00"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			doc := passport("P2000002", "GB")
			f, p := e.prepaid(doc)
			e.clock.Set(localNoon(t, "2026-03-25"))
			v := e.mustVerify("TFU", f, doc, c.confirmed)
			if v.State != refund.Refunded || v.PayoutID == nil {
				t.Fatalf("state %s payout %v, want REFUNDED", v.State, v.PayoutID)
			}
			got := e.payoutOf(*v.PayoutID)
			want := payoutRow{Method: "PREPAYMENT", Desk: "IFS-RP", Agency: "AG-CD", Port: "TFU", Account: "card ****4242",
				Receipt: "AGR-" + f.Number, Gross: c.g, Fee: c.f, Net: c.n,
				ShareEligible: c.eligible, ShareGross: c.g, ShareFee: c.f, ShareNet: c.n, Shares: 1}
			if got != want {
				t.Errorf("payout:\n\tgot  %+v\n\twant %+v", got, want)
			}
			if outcome, posted := e.resolution(f.Number); outcome != "POSTED" || posted != c.g {
				t.Errorf("pending transfer %s %s, want POSTED %s", outcome, posted, c.g)
			}
			e.wantEntries("prepayment:"+p.ID.String()+":complete",
				"D agency:AG-CD:card_captures "+c.recover, "D agency:AG-CD:receivable "+c.g, "D travellers:refund_payable "+c.g,
				"C agency:AG-CD:fee_income "+c.f, "C agency:AG-CD:prepayments "+c.recover, "C agency:AG-CD:prepayments "+c.n,
				"C authority:agency_payable:AG-CD "+c.g)
			e.wantBalances(c.name, map[string]string{
				"authority:refund_expense": c.g, "travellers:refund_payable": "0.00", "agency:AG-CD:prepayments": "0.00",
				"agency:AG-CD:card_captures": c.recover, "agency:AG-CD:receivable": c.g, "authority:agency_payable:AG-CD": "-" + c.g,
				"agency:AG-CD:fee_income": "-" + c.f, "agency:AG-CD:cash:IFS-RP": "-120.00",
			})
			if got := e.pendingBal("authority:refund_expense"); got != "0.00" {
				t.Errorf("refund_expense pending %s, want 0.00 (the unconfirmed part released)", got)
			}
			ob := e.outbox()
			if len(ob) != 1 || ob[0] != (outboxRow{Key: "prepayment:" + p.ID.String() + ":partial-capture", Kind: "PARTIAL_CAPTURE", Amount: c.recover, Token: p.CardToken, Prepayment: p.ID}) {
				t.Errorf("outbox %v, want one PARTIAL_CAPTURE of %s", ob, c.recover)
			}
			if st := e.prepaymentOf(f.ID).State; st != immediate.Completed {
				t.Errorf("prepayment %s, want COMPLETED", st)
			}
			e.checkInvariants(c.name)
		})
	}
}

// TestBreachByPort verifies a prepaid form at CTU (not designated) before the committed
// date: the form is VERIFIED and no desk may pay it while the prepayment is outstanding;
// the capture job leaves it the day before the capture date and captures N on that date;
// then CTU-01 pays the refund normally.
func TestBreachByPort(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	doc := passport("P3000003", "GB")
	f, p := e.prepaid(doc)
	e.clock.Set(localNoon(t, "2026-03-15"))
	v := e.mustVerify("CTU", f, doc, nil)
	if v.State != refund.Verified || v.PayoutID != nil {
		t.Fatalf("verified at CTU: %s payout %v, want VERIFIED, unpaid", v.State, v.PayoutID)
	}
	if st := e.prepaymentOf(f.ID).State; st != immediate.Prepaid {
		t.Errorf("prepayment %s, want PREPAID", st)
	}
	if ob := e.outbox(); len(ob) != 0 {
		t.Errorf("outbox %v, want empty", ob)
	}
	e.wantBalances("verified at CTU", map[string]string{
		"travellers:refund_payable": "-150.00", "agency:AG-CD:prepayments": "120.00", "agency:AG-CD:receivable": "0.00",
	})

	settleRefused := func(when string) {
		t.Helper()
		before := e.counts()
		_, err := e.settle("CTU-01", doc, f.Number)
		fe := wantFault(t, err, fault.Precondition, "PREPAYMENT_OUTSTANDING", "form_number")
		if fe.Metadata["form_number"] != f.Number {
			t.Errorf("%s: PREPAYMENT_OUTSTANDING names %q, want %s", when, fe.Metadata["form_number"], f.Number)
		}
		sameCounts(t, when, before, e.counts())
	}
	settleRefused("before the capture")

	// The committed date is 2026-03-27 (Friday), the capture due Wednesday 2026-04-01.
	for _, at := range []time.Time{localNoon(t, "2026-03-27"), localNoon(t, "2026-03-30"), time.Date(2026, 3, 31, 15, 59, 59, 0, time.UTC)} {
		e.clock.Set(at)
		if n := e.captures(); n != 0 {
			t.Errorf("captures at %s: %d, want 0 (due 2026-04-01)", at.In(refund.Shanghai), n)
		}
	}
	settleRefused("the day before the capture")

	e.clock.Set(localMidnight(t, "2026-04-01"))
	if n := e.captures(); n != 1 {
		t.Fatalf("captures at 00:00 on 2026-04-01: %d, want 1", n)
	}
	key := "prepayment:" + p.ID.String() + ":capture"
	e.wantEntries(key, "D agency:AG-CD:card_captures 120.00", "C agency:AG-CD:prepayments 120.00")
	if kind, eff := e.txnKind(key); kind != "PREAUTH_CAPTURED" || eff != "2026-04-01" {
		t.Errorf("capture txn %s on %s, want PREAUTH_CAPTURED on 2026-04-01", kind, eff)
	}
	row := e.prepaymentOf(f.ID)
	if row.State != immediate.Captured || row.ResolvedTxnID == nil || row.ResolvedAt == nil {
		t.Errorf("prepayment %s (%v, %v), want CAPTURED with its txn and time", row.State, row.ResolvedTxnID, row.ResolvedAt)
	}
	ob := e.outbox()
	if len(ob) != 1 || ob[0] != (outboxRow{Key: key, Kind: "CAPTURE", Amount: "120.00", Token: p.CardToken, Prepayment: p.ID}) {
		t.Errorf("outbox %v, want one CAPTURE of 120.00", ob)
	}
	if n := e.captures(); n != 0 {
		t.Errorf("captures run again: %d, want 0", n)
	}
	_, err := e.returnPrepayment("IFS-RP", f.Number)
	wantFault(t, err, fault.Precondition, "PREPAYMENT_STATE", "form_number")

	// Now the desk pays the refund normally.
	e.clock.Set(localNoon(t, "2026-04-01"))
	pay, err := e.settle("CTU-01", doc, f.Number)
	if err != nil {
		t.Fatalf("settle after the capture: %v", err)
	}
	if pay.Method != payouts.Cash || fixed(pay.Gross) != "150.00" || fixed(pay.Fee) != "30.00" || fixed(pay.Net) != "120.00" {
		t.Errorf("payout %s G %s F %s N %s, want CASH 150.00 30.00 120.00", pay.Method, fixed(pay.Gross), fixed(pay.Fee), fixed(pay.Net))
	}
	if st := e.formState(f.Number); st != refund.Refunded {
		t.Errorf("form %s, want REFUNDED", st)
	}
	e.wantBalances("captured then paid", map[string]string{
		"travellers:refund_payable": "0.00", "agency:AG-CD:prepayments": "0.00", "agency:AG-CD:card_captures": "120.00",
		"agency:AG-CD:cash:IFS-RP": "-120.00", "agency:AG-CD:cash:CTU-01": "-120.00", "agency:AG-CD:receivable": "150.00",
		"authority:agency_payable:AG-CD": "-150.00", "agency:AG-CD:fee_income": "-30.00",
	})
	if n := e.count(`SELECT count(*) FROM payout_forms pf JOIN forms f ON f.id = pf.form_id WHERE f.number = $1`, f.Number); n != 1 {
		t.Errorf("%d payout rows for the form, want 1", n)
	}
	e.checkInvariants("breach by port")
}

// TestBreachByTime leaves prepaid forms unconfirmed past the committed date: one is
// verified at TFU the day after (a designated port, but late: no completion), one is
// rejected at TFU in time (nothing left), one is not verified at all. All three are
// captured when due; the late form and the unverified one (verified at TFU in May,
// within the 90 days) are then paid normally at TFU-01.
func TestBreachByTime(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	doc := passport("P4000004", "GB")
	late, pLate := e.prepaid(doc)
	rejected, pRej := e.prepaid(doc)
	never, pNever := e.prepaid(doc)

	e.clock.Set(localNoon(t, "2026-03-20"))
	zero := map[int]int32{1: 0, 2: 0}
	if v := e.mustVerify("TFU", rejected, doc, zero); v.State != refund.Rejected || v.PayoutID != nil {
		t.Errorf("zero units at TFU: %s %v, want REJECTED, unpaid", v.State, v.PayoutID)
	}
	e.clock.Set(localMidnight(t, "2026-03-28"))
	if v := e.mustVerify("TFU", late, doc, nil); v.State != refund.Verified || v.PayoutID != nil {
		t.Errorf("verified at TFU the day after the committed date: %s %v, want VERIFIED, unpaid", v.State, v.PayoutID)
	}
	for _, f := range []uuid.UUID{late.ID, rejected.ID, never.ID} {
		if st := e.prepaymentOf(f).State; st != immediate.Prepaid {
			t.Errorf("prepayment %s before the capture, want PREPAID", st)
		}
	}
	if ob := e.outbox(); len(ob) != 0 {
		t.Errorf("outbox before the capture: %v", ob)
	}
	_, err := e.settle("TFU-01", doc, late.Number)
	wantFault(t, err, fault.Precondition, "PREPAYMENT_OUTSTANDING", "form_number")

	e.clock.Set(time.Date(2026, 3, 31, 15, 59, 59, 0, time.UTC))
	if n := e.captures(); n != 0 {
		t.Errorf("captures at 23:59:59 on 2026-03-31: %d, want 0", n)
	}
	e.clock.Set(localMidnight(t, "2026-04-01"))
	if n := e.captures(); n != 3 {
		t.Fatalf("captures on 2026-04-01: %d, want 3", n)
	}
	for _, p := range []immediate.Prepayment{pLate, pRej, pNever} {
		if got := e.outboxOf(p.ID); !slices.Equal(got, []string{"CAPTURE 120.00"}) {
			t.Errorf("prepayment of %s: instructions %v, want [CAPTURE 120.00]", p.FormNumber, got)
		}
	}
	e.wantBalances("captured", map[string]string{"agency:AG-CD:prepayments": "0.00", "agency:AG-CD:card_captures": "360.00"})

	// The late form is paid now; the never-verified one leaves on 2026-05-20 through TFU
	// (deadline 2026-06-08): a normal verification, no completion, a normal payout.
	if _, err := e.settle("TFU-01", doc, late.Number); err != nil {
		t.Fatalf("settle the late form: %v", err)
	}
	e.clock.Set(localNoon(t, "2026-05-20"))
	v := e.mustVerify("TFU", never, doc, nil)
	if v.State != refund.Verified || v.PayoutID != nil {
		t.Fatalf("verified in May: %s %v, want VERIFIED, unpaid", v.State, v.PayoutID)
	}
	pay, err := e.settle("TFU-01", doc, never.Number)
	if err != nil {
		t.Fatalf("settle in May: %v", err)
	}
	if fixed(pay.Net) != "120.00" || pay.Method != payouts.Cash {
		t.Errorf("May payout %s N %s, want CASH 120.00", pay.Method, fixed(pay.Net))
	}
	if n := e.count(`SELECT count(*) FROM payouts WHERE method = 'PREPAYMENT'`); n != 0 {
		t.Errorf("%d PREPAYMENT payouts, want 0 (nothing completed)", n)
	}
	if n := len(e.outbox()); n != 3 {
		t.Errorf("%d instructions, want the 3 captures only", n)
	}
	e.wantBalances("breach by time", map[string]string{
		"travellers:refund_payable": "0.00", "agency:AG-CD:prepayments": "0.00", "agency:AG-CD:card_captures": "360.00",
		"agency:AG-CD:cash:IFS-RP": "-360.00", "agency:AG-CD:cash:TFU-01": "-240.00", "agency:AG-CD:receivable": "300.00",
		"authority:refund_expense": "300.00",
	})
	e.checkInvariants("breach by time")
}

// TestCaptureWorkingDays puts committed dates on Thursdays and moves the calendar: an
// empty week gives the Tuesday after; a Friday holiday gives the Wednesday; a Saturday
// adjusted working day (调休) pulls it back. The capture date answered at payment follows
// the calendar of that moment; the stored one follows each later change of the calendar
// (TestCaptureDueFollowsCalendar), and the capture job captures on it, not the day before.
func TestCaptureWorkingDays(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.clock.Set(localNoon(t, "2026-03-09")) // a Monday: the default committed date is Thursday 2026-03-26
	doc := passport("P5000005", "GB")
	payOn := func(committed string) immediate.Prepayment {
		t.Helper()
		f := e.issue("S-CXL-1", doc)
		r := payReq("IFS-RP", f.Number, doc)
		if committed != "" {
			r.CommittedDate = date(t, committed)
			rehash(&r)
		}
		return e.mustPay(r)
	}
	due := func(p immediate.Prepayment) string { return p.CaptureDue.Format(time.DateOnly) }

	// Thursday 2026-03-12 with an empty week: Fri 13, Mon 16, Tue 17.
	v := payOn("2026-03-12")
	// Thursday 2026-03-19 with Friday 2026-03-20 a holiday: Mon 23, Tue 24, Wed 25.
	e.setDay("2026-03-20", false, "public holiday")
	w := payOn("2026-03-19")
	// Thursday 2026-03-26: X with the calendar empty that week (Tue 31); then Friday
	// 2026-03-27 a holiday: Y gets Wed 1 April; then Saturday 2026-03-28 an adjusted
	// working day: Z gets Sat 28, Mon 30, Tue 31.
	x := payOn("")
	e.setDay("2026-03-27", false, "public holiday")
	y := payOn("")
	e.setDay("2026-03-28", true, "调休 adjusted working day")
	z := payOn("")
	// Stored now: X moved to 1 April with the Friday holiday and back with the Saturday,
	// Y back to Tuesday 31 with the Saturday.
	for _, c := range []struct {
		name         string
		p            immediate.Prepayment
		want, stored string
	}{{"V", v, "2026-03-17", "2026-03-17"}, {"W", w, "2026-03-25", "2026-03-25"}, {"X", x, "2026-03-31", "2026-03-31"},
		{"Y", y, "2026-04-01", "2026-03-31"}, {"Z", z, "2026-03-31", "2026-03-31"}} {
		if got := due(c.p); got != c.want {
			t.Errorf("%s (committed %s): capture due %s, want %s", c.name, c.p.CommittedDate.Format(time.DateOnly), got, c.want)
		}
		if got := e.prepaymentOf(c.p.FormID).CaptureDue.Format(time.DateOnly); got != c.stored {
			t.Errorf("%s: stored capture_due %s, want %s", c.name, got, c.stored)
		}
	}
	if n := e.count(`SELECT count(*) FROM calendar_days`); n != 3 {
		t.Errorf("%d calendar days, want 3", n)
	}
	if n := e.count(`SELECT count(*) FROM audit_events WHERE action = 'CALENDAR_DAY_SET'`); n != 3 {
		t.Errorf("%d CALENDAR_DAY_SET audit events, want 3", n)
	}

	// The job, day by day around each due date (the calendar now: Fri 20 and Fri 27
	// holidays, Sat 28 working, so X, Y and Z are all due Tue 31).
	steps := []struct {
		at   time.Time
		want []uuid.UUID
	}{
		{time.Date(2026, 3, 16, 15, 59, 59, 0, time.UTC), nil},
		{localMidnight(t, "2026-03-17"), []uuid.UUID{v.ID}},
		{time.Date(2026, 3, 24, 15, 59, 59, 0, time.UTC), nil}, // Tue 24 would be due without the Friday holiday
		{localMidnight(t, "2026-03-25"), []uuid.UUID{w.ID}},
		{time.Date(2026, 3, 30, 15, 59, 59, 0, time.UTC), nil},
		{localMidnight(t, "2026-03-31"), []uuid.UUID{x.ID, y.ID, z.ID}}, // Y too: answered 1 April at payment, moved since
		{localMidnight(t, "2026-04-01"), nil},
	}
	captured := map[uuid.UUID]bool{}
	for _, s := range steps {
		e.clock.Set(s.at)
		n := e.captures()
		if n != len(s.want) {
			t.Errorf("at %s: captured %d, want %d", s.at.In(refund.Shanghai).Format(time.DateTime), n, len(s.want))
		}
		for _, id := range s.want {
			captured[id] = true
		}
		for _, p := range []immediate.Prepayment{v, w, x, y, z} {
			want := immediate.Prepaid
			if captured[p.ID] {
				want = immediate.Captured
			}
			if st := e.prepaymentOf(p.FormID).State; st != want {
				t.Errorf("at %s: prepayment of %s is %s, want %s", s.at.In(refund.Shanghai).Format(time.DateTime), p.FormNumber, st, want)
			}
		}
	}
	if n := e.count(`SELECT count(*) FROM acquirer_outbox WHERE kind = 'CAPTURE'`); n != 5 {
		t.Errorf("%d CAPTURE instructions, want 5", n)
	}
	e.wantBalances("all captured", map[string]string{"agency:AG-CD:prepayments": "0.00", "agency:AG-CD:card_captures": "600.00"})
	// The stored capture date is the one the job captured on.
	if got := e.prepaymentOf(y.FormID).CaptureDue.Format(time.DateOnly); got != "2026-03-31" {
		t.Errorf("Y's stored capture_due %s, want 2026-03-31", got)
	}
	e.checkInvariants("working days")
}

// TestVoidAfterPrepayment voids a prepaid form: refused while the prepayment is out;
// handed back at IFS-RP (cash back, RELEASE instruction), then voided.
func TestVoidAfterPrepayment(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	doc := passport("P6000006", "GB")
	f, p := e.prepaid(doc)

	before := e.counts()
	_, err := e.void("S-CXL-1", f.Number)
	wantFault(t, err, fault.Precondition, "PREPAYMENT_OUTSTANDING", "form_number")
	sameCounts(t, "void while prepaid", before, e.counts())
	for _, c := range []struct{ desk, reason string }{
		{"JFB-RP", "PREPAYMENT_NOT_FOUND"}, // another agency's refund point
		{"TFU-01", "NOT_A_REFUND_POINT"},
		{"CKG-01", "NOT_A_REFUND_POINT"},
	} {
		_, err := e.returnPrepayment(c.desk, f.Number)
		if got := reasonOf(err); got != c.reason {
			t.Errorf("return at %s: %s, want %s", c.desk, got, c.reason)
		}
	}
	sameCounts(t, "refused returns", before, e.counts())

	req := immediateReturn(f.Number)
	r, err := e.imm.Return(e.ctx, req)
	if err != nil {
		t.Fatalf("return: %v", err)
	}
	if r.State != immediate.Returned || r.ID != p.ID || r.ResolvedTxnID == nil {
		t.Errorf("returned prepayment %s %v, want RETURNED with its txn", r.State, r.ResolvedTxnID)
	}
	// A retry of the same request answers the same.
	r2, err := e.imm.Return(e.ctx, req)
	if err != nil || asJSON(t, r2) != asJSON(t, r) {
		t.Errorf("retried return: %v\n\t%s\n\t%s", err, asJSON(t, r2), asJSON(t, r))
	}
	key := "prepayment:" + p.ID.String() + ":return"
	e.wantEntries(key, "D agency:AG-CD:cash:IFS-RP 120.00", "C agency:AG-CD:prepayments 120.00")
	if kind, _ := e.txnKind(key); kind != "PREPAYMENT_RETURNED" {
		t.Errorf("return txn %s, want PREPAYMENT_RETURNED", kind)
	}
	ob := e.outbox()
	if len(ob) != 1 || ob[0] != (outboxRow{Key: "prepayment:" + p.ID.String() + ":release", Kind: "RELEASE", Amount: "120.00", Token: p.CardToken, Prepayment: p.ID}) {
		t.Errorf("outbox %v, want one RELEASE of the 120.00 hold", ob)
	}
	e.wantBalances("returned", map[string]string{"agency:AG-CD:cash:IFS-RP": "0.00", "agency:AG-CD:prepayments": "0.00"})

	before = e.counts()
	_, err = e.returnPrepayment("IFS-RP", f.Number)
	fe := wantFault(t, err, fault.Precondition, "PREPAYMENT_STATE", "form_number")
	if fe.Metadata["state"] != immediate.Returned {
		t.Errorf("PREPAYMENT_STATE says %q, want RETURNED", fe.Metadata["state"])
	}
	_, err = e.pay(payReq("IFS-RP", f.Number, doc))
	wantFault(t, err, fault.Precondition, "ALREADY_PREPAID", "form_number")
	sameCounts(t, "second return, second prepayment", before, e.counts())

	vf, err := e.void("S-CXL-1", f.Number)
	if err != nil {
		t.Fatalf("void after the return: %v", err)
	}
	if vf.State != refund.Voided {
		t.Errorf("form %s, want VOIDED", vf.State)
	}
	if outcome, posted := e.resolution(f.Number); outcome != "VOIDED" || posted != "0.00" {
		t.Errorf("pending transfer %s %s, want VOIDED 0.00", outcome, posted)
	}
	if got := e.pendingBal("travellers:refund_payable"); got != "0.00" {
		t.Errorf("refund_payable pending %s, want 0.00", got)
	}
	e.clock.Set(localMidnight(t, "2026-04-02"))
	if n := e.captures(); n != 0 {
		t.Errorf("captures after the return: %d", n)
	}
	e.checkInvariants("void after prepayment")
}

func immediateReturn(number string) immediate.ReturnRequest {
	return immediate.ReturnRequest{
		Idem:     immediateKey("IFS-RP", number),
		DeskCode: "IFS-RP", Number: number,
	}
}

// TestCompletionRoundingEdges completes two forms whose confirmed refund rounds oddly.
// Almost every unit: 1690.70 (5 units, 13%) and 0.05 (3 units, 9%), the 9% line not
// presented: N = 185.98 − 33.82 = 152.16, but N' = 185.98 − 33.81 = 152.17, a fen above
// what the traveller holds; the traveller keeps N and the fee takes the fen (fee 33.82),
// and the hold is released in full. One unit of 5000 (200.00 at 13%): G' rounds to 0.00,
// so the whole N 18.00 is recovered by a partial capture and the payout is 0.00.
func TestCompletionRoundingEdges(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	doc := passport("P9100009", "GB")
	payHold := func(f forms.Form, hold string) immediate.Prepayment {
		t.Helper()
		r := payReq("IFS-RP", f.Number, doc)
		r.PreAuth.Authorized = decimal.RequireFromString(hold)
		rehash(&r)
		return e.mustPay(r)
	}

	fen := e.issue("S-CXL-1", doc, line{5, "1690.70", "0.13"}, line{3, "0.05", "0.09"})
	pFen := payHold(fen, "152.16")
	tiny := e.issue("S-CXL-1", doc, line{5000, "200.00", "0.13"})
	pTiny := payHold(tiny, "18.00")
	if fixed(pFen.GrossRefund) != "185.98" || fixed(pFen.Fee) != "33.82" || fixed(pFen.NetRefund) != "152.16" {
		t.Fatalf("prepayment G %s F %s N %s, want 185.98 33.82 152.16", fixed(pFen.GrossRefund), fixed(pFen.Fee), fixed(pFen.NetRefund))
	}
	e.clock.Set(localNoon(t, "2026-03-20"))
	v := e.mustVerify("TFU", fen, doc, map[int]int32{1: 5, 2: 0})
	if v.State != refund.Refunded || v.PayoutID == nil {
		t.Fatalf("state %s, want REFUNDED", v.State)
	}
	if got, want := e.payoutOf(*v.PayoutID), (payoutRow{Method: "PREPAYMENT", Desk: "IFS-RP", Agency: "AG-CD", Port: "TFU",
		Account: "card ****4242", Receipt: "AGR-" + fen.Number, Gross: "185.98", Fee: "33.82", Net: "152.16",
		ShareEligible: "1690.70", ShareGross: "185.98", ShareFee: "33.82", ShareNet: "152.16", Shares: 1}); got != want {
		t.Errorf("fen payout:\n\tgot  %+v\n\twant %+v", got, want)
	}
	if got := e.outboxOf(pFen.ID); !slices.Equal(got, []string{"RELEASE 152.16"}) {
		t.Errorf("fen instructions %v, want [RELEASE 152.16]", got)
	}
	e.wantEntries("prepayment:"+pFen.ID.String()+":complete",
		"D agency:AG-CD:receivable 185.98", "D travellers:refund_payable 185.98",
		"C agency:AG-CD:fee_income 33.82", "C agency:AG-CD:prepayments 152.16", "C authority:agency_payable:AG-CD 185.98")

	if fixed(pTiny.NetRefund) != "18.00" {
		t.Fatalf("tiny N %s, want 18.00", fixed(pTiny.NetRefund))
	}
	e.clock.Set(localNoon(t, "2026-03-21"))
	v = e.mustVerify("CKG", tiny, doc, map[int]int32{1: 1})
	if v.State != refund.Refunded || v.PayoutID == nil {
		t.Fatalf("tiny: state %s, want REFUNDED", v.State)
	}
	if got := e.payoutOf(*v.PayoutID); got.Gross != "0.00" || got.Fee != "0.00" || got.Net != "0.00" || got.ShareEligible != "0.04" {
		t.Errorf("tiny payout %+v, want 0.00/0.00/0.00 on A' 0.04", got)
	}
	if got := e.outboxOf(pTiny.ID); !slices.Equal(got, []string{"PARTIAL_CAPTURE 18.00"}) {
		t.Errorf("tiny instructions %v, want [PARTIAL_CAPTURE 18.00]", got)
	}
	e.wantEntries("prepayment:"+pTiny.ID.String()+":complete", "D agency:AG-CD:card_captures 18.00", "C agency:AG-CD:prepayments 18.00")
	e.wantBalances("rounding edges", map[string]string{
		"agency:AG-CD:prepayments": "0.00", "agency:AG-CD:card_captures": "18.00", "agency:AG-CD:fee_income": "-33.82",
		"agency:AG-CD:receivable": "185.98", "travellers:refund_payable": "0.00",
	})
	e.checkInvariants("rounding edges")
}
