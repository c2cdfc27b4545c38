package console_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	agencyv1 "taxrefund/api/taxrefund/agency/v1"
	authorityv1 "taxrefund/api/taxrefund/authority/v1"
	deskv1 "taxrefund/api/taxrefund/desk/v1"
	formv1 "taxrefund/api/taxrefund/form/v1"
	settlementv1 "taxrefund/api/taxrefund/settlement/v1"
)

// TestCustomsConfirmsAndCashierPays drives the console in Chromium through a traveller's
// departure: the customs officer at CKG finds the form by the passport, confirms one of
// the two scarves and the tea (partial export), the cashier at CKG pays in cash and prints
// the receipt, the official sees the payout in June, and once the agency has declared
// June, approves the declaration. Each outcome is checked in the database and through the
// gRPC API.
func TestCustomsConfirmsAndCashierPays(t *testing.T) {
	h := newHarness(t)
	form := h.issue(t, "E1234567", "INV-1")
	number := form.GetNumber()

	// The customs officer.
	tab := browser(t)
	run(t, tab, "sign in as customs", chromedp.Navigate(h.link(t, customsCKG)), chromedp.WaitVisible(chromedp.CSS("#form_number")))
	screenshot(t, tab, "customs-search")
	run(t, tab, "find by document",
		chromedp.SendKeys(chromedp.CSS("#doc_number"), "E1234567"),
		chromedp.SendKeys(chromedp.CSS("#doc_country"), "FR"),
		chromedp.Click(chromedp.CSS("#find")),
		chromedp.WaitVisible(chromedp.CSS("#form-"+number)))
	if got := text(t, tab, "#form-"+number+" .state"); got != "Issued" {
		t.Fatalf("state shown %q, want Issued", got)
	}
	// 1,000.00 of scarves in 2 units: only one is presented.
	run(t, tab, "confirm one scarf and the tea",
		chromedp.SetValue(chromedp.CSS(`#form-`+number+` input[name="q1"]`), "1"),
		chromedp.Click(chromedp.CSS("#form-"+number+" button.confirm")),
		chromedp.WaitVisible(chromedp.CSS("#notice")))
	if got := text(t, tab, "#notice"); got != "Export confirmed." {
		t.Fatalf("notice %q", got)
	}
	if got := text(t, tab, "#form-"+number+" .state"); got != "Verified" {
		t.Fatalf("state after confirming %q, want Verified", got)
	}
	// G' = 500.00 × 11% + 500.00 × 8% = 95.00, shown with two decimals.
	if got := text(t, tab, "#form-"+number+" dl.facts"); !strings.Contains(got, "95.00") || !strings.Contains(got, "1,000.00") {
		t.Fatalf("confirmed amounts not shown (want A' 1,000.00, G' 95.00): %q", got)
	}
	screenshot(t, tab, "customs-confirmed")
	var state, port string
	var q1, q2 int32
	var gross decimal.Decimal
	if err := h.pool.QueryRow(ctx(t), `SELECT f.state, f.verified_port, f.confirmed_gross,
			(SELECT confirmed_qty FROM form_lines WHERE form_id = f.id AND line_no = 1),
			(SELECT confirmed_qty FROM form_lines WHERE form_id = f.id AND line_no = 2)
		FROM forms f WHERE number = $1`, number).Scan(&state, &port, &gross, &q1, &q2); err != nil {
		t.Fatal(err)
	}
	if state != "VERIFIED" || port != "CKG" || !gross.Equal(decimal.RequireFromString("95.00")) || q1 != 1 || q2 != 1 {
		t.Fatalf("database: state %s port %s G' %s quantities %d/%d; want VERIFIED CKG 95.00 1/1", state, port, gross, q1, q2)
	}
	found, err := h.desk(t, customsCKG).FindForms(ctx(t), &deskv1.FindFormsRequest{Query: &deskv1.FindFormsRequest_FormNumber{FormNumber: number}})
	if err != nil {
		t.Fatal(err)
	}
	if f := found.GetForms()[0]; f.GetState() != formv1.FormState_FORM_STATE_VERIFIED || f.GetVerification().GetConfirmedGrossRefund() != "95.00" || f.GetVerification().GetOfficer() != "officer-1" {
		t.Fatalf("API: %v", f)
	}

	// The cashier at the same port.
	tab = browser(t)
	run(t, tab, "sign in as cashier", chromedp.Navigate(h.link(t, cashierCKG)), chromedp.WaitVisible(chromedp.CSS("#doc_number")))
	if got := text(t, tab, "#desk-port"); got != "CKG" {
		t.Fatalf("cashier's port shown %q", got)
	}
	run(t, tab, "find the traveller",
		chromedp.SendKeys(chromedp.CSS("#doc_number"), "E1234567"),
		chromedp.SendKeys(chromedp.CSS("#doc_country"), "FR"),
		chromedp.Click(chromedp.CSS("#find")),
		chromedp.WaitVisible(chromedp.CSS("#pay-form")))
	if got := text(t, tab, "#cash-left"); got != "20,000.00" {
		t.Fatalf("cash left shown %q, want 20,000.00", got)
	}
	screenshot(t, tab, "cashier-payable")
	run(t, tab, "pay in cash",
		chromedp.SendKeys(chromedp.CSS("#receipt"), "SIG-0001"),
		chromedp.Click(chromedp.CSS("#pay")),
		chromedp.WaitVisible(chromedp.CSS("#receipt-card")))
	// F = 2% of A' 1,000.00 = 20.00; N = 95.00 − 20.00 = 75.00.
	if got := text(t, tab, "#net-total"); got != "75.00" {
		t.Fatalf("receipt net %q, want 75.00", got)
	}
	if got := text(t, tab, "#receipt-method"); got != "Cash" {
		t.Fatalf("receipt method %q", got)
	}
	payoutID := text(t, tab, "#payout-id")
	screenshot(t, tab, "cashier-receipt")
	var method string
	var net decimal.Decimal
	if err := h.pool.QueryRow(ctx(t), `SELECT f.state, p.method, p.net_refund FROM forms f JOIN payouts p ON p.id = f.payout_id WHERE f.number = $1`, number).Scan(&state, &method, &net); err != nil {
		t.Fatal(err)
	}
	if state != "REFUNDED" || method != "CASH" || !net.Equal(decimal.RequireFromString("75.00")) {
		t.Fatalf("database: %s %s %s; want REFUNDED CASH 75.00", state, method, net)
	}
	got, err := h.desk(t, cashierCKG).GetPayout(ctx(t), &deskv1.GetPayoutRequest{PayoutId: payoutID})
	if err != nil {
		t.Fatalf("GetPayout %s: %v", payoutID, err)
	}
	if got.GetPayout().GetNetRefund() != "75.00" || got.GetPayout().GetReceiptReference() != "SIG-0001" || len(got.GetPayout().GetForms()) != 1 {
		t.Fatalf("API payout: %v", got.GetPayout())
	}

	// The official sees June's payout.
	tab = browser(t)
	run(t, tab, "sign in as official", chromedp.Navigate(h.link(t, official)), chromedp.WaitVisible(chromedp.CSS("#t-paid")))
	if m, paid, refunded := text(t, tab, "#month"), text(t, tab, "#t-paid"), text(t, tab, "#t-refunded"); m != "2025-06" || paid != "95.00" || refunded != "1" {
		t.Fatalf("month %s: refunds paid %q in %q forms; want 2025-06, 95.00 in 1", m, paid, refunded)
	}
	if got := text(t, tab, "#t-verified"); got != "1" {
		t.Fatalf("verified in June %q, want 1", got)
	}
	screenshot(t, tab, "official-month")
	rep, err := h.authority(t).MonthlyReport(ctx(t), &authorityv1.MonthlyReportRequest{Month: "2025-06"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.GetRows() {
		if r.GetDimension() == "port" && r.GetKey() == "CKG" && (r.GetFormsPaid() != 1 || r.GetPaidGross() != "95.00") {
			t.Fatalf("API report row CKG: %v", r)
		}
	}

	// July: the agency declares June, the official approves it in the console.
	h.clock.Set(time.Date(2025, 7, 2, 2, 0, 0, 0, time.UTC))
	decl, err := h.agency(t).DeclareMonth(ctx(t), &agencyv1.DeclareMonthRequest{RequestId: uuid.NewString(), Month: "2025-06"})
	if err != nil {
		t.Fatalf("DeclareMonth: %v", err)
	}
	row := "#decl-AG-CQ-2025-06"
	// Three weeks later the June session has long been signed out for idleness: a new link.
	run(t, tab, "sign in again", chromedp.Navigate(h.link(t, official)), chromedp.WaitVisible(chromedp.CSS("#t-paid")))
	run(t, tab, "open the declarations", chromedp.Navigate(h.consoleURL+"/official/declarations"), chromedp.WaitVisible(chromedp.CSS(row)))
	if got := text(t, tab, row); !strings.Contains(got, "Declared") || !strings.Contains(got, "75.00") {
		t.Fatalf("declaration row %q", got)
	}
	screenshot(t, tab, "official-declarations")
	run(t, tab, "approve", chromedp.Click(chromedp.CSS(row+" button.approve")), chromedp.WaitVisible(chromedp.CSS("#notice")))
	if got := text(t, tab, row); !strings.Contains(got, "Approved") {
		t.Fatalf("declaration row after approving %q", got)
	}
	var status, reviewer string
	if err := h.pool.QueryRow(ctx(t), `SELECT status, reviewed_by FROM declarations WHERE id = $1`, decl.GetDeclaration().GetDeclarationId()).Scan(&status, &reviewer); err != nil {
		t.Fatal(err)
	}
	if status != "APPROVED" || !strings.Contains(reviewer, "sat") {
		t.Fatalf("database: declaration %s reviewed by %q", status, reviewer)
	}
	gd, err := h.authority(t).GetDeclaration(ctx(t), &authorityv1.GetDeclarationRequest{DeclarationId: decl.GetDeclaration().GetDeclarationId()})
	if err != nil {
		t.Fatal(err)
	}
	if gd.GetDeclaration().GetStatus() != settlementv1.DeclarationStatus_DECLARATION_STATUS_APPROVED {
		t.Fatalf("API declaration status %v", gd.GetDeclaration().GetStatus())
	}

	// The rest of the official's pages, for review.
	run(t, tab, "stores", chromedp.Navigate(h.consoleURL+"/official/stores"), chromedp.WaitVisible(chromedp.CSS("table.lines")))
	screenshot(t, tab, "official-stores")
	run(t, tab, "switch to Chinese", chromedp.Navigate(h.consoleURL+"/official?month=2025-06"), chromedp.WaitVisible(chromedp.CSS("#lang-switch")),
		chromedp.Click(chromedp.CSS("#lang-switch")), chromedp.WaitVisible(chromedp.CSS(`html[lang="zh-CN"] #t-paid`)))
	if got := text(t, tab, "header nav"); !strings.Contains(got, "月度概览") {
		t.Fatalf("after switching, the navigation reads %q", got)
	}
	screenshot(t, tab, "official-month-zh")
}
