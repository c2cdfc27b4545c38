package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authorityv1 "taxrefund/api/taxrefund/authority/v1"
	deskv1 "taxrefund/api/taxrefund/desk/v1"
	formv1 "taxrefund/api/taxrefund/form/v1"
)

// confirm has customs at CKG confirm every unit of the form.
func (h *harness) confirm(t *testing.T, form *formv1.Form, doc string) {
	t.Helper()
	req := &deskv1.VerifyExportRequest{RequestId: uuid.NewString(), FormNumber: form.GetNumber(), PresentedDocument: passport(doc)}
	for _, l := range form.GetLines() {
		req.Lines = append(req.Lines, &deskv1.LineConfirmation{LineNo: l.GetLineNo(), ConfirmedQuantity: l.GetQuantity()})
	}
	if _, err := h.desk(t, customsCKG).VerifyExport(ctx(t), req); err != nil {
		t.Fatal(err)
	}
}

// TestOfficialOpensAnExceptionsTrail drives the month's reconciliation in Chromium: a
// form confirmed in June and still unpaid 35 days later is June's exception on the
// month's page; the official opens its trail (the form number posted, not in the URL)
// and sees its lines and its journal entries as the database has them. A paid form's
// trail shows its payout, through the page and through the API.
func TestOfficialOpensAnExceptionsTrail(t *testing.T) {
	h := newHarness(t)
	unpaid := h.issue(t, "U1234567", "INV-U")
	h.confirm(t, unpaid, "U1234567")
	paid := h.issue(t, "P7654321", "INV-P")
	h.confirm(t, paid, "P7654321")
	if _, err := h.desk(t, cashierCKG).SettleRefund(ctx(t), &deskv1.SettleRefundRequest{RequestId: uuid.NewString(), FormNumbers: []string{paid.GetNumber()},
		PresentedDocument: passport("P7654321"), Method: deskv1.PaymentMethod_PAYMENT_METHOD_MOBILE, AccountReference: "wx-user-0042", ReceiptReference: "SIG-P"}); err != nil {
		t.Fatal(err)
	}
	h.clock.Set(t0.AddDate(0, 1, 5)) // 2025-07-15: the unpaid one is 35 days old

	tab := browser(t)
	run(t, tab, "sign in as official", chromedp.Navigate(h.link(t, official)), chromedp.WaitVisible(chromedp.CSS("#t-paid")))
	run(t, tab, "June's reconciliation", chromedp.Navigate(h.consoleURL+"/official?month=2025-06"), chromedp.WaitVisible(chromedp.CSS("#kind-CONFIRMED_UNPAID")))
	noError(t, tab, "June")
	if got := text(t, tab, "#t-exceptions"); got != "1" {
		t.Errorf("June's exceptions tile: %q, want 1", got)
	}
	if got := text(t, tab, "#exceptions"); !strings.Contains(got, unpaid.GetNumber()) || !strings.Contains(got, "unpaid for 35 days") || strings.Contains(got, paid.GetNumber()) {
		t.Errorf("June's exceptions:\n%s", got)
	}
	screenshot(t, tab, "official-reconciliation")

	run(t, tab, "open the trail", chromedp.Click(chromedp.CSS("#kind-CONFIRMED_UNPAID button.trail")), chromedp.WaitVisible(chromedp.CSS("#trail-entries")))
	noError(t, tab, "the trail")
	loc, err := chromedp.Run(tab, chromedp.Evaluate[string](`location.pathname + location.search`))
	if err != nil || loc != "/official/trail" {
		t.Errorf("the trail's URL: %q (%v), want /official/trail and nothing else", loc, err)
	}
	if got := text(t, tab, "#trail-number"); got != unpaid.GetNumber() {
		t.Errorf("trail of %q, want %s", got, unpaid.GetNumber())
	}
	if got := text(t, tab, "#trail-lines"); !strings.Contains(got, "Silk scarf") || !strings.Contains(got, "Tuocha tea") || !strings.Contains(got, "1,000.00") {
		t.Errorf("the trail's lines:\n%s", got)
	}
	if got := text(t, tab, "#trail-verified"); !strings.Contains(got, "CKG") || !strings.Contains(got, "150.00") {
		t.Errorf("the trail's confirmation: %q", got)
	}
	// Every entry of the form's transactions (its issue and its confirmation), as many
	// as the database holds.
	var want int
	if err := h.pool.QueryRow(ctx(t), `
		SELECT count(*) FROM journal_entries e JOIN forms f ON e.txn_id = f.pending_id
		    OR e.txn_id IN (SELECT txn_id FROM pending_resolutions WHERE pending_id = f.pending_id)
		 WHERE f.number = $1`, unpaid.GetNumber()).Scan(&want); err != nil {
		t.Fatal(err)
	}
	rows, err := chromedp.Run(tab, chromedp.Evaluate[int](`document.querySelectorAll("#trail-entries tbody tr").length`))
	if err != nil || rows != want || want < 4 {
		t.Errorf("the trail lists %d entries (%v), the database %d", rows, err, want)
	}
	if got := text(t, tab, "#trail-entries"); !strings.Contains(got, "FORM_ISSUED") || !strings.Contains(got, "travellers:refund_payable") || !strings.Contains(got, "posted") {
		t.Errorf("the trail's entries:\n%s", got)
	}
	if got := text(t, tab, "#trail-unpaid"); got != "Not paid." {
		t.Errorf("the unpaid form's payout: %q", got)
	}
	screenshot(t, tab, "official-trail")
	// In Chinese: the language switch returns to the month (the trail was a POST); the
	// exception opens again.
	run(t, tab, "切换中文", chromedp.Click(chromedp.CSS("#lang-switch")), chromedp.WaitVisible(chromedp.CSS(`html[lang="zh-CN"] #t-paid`)))
	run(t, tab, "六月对账", chromedp.Navigate(h.consoleURL+"/official?month=2025-06"), chromedp.WaitVisible(chromedp.CSS("#kind-CONFIRMED_UNPAID")))
	if got := text(t, tab, "#reconciliation h2"); got != "本月对账" {
		t.Errorf("the reconciliation's title in Chinese: %q", got)
	}
	run(t, tab, "查看明细", chromedp.Click(chromedp.CSS("#kind-CONFIRMED_UNPAID button.trail")), chromedp.WaitVisible(chromedp.CSS("#trail-entries")))
	if got := text(t, tab, "#trail-unpaid"); got != "未付款。" {
		t.Errorf("the unpaid form's payout in Chinese: %q", got)
	}
	screenshot(t, tab, "official-trail-zh")

	// The paid form's trail: its payout, on the page and through the API.
	var payoutID string
	if err := h.pool.QueryRow(ctx(t), `SELECT payout_id::text FROM forms WHERE number = $1`, paid.GetNumber()).Scan(&payoutID); err != nil {
		t.Fatal(err)
	}
	c := h.browserClient(t)
	csrf := h.signIn(t, c, official)
	code, body := page(t, c, http.MethodPost, h.consoleURL+"/official/trail", url.Values{"csrf": {csrf}, "form_number": {paid.GetNumber()}})
	if code != http.StatusOK || !strings.Contains(body, `id="trail-payout"`) || !strings.Contains(body, payoutID) {
		t.Errorf("the paid form's trail: %d\n%s", code, body)
	}
	tr, err := h.authority(t).GetFormTrail(ctx(t), &authorityv1.GetFormTrailRequest{FormNumber: paid.GetNumber()})
	if err != nil {
		t.Fatal(err)
	}
	if tr.GetState() != "REFUNDED" || tr.GetPayout().GetPayoutId() != payoutID || tr.GetPayout().GetFormGrossRefund() != "150.00" || len(tr.GetLines()) != 2 {
		t.Errorf("GetFormTrail of the paid form: %v", tr)
	}
	kinds := map[string]bool{}
	for _, e := range tr.GetEntries() {
		kinds[e.GetKind()] = true
	}
	if len(kinds) != 3 {
		t.Errorf("the paid form's transactions: %v, want its issue, its confirmation and its payout", kinds)
	}
	// A number no form has: the API's refusal, on the page.
	if code, body := page(t, c, http.MethodPost, h.consoleURL+"/official/trail", url.Values{"csrf": {csrf}, "form_number": {"TR-NONE"}}); code != http.StatusUnprocessableEntity || !strings.Contains(body, "no form has this number") {
		t.Errorf("the trail of no form: %d\n%s", code, body)
	}
	// No one but the authority reads a trail through the API.
	if _, err := authorityv1.NewAuthorityServiceClient(h.conn(t, cashierCKG)).GetFormTrail(ctx(t), &authorityv1.GetFormTrailRequest{FormNumber: paid.GetNumber()}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("GetFormTrail as a cashier: %v, want PermissionDenied", err)
	}
}
