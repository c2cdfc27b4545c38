package payouts_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"taxrefund/internal/fault"
	"taxrefund/internal/forms"
	"taxrefund/internal/payouts"
	"taxrefund/internal/refund"
)

// TestSettleArithmetic: one payout of one VERIFIED form: F' and N' from the agency's fee
// rate (0.02) on the exact confirmed amounts (DOMAIN.md §3), the ledger entries of §8, the
// form REFUNDED with its payout, and the payout as stored.
func TestSettleArithmetic(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		lines     []line
		confirmed map[int]int32 // nil: every unit
		desk      string
		method    payouts.Method
		account   string
		payAcct   string
		want      [4]string // A', G', F', N'
	}{
		{
			// DOMAIN.md's example: A = 1,500.00; G = 110.00 + 40.00 = 150.00;
			// F = 1,500.00 × 0.02 = 30.00; N = 120.00.
			name:  "DOMAIN example in cash",
			lines: []line{{1, "1000.00", "0.13"}, {1, "500.00", "0.09"}}, desk: "CKG-01", method: payouts.Cash,
			payAcct: "agency:AG-CQ:cash:CKG-01", want: [4]string{"1500.00", "150.00", "30.00", "120.00"},
		},
		{
			// 1 of 3 units of 100.00: A' = 33.333… → 33.33; G' = 3.6666… → 3.67;
			// F' = 33.333… × 0.02 = 0.6666… → 0.67; N' = 3.67 − 0.67 = 3.00. (Line 2,
			// 200.00, keeps the form above the minimum and is not presented.)
			name:  "1 of 3 units of 100.00 by bank card",
			lines: []line{{3, "100.00", "0.13"}, {1, "200.00", "0.13"}}, confirmed: map[int]int32{1: 1, 2: 0},
			desk: "CKG-02", method: payouts.BankCard, account: "6222020200112233445",
			payAcct: "agency:AG-CQ:transfers", want: [4]string{"33.33", "3.67", "0.67", "3.00"},
		},
		{
			// 1 of 3 units of 300.74: A' = 100.24666… (shown 100.25); G' = 11.0271… → 11.03;
			// F' = 100.24666… × 0.02 = 2.00493… → 2.00 (from the rounded 100.25 it would be
			// 2.005 → 2.01); N' = 9.03.
			name:  "fee from the exact A', not the rounded one",
			lines: []line{{3, "300.74", "0.13"}}, confirmed: map[int]int32{1: 1},
			desk: "TFU-01", method: payouts.Mobile, account: "wx-traveller@pay",
			payAcct: "agency:AG-CD:transfers", want: [4]string{"100.25", "11.03", "2.00", "9.03"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			doc := passport("E12345678", "GB")
			f := e.verifyAt(tc.desk[:3], e.issue("S-JFB-1", doc, tc.lines...), doc, tc.confirmed) // the desk's port
			e.clock.Set(t0.Add(3 * time.Hour))

			p := e.mustSettle(settleReq(tc.desk, doc, tc.method, tc.account, f.Number))
			wantAmounts(t, "payout", [4]decimal.Decimal{{}, p.Gross, p.Fee, p.Net}, [4]string{"", tc.want[1], tc.want[2], tc.want[3]})
			if len(p.Forms) != 1 || p.Forms[0].Number != f.Number {
				t.Fatalf("payout forms %+v, want just %s", p.Forms, f.Number)
			}
			sh := p.Forms[0]
			wantAmounts(t, "form share", [4]decimal.Decimal{sh.Eligible, sh.Gross, sh.Fee, sh.Net}, tc.want)
			if p.FeeRate.String() != "0.02" || p.DeskCode != tc.desk || p.Method != tc.method || p.Cashier != "cashier-4" ||
				p.ReceiptReference != "RCPT-"+tc.desk || !p.PaidAt.Equal(t0.Add(3*time.Hour)) || p.DocMasked != "*****5678" {
				t.Errorf("payout %+v: want fee rate 0.02, desk %s, %s, cashier-4, RCPT-%s, paid at %s, doc *****5678",
					p, tc.desk, tc.method, tc.desk, t0.Add(3*time.Hour))
			}

			// The form is REFUNDED by this payout; Get returns the same payout.
			got, err := e.forms.FindByNumber(e.ctx, f.Number)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != refund.Refunded || got.PayoutID == nil || *got.PayoutID != p.ID {
				t.Errorf("form %s with payout %v, want REFUNDED with %s", got.State, got.PayoutID, p.ID)
			}
			stored, err := e.payouts.Get(e.ctx, tc.desk, p.ID)
			if err != nil {
				t.Fatal(err)
			}
			if a, b := asJSON(t, stored), asJSON(t, p); a != b {
				t.Errorf("stored payout\n%s\nwant\n%s", a, b)
			}

			// Ledger (§8): Dr refund_payable G' / Cr agency_payable G'; Dr receivable G' /
			// Cr cash or transfers N' / Cr fee_income F'.
			agency := p.AgencyCode
			wantEntries := []string{
				"D agency:" + agency + ":receivable " + tc.want[1],
				"D travellers:refund_payable " + tc.want[1],
				"C " + tc.payAcct + " " + tc.want[3],
				"C agency:" + agency + ":fee_income " + tc.want[2],
				"C authority:agency_payable:" + agency + " " + tc.want[1],
			}
			slices.Sort(wantEntries)
			gotEntries := e.entries("payout:" + p.ID.String())
			slices.Sort(gotEntries)
			if fmt.Sprint(gotEntries) != fmt.Sprint(wantEntries) {
				t.Errorf("payout entries:%s\nwant:%s", joinLines(gotEntries), joinLines(wantEntries))
			}
			e.wantBalances(map[string]string{
				"travellers:refund_payable":          "0.00",
				"authority:refund_expense":           tc.want[1],
				"authority:agency_payable:" + agency: "-" + tc.want[1],
				"agency:" + agency + ":receivable":   tc.want[1],
				tc.payAcct:                           "-" + tc.want[3],
				"agency:" + agency + ":fee_income":   "-" + tc.want[2],
			})
			if n := e.count(`SELECT count(*) FROM payout_forms pf JOIN payouts p ON p.id = pf.payout_id
				WHERE p.id = $1 AND pf.form_id = $2 AND pf.gross_refund = $3 AND pf.fee = $4 AND pf.net_refund = $5`,
				p.ID, f.ID, tc.want[1], tc.want[2], tc.want[3]); n != 1 {
				t.Errorf("%d matching payout_forms rows, want 1", n)
			}
			e.checkInvariants()
		})
	}
}

// TestSettleMultiFormPayout: one payout of two VERIFIED forms of one traveller totals
// their shares; the ledger moves G, N and F once; the card number is stored masked only.
func TestSettleMultiFormPayout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	doc := passport("E12345678", "GB")
	// Form 1, DOMAIN's example: A 1,500.00, G 150.00, F 30.00, N 120.00.
	f1 := e.verified(doc, line{1, "1000.00", "0.13"}, line{1, "500.00", "0.09"})
	// Form 2 at another store, 3 of 4 units of 1,000.00: A' 750.00, G' 82.50, F' 15.00, N' 67.50.
	f2 := e.verify(e.issue("S-CXL-1", doc, line{4, "1000.00", "0.13"}), doc, map[int]int32{1: 3})
	// Totals: G 232.50, F 45.00, N 187.50.
	const card = "6222020200112233445"
	p := e.mustSettle(settleReq("CKG-01", doc, payouts.BankCard, card, f1.Number, f2.Number))
	wantAmounts(t, "payout", [4]decimal.Decimal{{}, p.Gross, p.Fee, p.Net}, [4]string{"", "232.50", "45.00", "187.50"})
	if len(p.Forms) != 2 {
		t.Fatalf("%d form shares, want 2", len(p.Forms))
	}
	want := map[string][4]string{f1.Number: {"1500.00", "150.00", "30.00", "120.00"}, f2.Number: {"750.00", "82.50", "15.00", "67.50"}}
	for _, sh := range p.Forms {
		w, ok := want[sh.Number]
		if !ok {
			t.Fatalf("share of unexpected form %s", sh.Number)
		}
		wantAmounts(t, "share of "+sh.Number, [4]decimal.Decimal{sh.Eligible, sh.Gross, sh.Fee, sh.Net}, w)
		delete(want, sh.Number)
	}
	for _, number := range []string{f1.Number, f2.Number} {
		got, err := e.forms.FindByNumber(e.ctx, number)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != refund.Refunded || got.PayoutID == nil || *got.PayoutID != p.ID {
			t.Errorf("form %s is %s with payout %v, want REFUNDED with %s", number, got.State, got.PayoutID, p.ID)
		}
	}
	e.wantBalances(map[string]string{
		"travellers:refund_payable":      "0.00",
		"authority:agency_payable:AG-CQ": "-232.50",
		"agency:AG-CQ:receivable":        "232.50",
		"agency:AG-CQ:transfers":         "-187.50",
		"agency:AG-CQ:cash:CKG-01":       "0.00",
		"agency:AG-CQ:fee_income":        "-45.00",
	})
	if n := e.count(`SELECT count(*) FROM journal_txns WHERE kind = 'REFUND_PAID'`); n != 1 {
		t.Errorf("%d REFUND_PAID txns, want 1", n)
	}

	// The card number: masked in the answer and the row; nowhere in full.
	if p.AccountMasked != "***************3445" {
		t.Errorf("account masked as %q, want ***************3445", p.AccountMasked)
	}
	if n := e.count(`SELECT count(*) FROM payouts WHERE account_masked = '***************3445'`); n != 1 {
		t.Errorf("stored masked account not found")
	}
	for _, q := range []string{
		`SELECT count(*) FROM payouts p WHERE strpos(p::text, $1) > 0`,
		`SELECT count(*) FROM payout_forms pf WHERE strpos(pf::text, $1) > 0`,
		`SELECT count(*) FROM audit_events a WHERE strpos(a::text, $1) > 0`,
		`SELECT count(*) FROM idempotency_keys k WHERE strpos(convert_from(k.response, 'UTF8'), $1) > 0`,
	} {
		if n := e.count(q, card); n != 0 {
			t.Errorf("the full card number is stored: %s finds %d rows", q, n)
		}
	}
	e.checkInvariants()
}

// TestSettleRefusalsWriteNothing: a payout the rules refuse gets its exact fault and
// writes nothing: forms not VERIFIED, a form already paid (naming the payout that paid
// it), forms of two travellers, a document that is not the forms', malformed requests,
// and a refund point that is not an airport desk.
func TestSettleRefusalsWriteNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	doc := passport("E12345678", "GB")
	other := passport("K87654321", "FR")
	lines := []line{{1, "1000.00", "0.13"}} // G 110.00, F 20.00, N 90.00
	issued := e.issue("S-JFB-1", doc, lines...)
	rejected := e.verify(e.issue("S-JFB-1", doc, lines...), doc, map[int]int32{1: 0})
	voided := e.issue("S-JFB-2", doc, lines...)
	if _, err := e.forms.Void(e.ctx, forms.VoidRequest{
		Idem:      forms.Idempotency{Caller: "store/S-JFB-2", RequestID: uuid.New(), Hash: []byte("void")},
		StoreCode: "S-JFB-2", Number: voided.Number, Reason: "goods returned",
	}); err != nil {
		t.Fatal(err)
	}
	expired := e.issue("S-JFB-1", doc, lines...)
	verified := e.verified(doc, lines...)
	paid := e.verified(doc, lines...)
	otherVerified := e.verified(other, lines...)
	e.clock.Set(time.Date(2026, 6, 8, 16, 0, 0, 0, time.UTC)) // D+91 local: expire
	if n, err := e.forms.Expire(e.ctx, "test"); err != nil || n != 2 {
		t.Fatalf("Expire = %d, %v; want 2 (issued and expired)", n, err)
	}
	issued = e.issue("S-JFB-1", doc, lines...) // a fresh ISSUED form
	winner := e.mustSettle(settleReq("CKG-01", doc, payouts.Cash, "", paid.Number))

	cases := []struct {
		name   string
		req    payouts.SettleRequest
		kind   fault.Kind
		reason string
		fields []string
		meta   map[string]string
	}{
		{"an ISSUED form", settleReq("CKG-01", doc, payouts.Cash, "", issued.Number),
			fault.Precondition, "FORM_NOT_VERIFIED", []string{"form_numbers"}, map[string]string{"form_number": issued.Number, "state": "ISSUED"}},
		{"a REJECTED form", settleReq("CKG-01", doc, payouts.Cash, "", rejected.Number),
			fault.Precondition, "FORM_NOT_VERIFIED", []string{"form_numbers"}, map[string]string{"form_number": rejected.Number, "state": "REJECTED"}},
		{"an EXPIRED form", settleReq("CKG-01", doc, payouts.Cash, "", expired.Number),
			fault.Precondition, "FORM_NOT_VERIFIED", []string{"form_numbers"}, map[string]string{"form_number": expired.Number, "state": "EXPIRED"}},
		{"a VOIDED form", settleReq("CKG-01", doc, payouts.Cash, "", voided.Number),
			fault.Precondition, "FORM_NOT_VERIFIED", []string{"form_numbers"}, map[string]string{"form_number": voided.Number, "state": "VOIDED"}},
		{"a REFUNDED form", settleReq("CKG-02", doc, payouts.Cash, "", paid.Number),
			fault.Precondition, "FORM_ALREADY_PAID", []string{"form_numbers"}, map[string]string{"form_number": paid.Number, "payout_id": winner.ID.String()}},
		{"a VERIFIED and a REFUNDED form", settleReq("CKG-02", doc, payouts.Cash, "", verified.Number, paid.Number),
			fault.Precondition, "FORM_ALREADY_PAID", []string{"form_numbers"}, map[string]string{"form_number": paid.Number, "payout_id": winner.ID.String()}},
		{"a VERIFIED and an ISSUED form", settleReq("CKG-02", doc, payouts.Cash, "", verified.Number, issued.Number),
			fault.Precondition, "FORM_NOT_VERIFIED", []string{"form_numbers"}, map[string]string{"form_number": issued.Number, "state": "ISSUED"}},
		{"a form confirmed at CKG, at TFU-01 (DOMAIN.md §5: paid only at the port of export)", settleReq("TFU-01", doc, payouts.Cash, "", verified.Number),
			fault.Precondition, "WRONG_PORT", []string{"form_numbers"}, map[string]string{"form_number": verified.Number, "export_port": "CKG", "desk_port": "TFU"}},
		{"a form confirmed at CKG, at CTU-01", settleReq("CTU-01", doc, payouts.BankCard, "6222020200112233445", verified.Number),
			fault.Precondition, "WRONG_PORT", []string{"form_numbers"}, map[string]string{"form_number": verified.Number, "export_port": "CKG", "desk_port": "CTU"}},
		{"forms of two travellers", settleReq("CKG-01", doc, payouts.Cash, "", verified.Number, otherVerified.Number),
			fault.Precondition, "DOCUMENT_MISMATCH", []string{"presented_document"}, nil},
		{"the other traveller's document for this traveller's form", settleReq("CKG-01", other, payouts.Cash, "", verified.Number),
			fault.Precondition, "DOCUMENT_MISMATCH", []string{"presented_document"}, nil},
		{"same number, other issuing country", settleReq("CKG-01", passport("E12345678", "US"), payouts.Cash, "", verified.Number),
			fault.Precondition, "DOCUMENT_MISMATCH", []string{"presented_document"}, nil},
		{"cash with an account reference", settleReq("CKG-01", doc, payouts.Cash, "6222020200112233445", verified.Number),
			fault.Invalid, "INVALID_REQUEST", []string{"account_reference"}, nil},
		{"bank card without an account reference", settleReq("CKG-01", doc, payouts.BankCard, "", verified.Number),
			fault.Invalid, "INVALID_REQUEST", []string{"account_reference"}, nil},
		{"mobile with a malformed account", settleReq("CKG-01", doc, payouts.Mobile, "ab c", verified.Number),
			fault.Invalid, "INVALID_REQUEST", []string{"account_reference"}, nil},
		{"an unknown method", settleReq("CKG-01", doc, payouts.Method("CHEQUE"), "", verified.Number),
			fault.Invalid, "INVALID_REQUEST", []string{"method"}, nil},
		{"no method", settleReq("CKG-01", doc, payouts.Method(""), "", verified.Number),
			fault.Invalid, "INVALID_REQUEST", []string{"method"}, nil},
		{"no receipt", withReceipt(settleReq("CKG-01", doc, payouts.Cash, "", verified.Number), ""),
			fault.Invalid, "INVALID_REQUEST", []string{"receipt_reference"}, nil},
		{"a receipt reference of 65 characters", withReceipt(settleReq("CKG-01", doc, payouts.Cash, "", verified.Number), strings.Repeat("R", 65)),
			fault.Invalid, "INVALID_REQUEST", []string{"receipt_reference"}, nil},
		{"no forms", settleReq("CKG-01", doc, payouts.Cash, ""),
			fault.Invalid, "INVALID_REQUEST", []string{"form_numbers"}, nil},
		{"a form listed twice", settleReq("CKG-01", doc, payouts.Cash, "", verified.Number, verified.Number),
			fault.Invalid, "INVALID_REQUEST", []string{"form_numbers[1]"}, nil},
		{"an unknown form number", settleReq("CKG-01", doc, payouts.Cash, "", verified.Number, refund.NewFormNumber()),
			fault.NotFound, "FORM_NOT_FOUND", []string{"form_numbers"}, nil},
		{"a refund point in a block", settleReq("JFB-RP", doc, payouts.Cash, "", verified.Number),
			fault.Precondition, "NOT_AN_AIRPORT_DESK", nil, nil},
		{"an unknown desk", settleReq("XXX-99", doc, payouts.Cash, "", verified.Number),
			fault.Denied, "UNKNOWN_DESK", nil, nil},
	}
	wantStates := e.states()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.counts()
			_, err := e.settle(tc.req)
			fe := wantFault(t, err, tc.kind, tc.reason, tc.fields...)
			for k, v := range tc.meta {
				if fe.Metadata[k] != v {
					t.Errorf("metadata %s = %q, want %q", k, fe.Metadata[k], v)
				}
			}
			if tc.reason == "WRONG_PORT" && (!strings.Contains(fe.Message, tc.meta["export_port"]) || !strings.Contains(fe.Message, tc.meta["desk_port"])) {
				t.Errorf("WRONG_PORT message %q does not name both ports", fe.Message)
			}
			sameCounts(t, before, e.counts())
			if got := e.states(); fmt.Sprint(got) != fmt.Sprint(wantStates) {
				t.Errorf("form states changed:\n%v\nwant\n%v", got, wantStates)
			}
		})
	}
	// The verified forms still pay.
	e.mustSettle(settleReq("CKG-02", doc, payouts.Cash, "", verified.Number))
	e.mustSettle(settleReq("CKG-02", other, payouts.Cash, "", otherVerified.Number))
	e.checkInvariants()
}

func withReceipt(r payouts.SettleRequest, receipt string) payouts.SettleRequest {
	r.Receipt = receipt
	rehash(&r)
	return r
}

// TestSettleCashCapAcrossDesksOneLocalDay: the cash paid to one document on one local
// day, at every desk of every agency, may reach the 20,000.00 cap but not pass it; bank
// card is not counted; the next local day starts again at 0. The services run as the
// application role: row-level security hides AG-CQ's payouts from TFU-01 (AG-CD), and
// the cap must count them all the same.
func TestSettleCashCapAcrossDesksOneLocalDay(t *testing.T) {
	t.Parallel()
	e := newAppEnv(t)
	doc := passport("E12345678", "GB")
	// N 15,000.00: A = 200,000.00; G = 100,000.00 × 0.11 + 100,000.00 × 0.08 = 19,000.00;
	// F = 4,000.00; N = 15,000.00.
	f15k := e.verified(doc, line{1, "100000.00", "0.13"}, line{1, "100000.00", "0.09"})
	// N 6,000.00: G = 100,000.00 × 0.08 = 8,000.00; F = 2,000.00.
	f6k := e.verified(doc, line{1, "100000.00", "0.09"})
	f6kNextDay := e.verified(doc, line{1, "100000.00", "0.09"})
	// N 5,000.00: G = 55,555.56 × 0.11 = 6,111.1116 → 6,111.11; F = 1,111.1112 → 1,111.11.
	f5k := e.verified(doc, line{1, "55555.56", "0.13"})
	// N 90.00: G 110.00, F 20.00; confirmed at TFU, so paid at TFU-01.
	f90 := e.verifyAt("TFU", e.issue("S-JFB-1", doc, line{1, "1000.00", "0.13"}), doc, nil)
	// Another traveller, N 6,000.00.
	other := passport("K87654321", "FR")
	otherF6k := e.verified(other, line{1, "100000.00", "0.09"})

	p := e.mustSettle(settleReq("CKG-01", doc, payouts.Cash, "", f15k.Number))
	wantAmounts(t, "15,000 payout", [4]decimal.Decimal{{}, p.Gross, p.Fee, p.Net}, [4]string{"", "19000.00", "4000.00", "15000.00"})

	refuse := func(desk string, number string, paidToday string) {
		t.Helper()
		before := e.counts()
		_, err := e.settle(settleReq(desk, doc, payouts.Cash, "", number))
		fe := wantFault(t, err, fault.Precondition, "CASH_CAP_EXCEEDED", "method")
		if fe.Metadata["cash_paid_today"] != paidToday {
			t.Errorf("cash_paid_today %q, want %q", fe.Metadata["cash_paid_today"], paidToday)
		}
		sameCounts(t, before, e.counts())
	}
	// 15,000.00 + 6,000.00 = 21,000.00 > 20,000.00, at the other desk.
	refuse("CKG-02", f6k.Number, "15000.00")
	// By bank card it pays, and does not count toward the cash.
	p = e.mustSettle(settleReq("CKG-02", doc, payouts.BankCard, "6222020200112233445", f6k.Number))
	wantAmounts(t, "6,000 by card", [4]decimal.Decimal{{}, p.Gross, p.Fee, p.Net}, [4]string{"", "8000.00", "2000.00", "6000.00"})
	// 15,000.00 + 5,000.00 = 20,000.00: at the cap, not above it.
	p = e.mustSettle(settleReq("CKG-02", doc, payouts.Cash, "", f5k.Number))
	wantAmounts(t, "5,000 in cash", [4]decimal.Decimal{{}, p.Gross, p.Fee, p.Net}, [4]string{"", "6111.11", "1111.11", "5000.00"})
	// The cap is full: 90.00 more is refused, at another agency's desk too, up to the last
	// second of the local day (2026-03-10 23:59:59 = 15:59:59Z).
	e.clock.Set(time.Date(2026, 3, 10, 15, 59, 59, 0, time.UTC))
	refuse("TFU-01", f90.Number, "20000.00")
	refuse("CKG-01", f6kNextDay.Number, "20000.00")
	// Another traveller's cash is counted apart.
	e.mustSettle(settleReq("CKG-01", other, payouts.Cash, "", otherF6k.Number))
	// The next local day (00:00:00 = 16:00:00Z) starts again.
	e.clock.Set(time.Date(2026, 3, 10, 16, 0, 0, 0, time.UTC))
	e.mustSettle(settleReq("CKG-01", doc, payouts.Cash, "", f6kNextDay.Number))
	e.mustSettle(settleReq("TFU-01", doc, payouts.Cash, "", f90.Number))

	e.wantBalances(map[string]string{
		"agency:AG-CQ:cash:CKG-01":  "-27000.00", // 15,000 + 6,000 (other traveller) + 6,000 (next day)
		"agency:AG-CQ:cash:CKG-02":  "-5000.00",
		"agency:AG-CQ:transfers":    "-6000.00",
		"agency:AG-CD:cash:TFU-01":  "-90.00",
		"travellers:refund_payable": "0.00",
	})
	if n := e.count(`SELECT count(*) FROM payouts`); n != 6 {
		t.Errorf("%d payouts, want 6", n)
	}
	e.checkInvariants()
}

// TestSettleIdempotentRetries: 32 concurrent retries of one request pay once and all get
// the same answer; a later retry too; the request_id reused for another request is
// refused.
func TestSettleIdempotentRetries(t *testing.T) {
	t.Parallel()
	e := newRaceEnv(t)
	doc := passport("E12345678", "GB")
	f := e.verified(doc, line{1, "1000.00", "0.13"}, line{1, "500.00", "0.09"}) // G 150.00, F 30.00, N 120.00
	req := settleReq("CKG-01", doc, payouts.Cash, "", f.Number)

	const n = 32
	answers := make([]payouts.Payout, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			answers[i], errs[i] = e.settle(req)
		})
	}
	close(start)
	wg.Wait()
	ok := 0
	for i := range n {
		if errs[i] != nil {
			t.Errorf("retry %d: %v", i, errs[i])
			continue
		}
		ok++
		if a, b := asJSON(t, answers[i]), asJSON(t, answers[0]); a != b {
			t.Errorf("retry %d answered\n%s\nwant\n%s", i, a, b)
		}
	}
	t.Logf("one request_id sent by %d goroutines: %d answered, payout %s", n, ok, answers[0].ID)
	if fixed(answers[0].Net) != "120.00" {
		t.Errorf("net %s, want 120.00", fixed(answers[0].Net))
	}

	// Later, from the same cashier: the same answer, nothing written.
	e.clock.Set(t0.Add(2 * time.Hour))
	before := e.counts()
	again, err := e.settle(req)
	if err != nil {
		t.Fatalf("later retry: %v", err)
	}
	if a, b := asJSON(t, again), asJSON(t, answers[0]); a != b {
		t.Errorf("later retry answered\n%s\nwant\n%s", a, b)
	}
	sameCounts(t, before, e.counts())

	for q, want := range map[string]int{
		`SELECT count(*) FROM payouts`:                                        1,
		`SELECT count(*) FROM payout_forms`:                                   1,
		`SELECT count(*) FROM journal_txns WHERE kind = 'REFUND_PAID'`:        1,
		`SELECT count(*) FROM audit_events WHERE action = 'REFUND_PAID'`:      1,
		`SELECT count(*) FROM idempotency_keys WHERE method = 'SettleRefund'`: 1,
		`SELECT count(*) FROM forms WHERE state = 'REFUNDED'`:                 1,
	} {
		if got := e.count(q); got != want {
			t.Errorf("%s = %d, want %d", q, got, want)
		}
	}
	e.wantBalances(map[string]string{"agency:AG-CQ:cash:CKG-01": "-120.00", "agency:AG-CQ:receivable": "150.00"})

	// The same request_id for another request: refused, nothing written.
	for _, change := range []struct {
		name string
		edit func(r *payouts.SettleRequest)
	}{
		{"other method", func(r *payouts.SettleRequest) { r.Method, r.Account = payouts.BankCard, "6222020200112233445" }},
		{"other receipt", func(r *payouts.SettleRequest) { r.Receipt = "RCPT-OTHER" }},
	} {
		r := req
		change.edit(&r)
		rehash(&r)
		_, err := e.settle(r)
		wantFault(t, err, fault.Precondition, "REQUEST_ID_REUSED", "request_id")
		sameCounts(t, before, e.counts())
	}
	e.checkInvariants()
}

// TestSettleZeroRefundFormIsNotAnInternalError: customs may confirm units whose refund
// rounds to 0.00, and the form is VERIFIED with G' 0.00. Paying it must either close it
// with a 0.00 payout or refuse it with a typed fault; an untyped error (gRPC Internal,
// "txn payout:…: no entries") leaves the form VERIFIED for ever.
func TestSettleZeroRefundFormIsNotAnInternalError(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		lines     []line
		confirmed map[int]int32
		eligible  string
	}{
		// 300.00 × 1/10,000 = 0.03; × 0.08 = 0.0024 → 0.00.
		{"1 of 10,000 units of 300.00 at 9%", []line{{10000, "300.00", "0.09"}}, map[int]int32{1: 1}, "0.03"},
		// Only a 0.05 carrier bag leaves: 0.05 × 0.08 = 0.004 → 0.00.
		{"only a 0.05 bag presented", []line{{1, "300.00", "0.13"}, {1, "0.05", "0.09"}}, map[int]int32{1: 0, 2: 1}, "0.05"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			doc := passport("E12345678", "GB")
			f := e.verify(e.issue("S-JFB-1", doc, tc.lines...), doc, tc.confirmed)
			if f.State != refund.Verified || fixed(f.Verification.Gross) != "0.00" || fixed(f.Verification.Eligible) != tc.eligible {
				t.Fatalf("verified form %s A' %s G' %s, want VERIFIED %s 0.00", f.State, fixed(f.Verification.Eligible), fixed(f.Verification.Gross), tc.eligible)
			}
			p, err := e.settle(settleReq("CKG-01", doc, payouts.Cash, "", f.Number))
			if err != nil {
				if _, ok := fault.As(err); !ok {
					t.Fatalf("settling a VERIFIED form with G' 0.00 failed with an untyped (internal) error: %v", err)
				}
				t.Logf("refused: %v", err)
			} else if fixed(p.Gross) != "0.00" || fixed(p.Net) != "0.00" {
				t.Errorf("payout G %s N %s, want 0.00", fixed(p.Gross), fixed(p.Net))
			}
			e.checkInvariants()
		})
	}
}
