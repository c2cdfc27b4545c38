package forms_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"taxrefund/internal/fault"
	"taxrefund/internal/forms"
	"taxrefund/internal/refund"
)

// TestVerifyPartialConfirmation checks the customs confirmation arithmetic of DOMAIN.md §3
// (a line confirmed for q of Q units counts amount × q / Q; A' and G' rounded once at the
// end) and what a verification writes: the form VERIFIED with its verification, and in
// the ledger the pending transfer of G posted for G' (the rest released).
func TestVerifyPartialConfirmation(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		lines     []deskLine
		confirmed map[int]int32
		// issued G, then per line refund of the confirmed part, A', G'.
		gross       string
		lineRefunds []string
		eligible    string
		confGross   string
	}{
		{
			// 300.00 × 2/3 = 200.00; 200.00 × 0.11 = 22.00.
			name:  "2 of 3 units of 300.00 at 13%",
			lines: []deskLine{{3, "300.00", "0.13"}}, confirmed: map[int]int32{1: 2},
			gross: "33.00", lineRefunds: []string{"22.00"}, eligible: "200.00", confGross: "22.00",
		},
		{
			// DOMAIN.md's example: 1,000.00 × 0.11 + 500.00 × 0.08 = 110.00 + 40.00 = 150.00.
			name:  "DOMAIN example fully confirmed",
			lines: []deskLine{{1, "1000.00", "0.13"}, {1, "500.00", "0.09"}}, confirmed: map[int]int32{1: 1, 2: 1},
			gross: "150.00", lineRefunds: []string{"110.00", "40.00"}, eligible: "1500.00", confGross: "150.00",
		},
		{
			// 1,000.00 × 3/4 = 750.00 → 82.50; 500.00 × 1/3 = 166.666… → 13.333…;
			// A' = 916.666… → 916.67; G' = 95.8333… → 95.83.
			name:  "both lines partly confirmed",
			lines: []deskLine{{4, "1000.00", "0.13"}, {3, "500.00", "0.09"}}, confirmed: map[int]int32{1: 3, 2: 1},
			gross: "150.00", lineRefunds: []string{"82.50", "13.33"}, eligible: "916.67", confGross: "95.83",
		},
		{
			// 100.00 × 1/3 × 0.11 = 3.6666… and 100.00 × 1/3 × 0.08 = 2.6666…: rounded per
			// line they would make 3.67 + 2.67 = 6.34; rounded once, G' = 6.3333… → 6.33.
			// A' = 66.666… → 66.67.
			name:  "one rounding at the end, not per line",
			lines: []deskLine{{3, "100.00", "0.13"}, {3, "100.00", "0.09"}}, confirmed: map[int]int32{1: 1, 2: 1},
			gross: "19.00", lineRefunds: []string{"3.67", "2.67"}, eligible: "66.67", confGross: "6.33",
		},
		{
			// Line 2 not presented: 1,000.00 × 3/4 = 750.00 → 82.50; line 2 counts 0.00.
			name:  "one line partly, the other not at all",
			lines: []deskLine{{4, "1000.00", "0.13"}, {2, "500.00", "0.09"}}, confirmed: map[int]int32{1: 3, 2: 0},
			gross: "150.00", lineRefunds: []string{"82.50", "0.00"}, eligible: "750.00", confGross: "82.50",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := deskNewEnv(t)
			doc := deskDoc("E12345678", "GB")
			issued := e.issue("S-JFB-1", doc, tc.lines...)
			if got := deskFixed(issued.Gross); got != tc.gross {
				t.Fatalf("issued G = %s, want %s", got, tc.gross)
			}
			e.clock.Set(deskT0.Add(26 * time.Hour)) // the next day, at CKG
			verifiedAt := e.clock.Now()

			got, err := e.verify("CKG", issued.Number, doc, tc.confirmed)
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			// The answer, and the form as read back, say the same.
			stored, err := e.forms.FindByNumber(e.ctx, issued.Number)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []struct {
				src  string
				form forms.Form
			}{{"response", got}, {"stored", stored}} {
				if f.form.State != refund.Verified {
					t.Errorf("%s: state %s, want VERIFIED", f.src, f.form.State)
				}
				v := f.form.Verification
				if v == nil {
					t.Fatalf("%s: no verification", f.src)
				}
				if v.Port != "CKG" || v.Officer != "officer-17" || !v.At.Equal(verifiedAt) {
					t.Errorf("%s: verification port %q officer %q at %s, want CKG officer-17 %s", f.src, v.Port, v.Officer, v.At, verifiedAt)
				}
				if deskFixed(v.Eligible) != tc.eligible || deskFixed(v.Gross) != tc.confGross {
					t.Errorf("%s: A' %s G' %s, want %s %s", f.src, deskFixed(v.Eligible), deskFixed(v.Gross), tc.eligible, tc.confGross)
				}
				if deskFixed(f.form.Gross) != tc.gross {
					t.Errorf("%s: G changed to %s, want %s", f.src, deskFixed(f.form.Gross), tc.gross)
				}
				if f.form.ClosedAt != nil {
					t.Errorf("%s: a VERIFIED form is closed at %s", f.src, f.form.ClosedAt)
				}
				if len(f.form.Lines) != len(tc.lines) {
					t.Fatalf("%s: %d lines, want %d", f.src, len(f.form.Lines), len(tc.lines))
				}
				for i, l := range f.form.Lines {
					if l.ConfirmedQty == nil || *l.ConfirmedQty != tc.confirmed[l.No] {
						t.Errorf("%s: line %d confirmed %v, want %d", f.src, l.No, l.ConfirmedQty, tc.confirmed[l.No])
					}
					if r := deskFixed(f.form.LineRefund(i)); r != tc.lineRefunds[i] {
						t.Errorf("%s: line %d refund %s, want %s", f.src, l.No, r, tc.lineRefunds[i])
					}
				}
			}

			// Ledger: the pending G resolved POSTED for G'; posted Dr refund_expense G' /
			// Cr refund_payable G'; nothing pending any more.
			if outcome, posted := e.resolution(issued.Number); outcome != "POSTED" || posted != tc.confGross {
				t.Errorf("pending resolved %q for %s, want POSTED for %s", outcome, posted, tc.confGross)
			}
			wantEntries := []string{
				"D pending travellers:refund_payable " + tc.gross,
				"C pending authority:refund_expense " + tc.gross,
				"D posted authority:refund_expense " + tc.confGross,
				"C posted travellers:refund_payable " + tc.confGross,
			}
			if got := e.entries("form:" + issued.Number + ":verify"); fmt.Sprint(got) != fmt.Sprint(wantEntries) {
				t.Errorf("verify entries\n got %q\nwant %q", got, wantEntries)
			}
			if posted, pending := e.balance("travellers:refund_payable"); posted != "-"+tc.confGross || pending != "0.00" {
				t.Errorf("travellers:refund_payable posted %s pending %s, want -%s and 0.00", posted, pending, tc.confGross)
			}
			if posted, pending := e.balance("authority:refund_expense"); posted != tc.confGross || pending != "0.00" {
				t.Errorf("authority:refund_expense posted %s pending %s, want %s and 0.00", posted, pending, tc.confGross)
			}
			if n := e.count(`SELECT count(*) FROM audit_events WHERE action = 'EXPORT_CONFIRMED' AND object = $1`, issued.Number); n != 1 {
				t.Errorf("%d EXPORT_CONFIRMED audit events, want 1", n)
			}
			e.checkInvariants()
		})
	}
}

// TestVerifyZeroUnitsRejects: confirming zero units of every line rejects the form, voids
// its pending transfer and closes it (DOMAIN.md §5, §8).
func TestVerifyZeroUnitsRejects(t *testing.T) {
	t.Parallel()
	e := deskNewEnv(t)
	doc := deskDoc("E12345678", "GB")
	// G = 1,000.00 × 0.11 + 500.00 × 0.08 = 150.00.
	f := e.issue("S-JFB-1", doc, deskLine{2, "1000.00", "0.13"}, deskLine{1, "500.00", "0.09"})

	got, err := e.verify("TFU", f.Number, doc, map[int]int32{1: 0, 2: 0})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if got.State != refund.Rejected {
		t.Errorf("state %s, want REJECTED", got.State)
	}
	if got.ClosedAt == nil || !got.ClosedAt.Equal(deskT0) {
		t.Errorf("closed at %v, want %s", got.ClosedAt, deskT0)
	}
	if v := got.Verification; v == nil || v.Port != "TFU" || deskFixed(v.Eligible) != "0.00" || deskFixed(v.Gross) != "0.00" {
		t.Errorf("verification %+v, want port TFU, A' 0.00, G' 0.00", v)
	}
	if s := e.state(f.Number); s != refund.Rejected {
		t.Errorf("stored state %s, want REJECTED", s)
	}
	if n := e.count(`SELECT count(*) FROM forms WHERE number = $1 AND closed_at IS NOT NULL`, f.Number); n != 1 {
		t.Errorf("stored form not closed")
	}
	if outcome, posted := e.resolution(f.Number); outcome != "VOIDED" || posted != "0.00" {
		t.Errorf("pending resolved %q for %s, want VOIDED for 0.00", outcome, posted)
	}
	want := []string{"D pending travellers:refund_payable 150.00", "C pending authority:refund_expense 150.00"}
	if got := e.entries("form:" + f.Number + ":verify"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("verify entries\n got %q\nwant %q", got, want)
	}
	for _, acct := range []string{"travellers:refund_payable", "authority:refund_expense"} {
		if posted, pending := e.balance(acct); posted != "0.00" || pending != "0.00" {
			t.Errorf("%s posted %s pending %s, want 0.00 and 0.00", acct, posted, pending)
		}
	}
	if n := e.count(`SELECT count(*) FROM audit_events WHERE action = 'EXPORT_REJECTED' AND object = $1`, f.Number); n != 1 {
		t.Errorf("%d EXPORT_REJECTED audit events, want 1", n)
	}
	// A rejected form is final.
	before := e.counts()
	_, err = e.verify("CKG", f.Number, doc, deskAll(f))
	fe := deskWantFault(t, err, fault.Precondition, "FORM_STATE")
	if fe.Metadata["state"] != "REJECTED" {
		t.Errorf("metadata state %q, want REJECTED", fe.Metadata["state"])
	}
	deskSameCounts(t, before, e.counts())
	e.checkInvariants()
}

// TestVerifyExportWindowDay90Day91: a form issued on local date D may be confirmed until
// 23:59:59 of D+90 (Asia/Shanghai) and not from 00:00:00 of D+91, whatever the time of
// day it was issued; a refusal writes nothing.
func TestVerifyExportWindowDay90Day91(t *testing.T) {
	t.Parallel()
	// D = 2026-03-10 (local) in every case; D+90 = 2026-06-08.
	issuedAt := []struct {
		name string
		at   time.Time
	}{
		{"issued at local noon", deskT0},
		{"issued at local 00:00:00", time.Date(2026, 3, 9, 16, 0, 0, 0, time.UTC)},
		{"issued at local 23:59:59", time.Date(2026, 3, 10, 15, 59, 59, 0, time.UTC)},
	}
	lastSecond := time.Date(2026, 6, 8, 15, 59, 59, 0, time.UTC) // 2026-06-08 23:59:59 local
	firstSecond := time.Date(2026, 6, 8, 16, 0, 0, 0, time.UTC)  // 2026-06-09 00:00:00 local
	wantDeadline := time.Date(2026, 6, 8, 0, 0, 0, 0, time.UTC)
	for _, tc := range issuedAt {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := deskNewEnv(t)
			e.clock.Set(tc.at)
			doc := deskDoc("E12345678", "GB")
			onTime := e.issue("S-JFB-1", doc, deskLine{1, "1000.00", "0.13"})
			late := e.issue("S-JFB-1", doc, deskLine{1, "1000.00", "0.13"})
			for _, f := range []forms.Form{onTime, late} {
				if !f.PurchaseDate.Equal(time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)) || !f.ExportDeadline.Equal(wantDeadline) {
					t.Fatalf("purchase date %s, deadline %s; want 2026-03-10 and 2026-06-08",
						refund.FormatDate(f.PurchaseDate), refund.FormatDate(f.ExportDeadline))
				}
			}

			e.clock.Set(lastSecond)
			got, err := e.verify("CKG", onTime.Number, doc, deskAll(onTime))
			if err != nil {
				t.Fatalf("verify at D+90 23:59:59 local: %v", err)
			}
			if got.State != refund.Verified || deskFixed(got.Verification.Gross) != "110.00" {
				t.Errorf("at D+90: state %s G' %s, want VERIFIED 110.00", got.State, deskFixed(got.Verification.Gross))
			}

			e.clock.Set(firstSecond)
			before := e.counts()
			_, err = e.verify("CKG", late.Number, doc, deskAll(late))
			deskWantFault(t, err, fault.Precondition, "EXPORT_WINDOW_CLOSED")
			deskSameCounts(t, before, e.counts())
			if s := e.state(late.Number); s != refund.Issued {
				t.Errorf("late form is %s, want ISSUED", s)
			}
			if outcome, _ := e.resolution(late.Number); outcome != "" {
				t.Errorf("late form's pending transfer resolved %s, want open", outcome)
			}
			e.checkInvariants()
		})
	}
}

// TestVerifyRefusalsWriteNothing: each malformed or refused confirmation gets its exact
// fault and leaves every table as it was.
func TestVerifyRefusalsWriteNothing(t *testing.T) {
	t.Parallel()
	e := deskNewEnv(t)
	doc := deskDoc("E12345678", "GB")
	// Line 1: 2 units, 600.00 at 13%; line 2: 1 unit, 500.00 at 9%. G = 66.00 + 40.00 = 106.00.
	f := e.issue("S-JFB-1", doc, deskLine{2, "600.00", "0.13"}, deskLine{1, "500.00", "0.09"})
	voided := e.issue("S-JFB-1", doc, deskLine{1, "300.00", "0.13"})
	if _, err := e.forms.Void(e.ctx, forms.VoidRequest{
		Idem:      forms.Idempotency{Caller: "store/S-JFB-1", RequestID: uuid.New(), Hash: []byte("void")},
		StoreCode: "S-JFB-1", Number: voided.Number, Reason: "goods returned",
	}); err != nil {
		t.Fatal(err)
	}
	verified := e.issue("S-JFB-2", doc, deskLine{1, "300.00", "0.13"})
	if _, err := e.verify("CKG", verified.Number, doc, deskAll(verified)); err != nil {
		t.Fatal(err)
	}
	all := map[int]int32{1: 2, 2: 1}

	cases := []struct {
		name      string
		number    string
		presented refund.Document
		confirmed map[int]int32
		kind      fault.Kind
		reason    string
		fields    []string
		state     string // Metadata["state"], when set
	}{
		{name: "another document number", number: f.Number, presented: deskDoc("E12345679", "GB"), confirmed: all,
			kind: fault.Precondition, reason: "DOCUMENT_MISMATCH", fields: []string{"presented_document"}},
		{name: "same number, other issuing country", number: f.Number, presented: deskDoc("E12345678", "US"), confirmed: all,
			kind: fault.Precondition, reason: "DOCUMENT_MISMATCH", fields: []string{"presented_document"}},
		{name: "same number and country, other document type", number: f.Number,
			presented: refund.Document{Type: refund.HKMacaoPermit, Number: "E12345678", IssuingCountry: "GB"}, confirmed: all,
			kind: fault.Precondition, reason: "DOCUMENT_MISMATCH", fields: []string{"presented_document"}},
		{name: "confirmed above the line's quantity", number: f.Number, presented: doc, confirmed: map[int]int32{1: 3, 2: 1},
			kind: fault.Invalid, reason: "INVALID_CONFIRMATION", fields: []string{"lines[line_no=1].confirmed_quantity"}},
		{name: "negative quantity", number: f.Number, presented: doc, confirmed: map[int]int32{1: 2, 2: -1},
			kind: fault.Invalid, reason: "INVALID_CONFIRMATION", fields: []string{"lines[line_no=2].confirmed_quantity"}},
		{name: "a line missing", number: f.Number, presented: doc, confirmed: map[int]int32{1: 2},
			kind: fault.Invalid, reason: "INVALID_CONFIRMATION", fields: []string{"lines[line_no=2]"}},
		{name: "no line at all", number: f.Number, presented: doc, confirmed: map[int]int32{},
			kind: fault.Invalid, reason: "INVALID_CONFIRMATION", fields: []string{"lines[line_no=1]", "lines[line_no=2]"}},
		{name: "an unknown line number", number: f.Number, presented: doc, confirmed: map[int]int32{1: 2, 2: 1, 3: 1},
			kind: fault.Invalid, reason: "INVALID_CONFIRMATION", fields: []string{"lines[line_no=3]"}},
		{name: "line number 0", number: f.Number, presented: doc, confirmed: map[int]int32{0: 1, 1: 2, 2: 1},
			kind: fault.Invalid, reason: "INVALID_CONFIRMATION", fields: []string{"lines[line_no=0]"}},
		{name: "a VOIDED form", number: voided.Number, presented: doc, confirmed: map[int]int32{1: 1},
			kind: fault.Precondition, reason: "FORM_STATE", state: "VOIDED"},
		{name: "an already VERIFIED form", number: verified.Number, presented: doc, confirmed: map[int]int32{1: 1},
			kind: fault.Precondition, reason: "FORM_STATE", state: "VERIFIED"},
		{name: "an unknown form number", number: refund.NewFormNumber(), presented: doc, confirmed: all,
			kind: fault.NotFound, reason: "FORM_NOT_FOUND", fields: []string{"form_number"}},
		{name: "a mistyped form number", number: f.Number[:18] + deskOtherSymbol(f.Number[18]), presented: doc, confirmed: all,
			kind: fault.Invalid, reason: "FORM_NUMBER", fields: []string{"form_number"}},
	}
	states := map[string]refund.State{f.Number: refund.Issued, voided.Number: refund.Voided, verified.Number: refund.Verified}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.counts()
			_, err := e.verify("CKG", tc.number, tc.presented, tc.confirmed)
			fe := deskWantFault(t, err, tc.kind, tc.reason, tc.fields...)
			if tc.state != "" && fe.Metadata["state"] != tc.state {
				t.Errorf("metadata state %q, want %q", fe.Metadata["state"], tc.state)
			}
			deskSameCounts(t, before, e.counts())
			for number, want := range states {
				if got := e.state(number); got != want {
					t.Errorf("form %s is %s, want %s", number, got, want)
				}
			}
			if outcome, _ := e.resolution(f.Number); outcome != "" {
				t.Errorf("the ISSUED form's pending transfer resolved %s", outcome)
			}
		})
	}
	// After all the refusals the form still verifies.
	got, err := e.verify("CKG", f.Number, doc, all)
	if err != nil || deskFixed(got.Verification.Gross) != "106.00" {
		t.Fatalf("verify after refusals: %v, G' %v; want 106.00", err, got.Verification)
	}
	e.checkInvariants()
}

// deskOtherSymbol returns a Crockford symbol other than c, so that a number with it as
// its check symbol is mistyped.
func deskOtherSymbol(c byte) string {
	if c == '0' {
		return "1"
	}
	return "0"
}

// TestVerifyIdempotentRetry: the same request_id sent again (in sequence, then by 16
// concurrent retries) gets the first answer and verifies once; the same request_id with
// other content is refused.
func TestVerifyIdempotentRetry(t *testing.T) {
	t.Parallel()
	e := deskNewEnv(t)
	doc := deskDoc("E12345678", "GB")
	// 2 of 3 units of 300.00 at 13%: G' = 22.00.
	f := e.issue("S-JFB-1", doc, deskLine{3, "300.00", "0.13"})
	req := deskVerifyReq("CKG", f.Number, doc, map[int]int32{1: 2})

	first, err := e.forms.Verify(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Set(deskT0.Add(time.Hour)) // a retry later must not move the verification time
	again, err := e.forms.Verify(e.ctx, req)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	want := deskJSON(t, first)
	if got := deskJSON(t, again); got != want {
		t.Errorf("retry answered\n%s\nwant\n%s", got, want)
	}
	if !again.Verification.At.Equal(deskT0) || deskFixed(again.Verification.Gross) != "22.00" {
		t.Errorf("retry: verified at %s G' %s, want %s 22.00", again.Verification.At, deskFixed(again.Verification.Gross), deskT0)
	}

	// Concurrent retries of a fresh request.
	g := e.issue("S-JFB-1", doc, deskLine{3, "300.00", "0.13"})
	req2 := deskVerifyReq("CKG", g.Number, doc, map[int]int32{1: 1})
	const n = 16
	answers := make([]string, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			got, err := e.forms.Verify(e.ctx, req2)
			answers[i], errs[i] = deskJSON(t, got), err
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("concurrent retry %d: %v", i, errs[i])
		} else if answers[i] != answers[0] {
			t.Errorf("concurrent retry %d answered\n%s\nwant\n%s", i, answers[i], answers[0])
		}
	}
	t.Logf("concurrent verify retries: %d attempts, all answered alike", n)

	for _, number := range []string{f.Number, g.Number} {
		if c := e.count(`SELECT count(*) FROM journal_txns WHERE ref = $1 AND kind = 'EXPORT_CONFIRMED'`, number); c != 1 {
			t.Errorf("form %s: %d EXPORT_CONFIRMED journal txns, want 1", number, c)
		}
		if c := e.count(`SELECT count(*) FROM audit_events WHERE object = $1 AND action = 'EXPORT_CONFIRMED'`, number); c != 1 {
			t.Errorf("form %s: %d EXPORT_CONFIRMED audit events, want 1", number, c)
		}
	}
	if c := e.count(`SELECT count(*) FROM idempotency_keys WHERE method = 'VerifyExport'`); c != 2 {
		t.Errorf("%d VerifyExport idempotency records, want 2", c)
	}

	// The same request_id for other content.
	before := e.counts()
	other := req
	other.Confirmed = map[int]int32{1: 3}
	other.Idem.Hash = deskVerifyHash(f.Number, doc, other.Confirmed)
	_, err = e.forms.Verify(e.ctx, other)
	deskWantFault(t, err, fault.Precondition, "REQUEST_ID_REUSED", "request_id")
	deskSameCounts(t, before, e.counts())
	e.checkInvariants()
}

// deskJSON renders a value for comparison: equal JSON means equal fields (decimals by
// value, times to the nanosecond).
func deskJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Errorf("marshal: %v", err)
	}
	return string(b)
}
