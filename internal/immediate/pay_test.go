package immediate_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"taxrefund/internal/fault"
	"taxrefund/internal/immediate"
	"taxrefund/internal/refund"
)

// TestPayDomainExample pays DOMAIN.md §3's example at the IFS refund point: G 150.00,
// F 30.00, N 120.00; the §8 "Immediate refund paid" entries; the committed date is the
// purchase date + 17 and the capture due 3 working days later; the form stays ISSUED.
func TestPayDomainExample(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	doc := passport("P1234567", "GB")
	f := e.issue("S-CXL-1", doc)
	req := payReq("IFS-RP", f.Number, doc)
	p := e.mustPay(req)

	got := map[string]string{
		"state": p.State, "form": p.FormNumber, "desk": p.DeskCode, "agency": p.AgencyCode, "region": p.RegionCode,
		"gross": fixed(p.GrossRefund), "fee": fixed(p.Fee), "net": fixed(p.NetRefund), "fee_rate": p.FeeRate.String(),
		"authorized": fixed(p.AuthorizedAmount), "paid_date": p.PaidDate.Format(time.DateOnly),
		"committed": p.CommittedDate.Format(time.DateOnly), "capture_due": p.CaptureDue.Format(time.DateOnly),
		"ports": fmt.Sprint(p.DesignatedPorts), "last4": p.CardLast4, "expiry": p.CardExpiry.Format("2006-01"),
		"token": p.CardToken, "agreement": p.AgreementReference, "cashier": p.Cashier,
	}
	want := map[string]string{
		"state": immediate.Prepaid, "form": f.Number, "desk": "IFS-RP", "agency": "AG-CD", "region": "SC-CQ",
		"gross": "150.00", "fee": "30.00", "net": "120.00", "fee_rate": "0.02", "authorized": "120.00",
		"paid_date": "2026-03-10", "committed": "2026-03-27", "capture_due": "2026-04-01", "ports": "[CKG TFU]",
		"last4": "4242", "expiry": "2027-12", "token": req.PreAuth.Token, "agreement": "AGR-" + f.Number, "cashier": "cashier-7",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("prepayment %s = %q, want %q", k, got[k], w)
		}
	}
	// The row as stored says the same.
	row := e.prepaymentOf(f.ID)
	if row.ID != p.ID || row.State != immediate.Prepaid || fixed(row.NetRefund) != "120.00" ||
		row.CommittedDate.Format(time.DateOnly) != "2026-03-27" || row.CaptureDue.Format(time.DateOnly) != "2026-04-01" ||
		row.ResolvedTxnID != nil || row.ResolvedAt != nil || row.TxnID != p.TxnID {
		t.Errorf("stored prepayment %+v does not match the answer %+v", row, p.Prepayment)
	}

	key := "prepayment:" + p.ID.String() + ":pay"
	e.wantEntries(key, "D agency:AG-CD:prepayments 120.00", "C agency:AG-CD:cash:IFS-RP 120.00")
	if kind, eff := e.txnKind(key); kind != "IMMEDIATE_REFUND_PAID" || eff != "2026-03-10" {
		t.Errorf("pay txn is %s on %s, want IMMEDIATE_REFUND_PAID on 2026-03-10", kind, eff)
	}
	e.wantBalances("after pay", map[string]string{
		"agency:AG-CD:prepayments": "120.00", "agency:AG-CD:cash:IFS-RP": "-120.00",
		"travellers:refund_payable": "0.00", "agency:AG-CD:receivable": "0.00", "agency:AG-CD:card_captures": "0.00",
	})
	if got := e.pendingBal("travellers:refund_payable"); got != "-150.00" {
		t.Errorf("refund_payable pending %s, want -150.00 (the form's G, still pending)", got)
	}
	if st := e.formState(f.Number); st != refund.Issued {
		t.Errorf("form is %s after the prepayment, want ISSUED", st)
	}
	if n := e.count(`SELECT count(*) FROM audit_events WHERE action = 'IMMEDIATE_REFUND_PAID' AND object = $1`, f.Number); n != 1 {
		t.Errorf("%d IMMEDIATE_REFUND_PAID audit events, want 1", n)
	}
	if n := e.count(`SELECT count(*) FROM idempotency_keys WHERE method = 'PayImmediateRefund'`); n != 1 {
		t.Errorf("%d PayImmediateRefund idempotency records, want 1", n)
	}
	if ob := e.outbox(); len(ob) != 0 {
		t.Errorf("outbox after a prepayment: %v, want nothing (no release or capture yet)", ob)
	}
	if n := e.count(`SELECT count(*) FROM payouts`); n != 0 {
		t.Errorf("%d payouts after a prepayment, want 0", n)
	}

	// A hold of exactly N is enough; a committed date before the default is kept and its
	// capture date follows it: 2026-03-20 is a Friday, so Mon 23, Tue 24, Wed 25.
	f2 := e.issue("S-CXL-1", doc)
	r2 := payReq("IFS-RP", f2.Number, doc)
	r2.CommittedDate = date(t, "2026-03-20")
	r2.DeparturePort = "CKG"
	rehash(&r2)
	p2 := e.mustPay(r2)
	if c, d := p2.CommittedDate.Format(time.DateOnly), p2.CaptureDue.Format(time.DateOnly); c != "2026-03-20" || d != "2026-03-25" {
		t.Errorf("committed %s, capture due %s; want 2026-03-20 and 2026-03-25", c, d)
	}
	e.wantBalances("after two", map[string]string{"agency:AG-CD:prepayments": "240.00", "agency:AG-CD:cash:IFS-RP": "-240.00"})
	e.checkInvariants("after pay")
}

// TestPayRefusals sends every bad input of the issue; each gets its reason and field and
// writes nothing.
func TestPayRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	doc := passport("P7654321", "FR")
	cxl := e.issue("S-CXL-1", doc)
	jfb1 := e.issue("S-JFB-1", doc)
	jfb2 := e.issue("S-JFB-2", doc)

	type change func(r *immediate.PayRequest)
	cases := []struct {
		name   string
		req    immediate.PayRequest
		change change
		kind   fault.Kind
		reason string
		fields []string
	}{
		{"store not enabled", payReq("JFB-RP", jfb2.Number, doc), nil, fault.Precondition, "STORE_NOT_ENABLED", []string{"form_number"}},
		{"airport desk, not a refund point", payReq("CKG-01", cxl.Number, doc), nil, fault.Precondition, "NOT_A_REFUND_POINT", []string{"-"}},
		{"airport desk of the right agency", payReq("TFU-01", cxl.Number, doc), nil, fault.Precondition, "NOT_A_REFUND_POINT", []string{"-"}},
		{"unknown desk", payReq("XXX-99", cxl.Number, doc), nil, fault.Denied, "UNKNOWN_DESK", []string{"-"}},
		{"hold below N", payReq("IFS-RP", cxl.Number, doc), func(r *immediate.PayRequest) {
			r.PreAuth.Authorized = decimal.RequireFromString("119.99")
		}, fault.Precondition, "PREAUTH_TOO_LOW", []string{"pre_authorization.authorized_amount"}},
		{"card expires in March, before the capture on 2026-04-01", payReq("IFS-RP", cxl.Number, doc), func(r *immediate.PayRequest) {
			r.PreAuth.Expiry = date(t, "2026-03-01")
		}, fault.Precondition, "CARD_EXPIRED", []string{"pre_authorization.card_expiry"}},
		{"card expired last year", payReq("IFS-RP", cxl.Number, doc), func(r *immediate.PayRequest) {
			r.PreAuth.Expiry = date(t, "2025-12-01")
		}, fault.Precondition, "CARD_EXPIRED", []string{"pre_authorization.card_expiry"}},
		{"committed date purchase + 18", payReq("IFS-RP", cxl.Number, doc), func(r *immediate.PayRequest) {
			r.CommittedDate = date(t, "2026-03-28")
		}, fault.Precondition, "COMMITTED_DATE_OUT_OF_WINDOW", []string{"committed_date"}},
		{"committed date yesterday", payReq("IFS-RP", cxl.Number, doc), func(r *immediate.PayRequest) {
			r.CommittedDate = date(t, "2026-03-09")
		}, fault.Precondition, "COMMITTED_DATE_OUT_OF_WINDOW", []string{"committed_date"}},
		{"port CTU not designated", payReq("IFS-RP", cxl.Number, doc), func(r *immediate.PayRequest) {
			r.DeparturePort = "CTU"
		}, fault.Precondition, "PORT_NOT_DESIGNATED", []string{"departure_port"}},
		{"no port", payReq("IFS-RP", cxl.Number, doc), func(r *immediate.PayRequest) {
			r.DeparturePort = ""
		}, fault.Precondition, "PORT_NOT_DESIGNATED", []string{"departure_port"}},
		{"JFB form at the CXL refund point", payReq("IFS-RP", jfb1.Number, doc), nil, fault.Precondition, "WRONG_BLOCK", []string{"-"}},
		{"CXL form at the JFB refund point", payReq("JFB-RP", cxl.Number, doc), nil, fault.Precondition, "WRONG_BLOCK", []string{"-"}},
		{"another traveller's document", payReq("IFS-RP", cxl.Number, passport("P7654322", "FR")), nil, fault.Precondition, "DOCUMENT_MISMATCH", []string{"presented_document"}},
		{"no such form", payReq("IFS-RP", refund.NewFormNumber(), doc), nil, fault.NotFound, "FORM_NOT_FOUND", []string{"form_number"}},
		{"card number as token", payReq("IFS-RP", cxl.Number, doc), func(r *immediate.PayRequest) {
			r.PreAuth.Token = "4111111111111111"
		}, fault.Invalid, "INVALID_REQUEST", []string{"pre_authorization.acquirer_token"}},
		{"card number with spaces as token", payReq("IFS-RP", cxl.Number, doc), func(r *immediate.PayRequest) {
			r.PreAuth.Token = "4111 1111 1111 1111"
		}, fault.Invalid, "INVALID_REQUEST", []string{"pre_authorization.acquirer_token"}},
		{"card number with hyphens as token", payReq("IFS-RP", cxl.Number, doc), func(r *immediate.PayRequest) {
			r.PreAuth.Token = "4111-1111-1111-1111"
		}, fault.Invalid, "INVALID_REQUEST", []string{"pre_authorization.acquirer_token"}},
		{"card number and bad last 4", payReq("IFS-RP", cxl.Number, doc), func(r *immediate.PayRequest) {
			r.PreAuth.Token, r.PreAuth.Last4 = "4111111111111111", "1111 "
		}, fault.Invalid, "INVALID_REQUEST", []string{"pre_authorization.acquirer_token", "pre_authorization.card_last4"}},
		{"token too short", payReq("IFS-RP", cxl.Number, doc), func(r *immediate.PayRequest) {
			r.PreAuth.Token = "tok"
		}, fault.Invalid, "INVALID_REQUEST", []string{"pre_authorization.acquirer_token"}},
		{"no agreement", payReq("IFS-RP", cxl.Number, doc), func(r *immediate.PayRequest) {
			r.Agreement = ""
		}, fault.Invalid, "INVALID_REQUEST", []string{"agreement_reference"}},
		{"not a form number", payReq("IFS-RP", "NOT-A-FORM", doc), nil, fault.Invalid, "INVALID_REQUEST", []string{"form_number"}},
	}
	before := e.counts()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := c.req
			if c.change != nil {
				c.change(&r)
				rehash(&r)
			}
			_, err := e.pay(r)
			wantFault(t, err, c.kind, c.reason, c.fields...)
			sameCounts(t, c.name, before, e.counts())
		})
	}

	// Boundaries that pass: a hold of exactly N, a card valid through April (the capture
	// month), the committed date purchase + 17 given explicitly.
	ok := payReq("IFS-RP", cxl.Number, doc)
	ok.PreAuth.Expiry = date(t, "2026-04-01")
	ok.CommittedDate = date(t, "2026-03-27")
	rehash(&ok)
	p := e.mustPay(ok)
	if fixed(p.NetRefund) != "120.00" || p.CaptureDue.Format(time.DateOnly) != "2026-04-01" {
		t.Errorf("boundary prepayment: N %s, capture due %s", fixed(p.NetRefund), p.CaptureDue.Format(time.DateOnly))
	}

	// The same request again answers the same; its request_id with other content is refused.
	before = e.counts()
	again, err := e.pay(ok)
	if err != nil || asJSON(t, again) != asJSON(t, p) {
		t.Errorf("retried prepayment: %v\n\t%s\n\t%s", err, asJSON(t, again), asJSON(t, p))
	}
	other := ok
	other.Agreement = "AGR-OTHER"
	rehash(&other)
	_, err = e.pay(other)
	wantFault(t, err, fault.Precondition, "REQUEST_ID_REUSED", "request_id")
	sameCounts(t, "retries", before, e.counts())

	// A second prepayment of the form, from the same refund point with a new request_id.
	before = e.counts()
	_, err = e.pay(payReq("IFS-RP", cxl.Number, doc))
	fe := wantFault(t, err, fault.Precondition, "ALREADY_PREPAID", "form_number")
	if fe.Metadata["prepayment_id"] != p.ID.String() {
		t.Errorf("ALREADY_PREPAID names prepayment %q, want %s", fe.Metadata["prepayment_id"], p.ID)
	}
	sameCounts(t, "second prepayment", before, e.counts())

	// A form no longer ISSUED cannot be prepaid.
	v := e.mustVerify("CTU", jfb1, doc, nil)
	if v.State != refund.Verified {
		t.Fatalf("verified at CTU: %s", v.State)
	}
	before = e.counts()
	_, err = e.pay(payReq("JFB-RP", jfb1.Number, doc))
	wantFault(t, err, fault.Precondition, "FORM_STATE")
	sameCounts(t, "verified form", before, e.counts())

	// No card number is stored anywhere: not in prepayments, the stored answers, the audit
	// trail or any other table.
	if found := e.cardNumberRows(); len(found) != 0 {
		t.Errorf("a card number is stored: rows by table %v", found)
	}
	e.checkInvariants("after refusals")
}

// TestPayRefusesCardNumberWithOtherSeparators sends a card number written with dots,
// underscores or colons as the acquirer token. The issue says "never a full card number;
// reject anything that looks like one"; LooksLikeCardNumber ignores only spaces and
// hyphens, and the token pattern allows '.', '_' and ':', so these pass and the card
// number is stored in prepayments.card_token.
func TestPayRefusesCardNumberWithOtherSeparators(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	doc := passport("P5550001", "DE")
	for _, token := range []string{"4111.1111.1111.1111", "4111_1111_1111_1111", "4111:1111:1111:1111"} {
		f := e.issue("S-CXL-1", doc)
		r := payReq("IFS-RP", f.Number, doc)
		r.PreAuth.Token = token
		rehash(&r)
		before := e.counts()
		_, err := e.pay(r)
		fe, ok := fault.As(err)
		if !ok || fe.Kind != fault.Invalid || len(fe.Violations) != 1 || fe.Violations[0].Field != "pre_authorization.acquirer_token" {
			t.Errorf("token %q: got %v, want INVALID_REQUEST naming pre_authorization.acquirer_token", token, err)
			continue
		}
		sameCounts(t, token, before, e.counts())
	}
	if found := e.cardNumberRows(); len(found) != 0 {
		t.Errorf("a card number is stored: rows by table %v", found)
	}
}

// TestPayDailyCap prepays several forms of one traveller on one local day, at both
// agencies' refund points: the net prepaid that day may reach 50000.00 but not pass it;
// a returned prepayment frees its share; the next local day starts afresh.
func TestPayDailyCap(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	doc := passport("P9990001", "US")
	big := []line{{1, "200000.00", "0.13"}}  // G 22000.00, F 4000.00, N 18000.00
	edge := []line{{1, "155555.56", "0.13"}} // G 17111.11, F 3111.11, N 14000.00
	small := []line{{1, "1000.00", "0.13"}}  // G 110.00, F 20.00, N 90.00
	hold := func(r *immediate.PayRequest, amount string) {
		r.PreAuth.Authorized = decimal.RequireFromString(amount)
		rehash(r)
	}
	payAt := func(desk, store string, lines []line, amount string) (immediate.Prepayment, error) {
		f := e.issue(store, doc, lines...)
		r := payReq(desk, f.Number, doc)
		hold(&r, amount)
		return e.pay(r)
	}

	a, err := payAt("IFS-RP", "S-CXL-1", big, "18000.00")
	if err != nil || fixed(a.NetRefund) != "18000.00" {
		t.Fatalf("first 18000.00: %v %s", err, fixed(a.NetRefund))
	}
	// The second at the other agency's refund point, in Chongqing: the cap is per
	// traveller, across refund points.
	if _, err := payAt("JFB-RP", "S-JFB-1", big, "18000.00"); err != nil {
		t.Fatalf("second 18000.00: %v", err)
	}
	// 36000.00 + 18000.00 = 54000.00 > 50000.00.
	third := e.issue("S-CXL-1", doc, big...)
	r3 := payReq("IFS-RP", third.Number, doc)
	hold(&r3, "18000.00")
	before := e.counts()
	_, err = e.pay(r3)
	fe := wantFault(t, err, fault.Precondition, "DAILY_CAP_EXCEEDED", "form_number")
	t.Logf("cap refusal: %s", fe.Message)
	sameCounts(t, "over the cap", before, e.counts())

	// 36000.00 + 14000.00 = 50000.00 exactly: allowed.
	d, err := payAt("IFS-RP", "S-CXL-1", edge, "14000.00")
	if err != nil {
		t.Fatalf("up to the cap exactly: %v", err)
	}
	if fixed(d.GrossRefund) != "17111.11" || fixed(d.Fee) != "3111.11" || fixed(d.NetRefund) != "14000.00" {
		t.Errorf("edge form: G %s F %s N %s, want 17111.11 3111.11 14000.00", fixed(d.GrossRefund), fixed(d.Fee), fixed(d.NetRefund))
	}
	// Even 90.00 more is over.
	extra := e.issue("S-CXL-1", doc, small...)
	rx := payReq("IFS-RP", extra.Number, doc)
	hold(&rx, "90.00")
	before = e.counts()
	_, err = e.pay(rx)
	wantFault(t, err, fault.Precondition, "DAILY_CAP_EXCEEDED", "form_number")
	sameCounts(t, "90.00 over the cap", before, e.counts())
	if n := e.count(`SELECT count(*) FROM prepayments`); n != 3 {
		t.Errorf("%d prepayments, want 3", n)
	}
	// A returned prepayment no longer counts: hand back the 14000.00 one, then 90.00 fits.
	if _, err := e.returnPrepayment("IFS-RP", d.FormNumber); err != nil {
		t.Fatalf("return: %v", err)
	}
	if _, err := e.pay(rx); err != nil { // the refused request wrote nothing: its request_id may be sent again
		t.Errorf("after a return, 36090.00: %v", err)
	}

	// 23:59:59 local is still the same day; at 00:00 local (16:00Z) a new day begins and
	// the third form (issued yesterday, still in its window) can be prepaid.
	e.clock.Set(time.Date(2026, 3, 10, 15, 59, 59, 0, time.UTC))
	before = e.counts()
	_, err = e.pay(r3)
	wantFault(t, err, fault.Precondition, "DAILY_CAP_EXCEEDED", "form_number")
	sameCounts(t, "23:59:59 local", before, e.counts())
	e.clock.Set(localMidnight(t, "2026-03-11"))
	p3, err := e.pay(r3)
	if err != nil {
		t.Fatalf("the next local day: %v", err)
	}
	if p3.PaidDate.Format(time.DateOnly) != "2026-03-11" || p3.CommittedDate.Format(time.DateOnly) != "2026-03-27" {
		t.Errorf("next day prepayment: paid %s committed %s, want 2026-03-11 and 2026-03-27 (issue date + 17)",
			p3.PaidDate.Format(time.DateOnly), p3.CommittedDate.Format(time.DateOnly))
	}
	e.wantBalances("cap", map[string]string{
		"agency:AG-CD:prepayments": "36090.00", // 18000 + 90 + 18000 (the 14000 returned)
		"agency:AG-CQ:prepayments": "18000.00",
	})
	if fixed(p3.NetRefund) != "18000.00" {
		t.Errorf("next day N %s, want 18000.00", fixed(p3.NetRefund))
	}
	e.checkInvariants("after the cap")
}

// TestPayRefusesEmbeddedCardNumbers sends the card brands' published test numbers inside
// acquirer tokens and agreement references (bare, prefixed, grouped by spaces or dashes):
// each is refused INVALID_ARGUMENT naming the field, and nothing is written. Near misses
// (Luhn-invalid runs, short runs, dotted groups of four) are paid.
func TestPayRefusesEmbeddedCardNumbers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	doc := passport("P5550002", "DE")
	f := e.issue("S-CXL-1", doc)
	cards := []string{
		"4111111111111111", "4012888888881881", // Visa
		"5555555555554444", "2223003122003222", // Mastercard
		"378282246310005",  // American Express
		"6011111111111117", // Discover
		"3530111333300000", // JCB
		"6200000000000005", // UnionPay
		"36227206271667",   // Diners Club
	}
	before := e.counts()
	for _, n := range cards {
		spaced := n[:4] + " " + n[4:8] + " " + n[8:12] + " " + n[12:]
		dashed := n[:4] + "-" + n[4:8] + "-" + n[8:12] + "-" + n[12:]
		for _, tok := range []string{"tok_" + n, "tok_" + dashed, "tok" + n + "x", "ref:" + spaced} {
			r := payReq("IFS-RP", f.Number, doc)
			r.PreAuth.Token = tok
			rehash(&r)
			_, err := e.pay(r)
			wantFault(t, err, fault.Invalid, "INVALID_REQUEST", "pre_authorization.acquirer_token")
		}
		r := payReq("IFS-RP", f.Number, doc)
		r.Agreement = "AGR " + spaced
		rehash(&r)
		_, err := e.pay(r)
		wantFault(t, err, fault.Invalid, "INVALID_REQUEST", "agreement_reference")
	}
	sameCounts(t, "card numbers", before, e.counts())
	if found := e.cardNumberRows(); len(found) != 0 {
		t.Errorf("a card number is stored: rows by table %v", found)
	}

	// Near misses pass: the Visa test number with its check digit changed, a 12-digit run,
	// and a token with digits in groups of four joined by dots.
	for i, tok := range []string{"tok_4111111111111112", "tok_411111111111", "tok_5555.5555.5555.4444"} {
		g := e.issue("S-CXL-1", doc)
		r := payReq("IFS-RP", g.Number, doc)
		r.PreAuth.Token = tok
		r.Agreement = fmt.Sprintf("AGR-2026-%04d", i)
		rehash(&r)
		if _, err := e.pay(r); err != nil {
			t.Errorf("token %q: %v", tok, err)
		}
	}
}

// TestReturnOnlyAtThePayingRefundPoint: a prepayment is handed back only at the refund
// point that paid it; another refund point of the same agency is refused
// FAILED_PRECONDITION naming both, and writes nothing.
func TestReturnOnlyAtThePayingRefundPoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if _, err := e.pool.Exec(e.ctx, `INSERT INTO desks (code, agency_code, kind, port_code, block_code, name)
		VALUES ('IFS-RP2', 'AG-CD', 'REFUND_POINT', NULL, 'CXL', 'second refund point')`); err != nil {
		t.Fatal(err)
	}
	doc := passport("P5550003", "DE")
	f := e.issue("S-CXL-1", doc)
	e.mustPay(payReq("IFS-RP", f.Number, doc))
	before := e.counts()
	_, err := e.returnPrepayment("IFS-RP2", f.Number)
	fe := wantFault(t, err, fault.Precondition, "WRONG_REFUND_POINT", "form_number")
	if fe.Metadata["paid_at"] != "IFS-RP" || fe.Metadata["desk"] != "IFS-RP2" {
		t.Errorf("metadata %v, want paid_at IFS-RP, desk IFS-RP2", fe.Metadata)
	}
	sameCounts(t, "return at another refund point", before, e.counts())
	if _, err := e.returnPrepayment("IFS-RP", f.Number); err != nil {
		t.Errorf("return at the paying refund point: %v", err)
	}
}
