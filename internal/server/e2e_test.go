package server_test

import (
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	authorityv1 "taxrefund/api/taxrefund/authority/v1"
	deskv1 "taxrefund/api/taxrefund/desk/v1"
	formv1 "taxrefund/api/taxrefund/form/v1"
	storev1 "taxrefund/api/taxrefund/store/v1"
	"taxrefund/internal/refund"
)

var formNumberPattern = regexp.MustCompile(`^TR[0-9A-HJKMNP-TV-Z]{17}$`)

// TestHappyPath runs one form through its life as a store's POS, a customs officer at
// CKG and a cashier at desk CKG-01 see it, with DOMAIN.md §3's example and a partial
// export (1 of the 3 units of the 13% line), checking every amount to the fen.
func TestHappyPath(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := ctxTimeout(t)
	const clear = "E1234-5678"
	h.tr.secret(clear)
	doc := passport(clear)

	// The store issues: A = 1500.00, G = 110.00 + 40.00 = 150.00.
	issued := h.issue(t, storeJFB1, domainExample(clear, "INV-0001"))
	if !formNumberPattern.MatchString(issued.GetNumber()) || !refund.ValidFormNumber(issued.GetNumber()) {
		t.Fatalf("form number %q is not a valid form number", issued.GetNumber())
	}
	want := &formv1.Form{
		Number:         issued.GetNumber(),
		StoreCode:      "S-JFB-1",
		State:          formv1.FormState_FORM_STATE_ISSUED,
		Document:       &formv1.DocumentSummary{Type: formv1.DocumentType_DOCUMENT_TYPE_PASSPORT, MaskedNumber: "*****5678", IssuingCountry: "FR"},
		Nationality:    "FR",
		PurchaseDate:   "2025-06-10",
		IssuedAt:       timestamppb.New(t0),
		Invoices:       []*formv1.Invoice{{Number: "INV-0001-A", Date: "2025-06-10"}, {Number: "INV-0001-B", Date: "2025-06-09"}},
		EligibleAmount: "1500.00",
		GrossRefund:    "150.00",
		ExportDeadline: "2025-09-08",
		Lines: []*formv1.Line{
			{LineNo: 1, Description: "Silk scarf", Category: formv1.GoodsCategory_GOODS_CATEGORY_GENERAL, VatRate: "0.13",
				Quantity: 3, Amount: "1000.00", InvoiceNumber: "INV-0001-A", RefundRate: "0.11", Refund: "110.00"},
			{LineNo: 2, Description: "Tuocha tea", Category: formv1.GoodsCategory_GOODS_CATEGORY_GENERAL, VatRate: "0.09",
				Quantity: 1, Amount: "500.00", InvoiceNumber: "INV-0001-B", RefundRate: "0.08", Refund: "40.00"},
		},
	}
	equalProto(t, "IssueForm", issued, want)

	got, err := h.store(t, storeJFB1).GetForm(ctx, &storev1.GetFormRequest{FormNumber: issued.GetNumber()})
	if err != nil {
		t.Fatalf("GetForm: %v", err)
	}
	equalProto(t, "GetForm", got.GetForm(), want)

	list, err := h.store(t, storeJFB1).ListForms(ctx, &storev1.ListFormsRequest{})
	if err != nil {
		t.Fatalf("ListForms: %v", err)
	}
	if len(list.GetForms()) != 1 || list.GetNextPageToken() != "" {
		t.Fatalf("ListForms: %d forms, token %q; want 1 form, no token", len(list.GetForms()), list.GetNextPageToken())
	}
	equalProto(t, "ListForms[0]", list.GetForms()[0], want)

	// Customs finds it by the document, typed differently (lower case, spaces).
	found, err := h.desk(t, customsCKG).FindForms(ctx, &deskv1.FindFormsRequest{
		Query: &deskv1.FindFormsRequest_Document{Document: passport("e 1234 5678")}})
	if err != nil {
		t.Fatalf("FindForms by document: %v", err)
	}
	if len(found.GetForms()) != 1 {
		t.Fatalf("FindForms by document: %d forms, want 1", len(found.GetForms()))
	}
	equalProto(t, "FindForms by document", found.GetForms()[0], want)

	// Two days later, 09:30 local, customs sees 1 of the 3 scarves and the tea leave:
	// A' = 1000/3 + 500 = 833.33, G' = round(36.666… + 40) = 76.67.
	verifiedAt := time.Date(2025, 6, 12, 1, 30, 0, 0, time.UTC)
	h.clock.Set(verifiedAt)
	v, err := h.desk(t, customsCKG).VerifyExport(ctx, &deskv1.VerifyExportRequest{
		RequestId: uuid.NewString(), FormNumber: issued.GetNumber(), PresentedDocument: doc,
		Lines: []*deskv1.LineConfirmation{{LineNo: 1, ConfirmedQuantity: 1}, {LineNo: 2, ConfirmedQuantity: 1}},
	})
	if err != nil {
		t.Fatalf("VerifyExport: %v", err)
	}
	wantVerified := proto.Clone(want).(*formv1.Form)
	wantVerified.State = formv1.FormState_FORM_STATE_VERIFIED
	wantVerified.Verification = &formv1.Verification{Port: "CKG", Officer: "officer-1", VerifiedAt: timestamppb.New(verifiedAt),
		ConfirmedEligibleAmount: "833.33", ConfirmedGrossRefund: "76.67"}
	wantVerified.Lines[0].ConfirmedQuantity, wantVerified.Lines[0].Refund = proto.Int32(1), "36.67"
	wantVerified.Lines[1].ConfirmedQuantity, wantVerified.Lines[1].Refund = proto.Int32(1), "40.00"
	equalProto(t, "VerifyExport", v.GetForm(), wantVerified)

	// The cashier scans the form.
	byNumber, err := h.desk(t, cashier1).FindForms(ctx, &deskv1.FindFormsRequest{
		Query: &deskv1.FindFormsRequest_FormNumber{FormNumber: issued.GetNumber()}})
	if err != nil {
		t.Fatalf("FindForms by number: %v", err)
	}
	if len(byNumber.GetForms()) != 1 {
		t.Fatalf("FindForms by number: %d forms, want 1", len(byNumber.GetForms()))
	}
	equalProto(t, "FindForms by number", byNumber.GetForms()[0], wantVerified)

	// Cash: F' = round(833.333… × 0.02) = 16.67, N' = 76.67 − 16.67 = 60.00.
	paidAt := verifiedAt.Add(25 * time.Minute)
	h.clock.Set(paidAt)
	settled, err := h.desk(t, cashier1).SettleRefund(ctx, settleReq(doc, "RCPT-0001", issued.GetNumber()))
	if err != nil {
		t.Fatalf("SettleRefund: %v", err)
	}
	if _, err := uuid.Parse(settled.GetPayout().GetPayoutId()); err != nil {
		t.Fatalf("payout id %q: %v", settled.GetPayout().GetPayoutId(), err)
	}
	wantPayout := &deskv1.Payout{
		PayoutId: settled.GetPayout().GetPayoutId(), DeskCode: "CKG-01", AgencyCode: "AG-CQ", Port: "CKG", Cashier: "cashier-1",
		Method: deskv1.PaymentMethod_PAYMENT_METHOD_CASH, AccountReference: "", ReceiptReference: "RCPT-0001",
		PaidAt:   timestamppb.New(paidAt),
		Document: &formv1.DocumentSummary{Type: formv1.DocumentType_DOCUMENT_TYPE_PASSPORT, MaskedNumber: "*****5678", IssuingCountry: "FR"},
		Forms: []*deskv1.PayoutForm{{FormNumber: issued.GetNumber(), EligibleAmount: "833.33", GrossRefund: "76.67",
			Fee: "16.67", NetRefund: "60.00"}},
		FeeRate: "0.02", GrossRefund: "76.67", Fee: "16.67", NetRefund: "60.00",
	}
	equalProto(t, "SettleRefund", settled.GetPayout(), wantPayout)

	reprint, err := h.desk(t, cashier1).GetPayout(ctx, &deskv1.GetPayoutRequest{PayoutId: settled.GetPayout().GetPayoutId()})
	if err != nil {
		t.Fatalf("GetPayout: %v", err)
	}
	equalProto(t, "GetPayout (reprint)", reprint.GetPayout(), settled.GetPayout())

	after, err := h.store(t, storeJFB1).GetForm(ctx, &storev1.GetFormRequest{FormNumber: issued.GetNumber()})
	if err != nil {
		t.Fatalf("GetForm after payout: %v", err)
	}
	wantRefunded := proto.Clone(wantVerified).(*formv1.Form)
	wantRefunded.State = formv1.FormState_FORM_STATE_REFUNDED
	wantRefunded.PayoutId = settled.GetPayout().GetPayoutId()
	equalProto(t, "GetForm after payout", after.GetForm(), wantRefunded)

	// The ledger (DOMAIN.md §8), posted balances as debit minus credit.
	for code, bal := range map[string]string{
		"authority:refund_expense":       "76.67",
		"travellers:refund_payable":      "0",
		"authority:agency_payable:AG-CQ": "-76.67",
		"agency:AG-CQ:receivable":        "76.67",
		"agency:AG-CQ:cash:CKG-01":       "-60.00",
		"agency:AG-CQ:fee_income":        "-16.67",
	} {
		var got decimal.Decimal
		if err := h.pool.QueryRow(ctx, `SELECT coalesce(sum(b.posted_dr - b.posted_cr), 0) FROM accounts a
			LEFT JOIN account_balances b ON b.account_id = a.id WHERE a.code = $1`, code).Scan(&got); err != nil {
			t.Fatalf("balance of %s: %v", code, err)
		}
		if !got.Equal(decimal.RequireFromString(bal)) {
			t.Errorf("posted balance of %s is %s, want %s", code, got, bal)
		}
	}

	inv, err := h.authority(t, sat).CheckInvariants(ctx, &authorityv1.CheckInvariantsRequest{})
	if err != nil {
		t.Fatalf("CheckInvariants: %v", err)
	}
	if !inv.GetOk() || len(inv.GetViolations()) != 0 {
		t.Errorf("CheckInvariants: ok=%v, violations %v", inv.GetOk(), inv.GetViolations())
	}
	exp, err := h.authority(t, sat).RunExpiry(ctx, &authorityv1.RunExpiryRequest{})
	if err != nil {
		t.Fatalf("RunExpiry: %v", err)
	}
	if exp.GetExpired() != 0 {
		t.Errorf("RunExpiry expired %d forms, want 0", exp.GetExpired())
	}
}

// TestIssueFormRefusesBadInput sends requests that differ from a valid one in one point
// and checks the code, the reason and the field named, and that nothing was written.
func TestIssueFormRefusesBadInput(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := ctxTimeout(t)
	const clear = "P8765-4321"
	h.tr.secret(clear)
	huge := strings.Repeat("x", 10<<20)

	invalid := func(fields ...string) want { return want{codes.InvalidArgument, "INVALID_REQUEST", fields} }
	precondition := func(reason string, fields ...string) want { return want{codes.FailedPrecondition, reason, fields} }
	amount := func(a string) func(*storev1.IssueFormRequest) {
		return func(r *storev1.IssueFormRequest) { r.Lines[0].Amount = a }
	}
	cases := []struct {
		name   string
		as     string // certificate; storeJFB1 when empty
		mutate func(*storev1.IssueFormRequest)
		want   want
	}{
		{"missing request_id", "", func(r *storev1.IssueFormRequest) { r.RequestId = "" }, invalid("request_id")},
		{"malformed request_id", "", func(r *storev1.IssueFormRequest) { r.RequestId = "order-17" }, invalid("request_id")},
		{"request_id without hyphens", "", func(r *storev1.IssueFormRequest) { r.RequestId = strings.ReplaceAll(r.RequestId, "-", "") }, invalid("request_id")},
		{"nil request_id", "", func(r *storev1.IssueFormRequest) { r.RequestId = uuid.Nil.String() }, invalid("request_id")},
		{"amount -1", "", amount("-1"), invalid("lines[0].amount")},
		{"amount 0", "", amount("0"), invalid("lines[0].amount")},
		{"amount 1e9", "", amount("1e9"), invalid("lines[0].amount")},
		{"amount 1E1000000000", "", amount("1E1000000000"), invalid("lines[0].amount")},
		{"amount NaN", "", amount("NaN"), invalid("lines[0].amount")},
		{"amount 12.345", "", amount("12.345"), invalid("lines[0].amount")},
		{"10 MB description", "", func(r *storev1.IssueFormRequest) { r.Lines[0].Description = huge }, invalid("lines[0].description")},
		{"no lines", "", func(r *storev1.IssueFormRequest) { r.Lines = nil }, invalid("lines")},
		{"vat_rate 0.77", "", func(r *storev1.IssueFormRequest) { r.Lines[0].VatRate = "0.77" },
			precondition("VAT_RATE_NOT_REFUNDABLE", "lines[0].vat_rate")},
		{"vat_rate 13%", "", func(r *storev1.IssueFormRequest) { r.Lines[0].VatRate = "13%" }, invalid("lines[0].vat_rate")},
		{"precious metal", "", func(r *storev1.IssueFormRequest) {
			r.Lines[1].Category = formv1.GoodsCategory_GOODS_CATEGORY_PRECIOUS_METAL
		}, precondition("GOODS_NOT_REFUNDABLE", "lines[1].category")},
		{"document type unspecified", "", func(r *storev1.IssueFormRequest) {
			r.Traveller.Document.Type = formv1.DocumentType_DOCUMENT_TYPE_UNSPECIFIED
		}, invalid("traveller.document.type")},
		{"Chinese passport", "", func(r *storev1.IssueFormRequest) {
			r.Traveller.Document.IssuingCountry, r.Traveller.Nationality = "CN", "CN"
		}, precondition("DOCUMENT_NOT_ACCEPTED", "traveller.document.issuing_country")},
		{"document expired before the purchase", "", func(r *storev1.IssueFormRequest) { r.Traveller.DocumentExpiryDate = "2025-06-09" },
			precondition("DOCUMENT_EXPIRED", "traveller.document_expiry_date")},
		{"invoice dated before the entry", "", func(r *storev1.IssueFormRequest) { r.Invoices[1].Date = "2025-05-31" },
			precondition("INVOICE_BEFORE_ENTRY", "invoices[1].date")},
		{"purchase 184 days after entry", "", func(r *storev1.IssueFormRequest) { r.Traveller.LastEntryDate = "2024-12-08" },
			precondition("STAY_LIMIT_EXCEEDED", "traveller.last_entry_date")},
		{"total 199.99", "", func(r *storev1.IssueFormRequest) {
			r.Invoices = r.Invoices[:1]
			r.Lines = r.Lines[:1]
			r.Lines[0].Amount = "199.99"
		}, precondition("BELOW_MINIMUM", "lines")},
		{"line on an invoice not listed", "", func(r *storev1.IssueFormRequest) { r.Lines[0].InvoiceNumber = "INV-NOT-LISTED" },
			// The listed invoice is then on no line, which is named too.
			invalid("lines[0].invoice_number", "invoices[0]")},
		{"suspended store", storeSusp, nil, want{codes.FailedPrecondition, "STORE_NOT_ACTIVE", nil}},
		{"exited store", storeExit, nil, want{codes.PermissionDenied, "", nil}},
		{"unknown store", storeNone, nil, want{codes.PermissionDenied, "", nil}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := domainExample(clear, "INV-BAD-"+string(rune('A'+i)))
			if c.mutate != nil {
				c.mutate(req)
			}
			as := c.as
			if as == "" {
				as = storeJFB1
			}
			before := h.counts(t)
			_, err := h.store(t, as).IssueForm(ctx, req)
			st := checkStatus(t, err, c.want)
			if len(st.Message()) > 1000 {
				t.Errorf("status message is %d bytes: it echoes the input", len(st.Message()))
			}
			h.assertNothingWritten(t, before)
		})
	}

	// The unmutated request is valid: every refusal above came from its one change.
	h.issue(t, storeJFB1, domainExample(clear, "INV-GOOD"))
}

// TestInternalErrorsAreGeneric breaks the database under the running service and checks
// that the client gets a generic message, with no SQL, table name or SQLSTATE, while the
// server logs the cause once; and that a retry with the same request_id then succeeds.
func TestInternalErrorsAreGeneric(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := ctxTimeout(t)
	leaks := []string{"audit_events", "desks", "relation", "SQLSTATE", "ERROR:", "pq:", "42P01", "INSERT", "SELECT", "does not exist"}
	noLeak := func(t *testing.T, msg string) {
		t.Helper()
		for _, l := range leaks {
			if strings.Contains(msg, l) {
				t.Errorf("status message %q leaks %q", msg, l)
			}
		}
	}
	exec := func(sql string) {
		t.Helper()
		if _, err := h.pool.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}

	t.Run("handler", func(t *testing.T) {
		before := h.counts(t)
		req := domainExample(h.tr.secret("X99887766"), "INV-INT")
		exec(`ALTER TABLE audit_events RENAME TO audit_events_gone`)
		_, err := h.store(t, storeJFB1).IssueForm(ctx, req)
		exec(`ALTER TABLE audit_events_gone RENAME TO audit_events`)
		st := checkStatus(t, err, want{codes.Internal, "", nil})
		if st.Message() != "internal error; retry with the same request_id" {
			t.Errorf("message %q, want the generic one", st.Message())
		}
		noLeak(t, st.Message())
		h.assertNothingWritten(t, before)
		if n := strings.Count(h.logs.String(), "StoreService/IssueForm"); n != 1 {
			t.Errorf("the server logged the failed IssueForm %d times, want once:\n%s", n, h.logs.String())
		}
		if !strings.Contains(h.logs.String(), "42P01") {
			t.Errorf("the server log does not name the cause (42P01):\n%s", h.logs.String())
		}
		// Nothing was recorded under the request_id: the retry the message asks for works.
		if _, err := h.store(t, storeJFB1).IssueForm(ctx, req); err != nil {
			t.Fatalf("retry after the internal error: %v", err)
		}
	})

	t.Run("authorization check", func(t *testing.T) {
		before := h.counts(t)
		exec(`ALTER TABLE desks RENAME TO desks_gone`)
		_, err := h.desk(t, cashier1).FindForms(ctx, &deskv1.FindFormsRequest{
			Query: &deskv1.FindFormsRequest_FormNumber{FormNumber: refund.NewFormNumber()}})
		exec(`ALTER TABLE desks_gone RENAME TO desks`)
		st := checkStatus(t, err, want{codes.Internal, "", nil})
		noLeak(t, st.Message())
		h.assertNothingWritten(t, before)
	})
}

// TestDocumentNumberNeverReturned drives the calls that handle a document number, the
// refusals included, and checks that no reply or error (nor the server log) carries the
// clear number. The harness checks the same after every test of this file.
func TestDocumentNumberNeverReturned(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := ctxTimeout(t)
	const clear, other = "G2468-1357", "H1357-2468"
	h.tr.secret(clear)
	h.tr.secret(other)
	doc := passport(clear)

	form := h.issue(t, storeJFB1, domainExample(clear, "INV-PII"))
	if form.GetDocument().GetMaskedNumber() != "*****1357" {
		t.Errorf("masked number %q, want *****1357", form.GetDocument().GetMaskedNumber())
	}
	// The same invoice again: INVOICE_ALREADY_CLAIMED names the invoice, not the traveller.
	_, err := h.store(t, storeJFB1).IssueForm(ctx, domainExample(clear, "INV-PII"))
	checkStatus(t, err, want{codes.FailedPrecondition, "INVOICE_ALREADY_CLAIMED", []string{"invoices[0].number", "invoices[1].number"}})
	// A malformed number (too long) is refused without being quoted.
	long := h.tr.secret("Q12345678901234567890123")
	bad := domainExample(long, "INV-PII-2")
	_, err = h.store(t, storeJFB1).IssueForm(ctx, bad)
	checkStatus(t, err, want{codes.InvalidArgument, "INVALID_REQUEST", []string{"traveller.document.number"}})

	if _, err := h.desk(t, customsCKG).FindForms(ctx, &deskv1.FindFormsRequest{
		Query: &deskv1.FindFormsRequest_Document{Document: doc}}); err != nil {
		t.Fatalf("FindForms: %v", err)
	}
	// Another traveller's document at customs and at the desk.
	_, err = h.desk(t, customsCKG).VerifyExport(ctx, &deskv1.VerifyExportRequest{
		RequestId: uuid.NewString(), FormNumber: form.GetNumber(), PresentedDocument: passport(other),
		Lines: []*deskv1.LineConfirmation{{LineNo: 1, ConfirmedQuantity: 3}, {LineNo: 2, ConfirmedQuantity: 1}},
	})
	checkStatus(t, err, want{codes.FailedPrecondition, "DOCUMENT_MISMATCH", []string{"presented_document"}})
	h.verifyAll(t, customsCKG, form, doc)
	_, err = h.desk(t, cashier1).SettleRefund(ctx, settleReq(passport(other), "RCPT-PII", form.GetNumber()))
	checkStatus(t, err, want{codes.FailedPrecondition, "DOCUMENT_MISMATCH", []string{"presented_document"}})
	paid, err := h.desk(t, cashier1).SettleRefund(ctx, settleReq(doc, "RCPT-PII", form.GetNumber()))
	if err != nil {
		t.Fatalf("SettleRefund: %v", err)
	}
	if paid.GetPayout().GetDocument().GetMaskedNumber() != "*****1357" {
		t.Errorf("payout masked number %q, want *****1357", paid.GetPayout().GetDocument().GetMaskedNumber())
	}

	// The stored audit trail and idempotency records hold no clear number either.
	var hits int
	if err := h.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM audit_events WHERE detail::text LIKE '%' || $1 || '%') +
		(SELECT count(*) FROM idempotency_keys WHERE position(convert_to($1, 'UTF8') IN response) > 0)`,
		"G24681357").Scan(&hits); err != nil {
		t.Fatal(err)
	}
	if hits != 0 {
		t.Errorf("%d audit or idempotency rows carry the clear document number", hits)
	}
	h.tr.checkNoSecrets(t, h.logs.String())
	if n := h.tr.len(); n < 8 {
		t.Fatalf("transcript holds %d replies: the interceptor is not recording", n)
	}
}

// TestRolesAreEnforced calls each service as a party that may not, with requests that
// would otherwise succeed and write, and checks PERMISSION_DENIED and that nothing moved.
func TestRolesAreEnforced(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := ctxTimeout(t)
	doc := passport(h.tr.secret("R5555-1234"))

	// An overdue form: issued on 2025-03-01, its window closed on 2025-05-30.
	h.clock.Set(time.Date(2025, 3, 1, 2, 0, 0, 0, time.UTC))
	old := domainExample("R5555-1234", "INV-OLD")
	old.Traveller.LastEntryDate = "2025-02-20"
	old.Invoices[0].Date, old.Invoices[1].Date = "2025-03-01", "2025-02-28"
	overdue := h.issue(t, storeJFB1, old)
	h.clock.Set(t0)
	issued := h.issue(t, storeJFB1, domainExample("R5555-1234", "INV-ROLE-1"))
	verified := h.verifyAll(t, customsCKG, h.issue(t, storeJFB1, domainExample("R5555-1234", "INV-ROLE-2")), doc)

	verifyReq := func() *deskv1.VerifyExportRequest {
		return &deskv1.VerifyExportRequest{RequestId: uuid.NewString(), FormNumber: issued.GetNumber(), PresentedDocument: doc,
			Lines: []*deskv1.LineConfirmation{{LineNo: 1, ConfirmedQuantity: 3}, {LineNo: 2, ConfirmedQuantity: 1}}}
	}
	calls := []struct {
		name string
		call func() error
	}{
		{"store calls VerifyExport", func() error { _, err := h.desk(t, storeJFB1).VerifyExport(ctx, verifyReq()); return err }},
		{"cashier calls VerifyExport", func() error { _, err := h.desk(t, cashier1).VerifyExport(ctx, verifyReq()); return err }},
		{"authority calls VerifyExport", func() error { _, err := h.desk(t, sat).VerifyExport(ctx, verifyReq()); return err }},
		{"customs calls SettleRefund", func() error {
			_, err := h.desk(t, customsCKG).SettleRefund(ctx, settleReq(doc, "RCPT-R", verified.GetNumber()))
			return err
		}},
		{"store calls SettleRefund", func() error {
			_, err := h.desk(t, storeJFB1).SettleRefund(ctx, settleReq(doc, "RCPT-R", verified.GetNumber()))
			return err
		}},
		{"store calls RunExpiry", func() error {
			_, err := h.authority(t, storeJFB1).RunExpiry(ctx, &authorityv1.RunExpiryRequest{})
			return err
		}},
		{"cashier calls RunExpiry", func() error {
			_, err := h.authority(t, cashier1).RunExpiry(ctx, &authorityv1.RunExpiryRequest{})
			return err
		}},
		{"store calls CheckInvariants", func() error {
			_, err := h.authority(t, storeJFB1).CheckInvariants(ctx, &authorityv1.CheckInvariantsRequest{})
			return err
		}},
		{"customs calls IssueForm", func() error {
			_, err := h.store(t, customsCKG).IssueForm(ctx, domainExample("R5555-1234", "INV-ROLE-3"))
			return err
		}},
		{"cashier calls VoidForm", func() error {
			_, err := h.store(t, cashier1).VoidForm(ctx, &storev1.VoidFormRequest{RequestId: uuid.NewString(), FormNumber: issued.GetNumber(), Reason: "x"})
			return err
		}},
		{"agency back office calls SettleRefund", func() error {
			_, err := h.desk(t, agencyCQ).SettleRefund(ctx, settleReq(doc, "RCPT-R", verified.GetNumber()))
			return err
		}},
		{"store calls SuspendStore", func() error {
			_, err := h.authority(t, storeJFB1).SuspendStore(ctx, &authorityv1.SuspendStoreRequest{RequestId: uuid.NewString(), Code: "S-JFB-2", Reason: "x"})
			return err
		}},
		{"cashier calls CloseMonth", func() error {
			_, err := h.authority(t, cashier1).CloseMonth(ctx, &authorityv1.CloseMonthRequest{RequestId: uuid.NewString(), Month: "2025-05"})
			return err
		}},
		{"store calls GetPayout", func() error {
			_, err := h.desk(t, storeJFB1).GetPayout(ctx, &deskv1.GetPayoutRequest{PayoutId: uuid.NewString()})
			return err
		}},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			before := h.counts(t)
			st := checkStatus(t, c.call(), want{codes.PermissionDenied, "", nil})
			if !strings.Contains(st.Message(), "may not call") {
				t.Errorf("message %q does not say the role may not call the method", st.Message())
			}
			h.assertNothingWritten(t, before)
		})
	}
	for number, state := range map[string]string{overdue.GetNumber(): "ISSUED", issued.GetNumber(): "ISSUED", verified.GetNumber(): "VERIFIED"} {
		if got := h.formState(t, number); got != state {
			t.Errorf("form %s is %s after the refused calls, want %s", number, got, state)
		}
	}
	// The refused calls would have had an effect: the authority's RunExpiry expires the
	// overdue form.
	exp, err := h.authority(t, sat).RunExpiry(ctx, &authorityv1.RunExpiryRequest{})
	if err != nil {
		t.Fatalf("RunExpiry: %v", err)
	}
	if exp.GetExpired() != 1 || h.formState(t, overdue.GetNumber()) != "EXPIRED" {
		t.Errorf("RunExpiry expired %d forms (overdue form %s), want 1 (EXPIRED)", exp.GetExpired(), h.formState(t, overdue.GetNumber()))
	}
}

// TestStoreSeesOnlyItsOwnForms: another store's form is NOT_FOUND, exactly like a form
// that does not exist, for reading, listing and voiding.
func TestStoreSeesOnlyItsOwnForms(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := ctxTimeout(t)
	form := h.issue(t, storeJFB1, domainExample(h.tr.secret("K1111-2222"), "INV-OWN"))

	_, err := h.store(t, storeJFB2).GetForm(ctx, &storev1.GetFormRequest{FormNumber: form.GetNumber()})
	theirs := checkStatus(t, err, want{codes.NotFound, "FORM_NOT_FOUND", []string{"form_number"}})
	ghost := refund.NewFormNumber()
	_, err = h.store(t, storeJFB2).GetForm(ctx, &storev1.GetFormRequest{FormNumber: ghost})
	none := checkStatus(t, err, want{codes.NotFound, "FORM_NOT_FOUND", []string{"form_number"}})
	if strings.ReplaceAll(theirs.Message(), form.GetNumber(), "N") != strings.ReplaceAll(none.Message(), ghost, "N") {
		t.Errorf("another store's form (%q) and no form (%q) read differently", theirs.Message(), none.Message())
	}

	list, err := h.store(t, storeJFB2).ListForms(ctx, &storev1.ListFormsRequest{})
	if err != nil {
		t.Fatalf("ListForms: %v", err)
	}
	if len(list.GetForms()) != 0 {
		t.Errorf("S-JFB-2 lists %d forms, want 0", len(list.GetForms()))
	}

	before := h.counts(t)
	_, err = h.store(t, storeJFB2).VoidForm(ctx, &storev1.VoidFormRequest{RequestId: uuid.NewString(), FormNumber: form.GetNumber(), Reason: "goods returned"})
	checkStatus(t, err, want{codes.NotFound, "FORM_NOT_FOUND", []string{"form_number"}})
	h.assertNothingWritten(t, before)
	if got := h.formState(t, form.GetNumber()); got != "ISSUED" {
		t.Errorf("form is %s after another store's void, want ISSUED", got)
	}

	// The owner still reads it.
	if _, err := h.store(t, storeJFB1).GetForm(ctx, &storev1.GetFormRequest{FormNumber: form.GetNumber()}); err != nil {
		t.Errorf("owner GetForm: %v", err)
	}
}

// TestCustomsPortComesFromCertificate: an officer at TFU verifies, and the form, the
// response and the audit trail record TFU and the officer of the certificate.
func TestCustomsPortComesFromCertificate(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := ctxTimeout(t)
	doc := passport(h.tr.secret("T7777-8888"))
	form := h.issue(t, storeJFB1, domainExample("T7777-8888", "INV-TFU"))
	v := h.verifyAll(t, customsTFU, form, doc)
	if v.GetVerification().GetPort() != "TFU" || v.GetVerification().GetOfficer() != "officer-2" {
		t.Errorf("verification %v, want port TFU, officer officer-2", v.GetVerification())
	}
	var port, officer, auditPort, actor string
	if err := h.pool.QueryRow(ctx, `SELECT verified_port, verified_officer FROM forms WHERE number = $1`, form.GetNumber()).Scan(&port, &officer); err != nil {
		t.Fatal(err)
	}
	if err := h.pool.QueryRow(ctx, `SELECT detail->>'port', actor FROM audit_events WHERE object = $1 AND action = 'EXPORT_CONFIRMED'`,
		form.GetNumber()).Scan(&auditPort, &actor); err != nil {
		t.Fatal(err)
	}
	if port != "TFU" || officer != "officer-2" || auditPort != "TFU" || actor != "taxrefund://customs/TFU/officer-2" {
		t.Errorf("stored port %s, officer %s, audit port %s, actor %s; want TFU, officer-2, TFU, taxrefund://customs/TFU/officer-2",
			port, officer, auditPort, actor)
	}
}

// TestIssueFormIdempotentOverTheWire: retries of one request_id (sequential, later in the
// day, and concurrent) get the first response and write nothing; the same id with other
// content is refused; another store's use of the same id is its own request.
func TestIssueFormIdempotentOverTheWire(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := ctxTimeout(t)
	req := domainExample(h.tr.secret("M3333-4444"), "INV-IDEM")
	first := h.issue(t, storeJFB1, req)
	before := h.counts(t)

	h.clock.Set(t0.Add(3 * time.Hour))
	again, err := h.store(t, storeJFB1).IssueForm(ctx, proto.Clone(req).(*storev1.IssueFormRequest))
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	equalProto(t, "retry", again.GetForm(), first)

	const racers = 8
	var wg sync.WaitGroup
	start := make(chan struct{})
	replies := make([]*storev1.IssueFormResponse, racers)
	errs := make([]error, racers)
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			replies[i], errs[i] = h.store(t, storeJFB1).IssueForm(ctx, proto.Clone(req).(*storev1.IssueFormRequest))
		}()
	}
	close(start)
	wg.Wait()
	same := 0
	for i := range racers {
		if errs[i] != nil {
			t.Errorf("concurrent retry %d: %v", i, errs[i])
			continue
		}
		if proto.Equal(replies[i].GetForm(), first) {
			same++
		}
	}
	t.Logf("concurrent retries of one request_id: %d attempts, %d got the first response", racers, same)
	if same != racers {
		t.Errorf("%d of %d concurrent retries got the first response", same, racers)
	}
	h.assertNothingWritten(t, before)

	changed := proto.Clone(req).(*storev1.IssueFormRequest)
	changed.Lines[0].Amount = "1000.01"
	_, err = h.store(t, storeJFB1).IssueForm(ctx, changed)
	checkStatus(t, err, want{codes.FailedPrecondition, "REQUEST_ID_REUSED", []string{"request_id"}})
	h.assertNothingWritten(t, before)

	// The key is the caller's: S-JFB-2 reusing the id issues its own form.
	theirs, err := h.store(t, storeJFB2).IssueForm(ctx, proto.Clone(req).(*storev1.IssueFormRequest))
	if err != nil {
		t.Fatalf("S-JFB-2 with the same request_id: %v", err)
	}
	if theirs.GetForm().GetNumber() == first.GetNumber() || theirs.GetForm().GetStoreCode() != "S-JFB-2" {
		t.Errorf("S-JFB-2 got form %s of %s, want its own", theirs.GetForm().GetNumber(), theirs.GetForm().GetStoreCode())
	}
}

// TestReadBackEqualsResponseAtClockPrecision runs the happy path with a clock that has
// nanoseconds, as time.Now does in production: what GetForm and GetPayout read back
// must equal what IssueForm and SettleRefund answered (a receipt reprint is the receipt).
// It fails today: the answers carry the Go clock's nanoseconds (issued_at, paid_at), the
// database keeps microseconds, so the read-back differs below the microsecond.
func TestReadBackEqualsResponseAtClockPrecision(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := ctxTimeout(t)
	h.clock.Set(t0.Add(123456789 * time.Nanosecond))
	doc := passport(h.tr.secret("N4242-4242"))
	form := h.issue(t, storeJFB1, domainExample("N4242-4242", "INV-NS"))
	got, err := h.store(t, storeJFB1).GetForm(ctx, &storev1.GetFormRequest{FormNumber: form.GetNumber()})
	if err != nil {
		t.Fatalf("GetForm: %v", err)
	}
	equalProto(t, "GetForm vs IssueForm", got.GetForm(), form)

	h.clock.Set(t0.Add(time.Hour + 987654321*time.Nanosecond))
	h.verifyAll(t, customsCKG, form, doc)
	paid, err := h.desk(t, cashier1).SettleRefund(ctx, settleReq(doc, "RCPT-NS", form.GetNumber()))
	if err != nil {
		t.Fatalf("SettleRefund: %v", err)
	}
	reprint, err := h.desk(t, cashier1).GetPayout(ctx, &deskv1.GetPayoutRequest{PayoutId: paid.GetPayout().GetPayoutId()})
	if err != nil {
		t.Fatalf("GetPayout: %v", err)
	}
	equalProto(t, "GetPayout vs SettleRefund", reprint.GetPayout(), paid.GetPayout())
}
