package console_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	agencyv1 "taxrefund/api/taxrefund/agency/v1"
	authorityv1 "taxrefund/api/taxrefund/authority/v1"
	deskv1 "taxrefund/api/taxrefund/desk/v1"
	formv1 "taxrefund/api/taxrefund/form/v1"
	"taxrefund/internal/dbtest"
)

// payAt has customs at port confirm every unit of the form and the port's cashier pay it
// by mobile payment; it returns the payout's id.
func (h *harness) payAt(t *testing.T, form *formv1.Form, doc, customs, cashier string) string {
	t.Helper()
	req := &deskv1.VerifyExportRequest{RequestId: uuid.NewString(), FormNumber: form.GetNumber(), PresentedDocument: passport(doc)}
	for _, l := range form.GetLines() {
		req.Lines = append(req.Lines, &deskv1.LineConfirmation{LineNo: l.GetLineNo(), ConfirmedQuantity: l.GetQuantity()})
	}
	if _, err := h.desk(t, customs).VerifyExport(ctx(t), req); err != nil {
		t.Fatal(err)
	}
	resp, err := h.desk(t, cashier).SettleRefund(ctx(t), &deskv1.SettleRefundRequest{RequestId: uuid.NewString(), FormNumbers: []string{form.GetNumber()},
		PresentedDocument: passport(doc), Method: deskv1.PaymentMethod_PAYMENT_METHOD_MOBILE, AccountReference: "wx-" + doc, ReceiptReference: "SIG-" + doc})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetPayout().GetPayoutId()
}

// opener is the form an exception row opens: the action and the posted field and value.
var opener = regexp.MustCompile(`(?s)<form method="post" action="([^"]+)" class="inline">\s*<input type="hidden" name="csrf" value="[^"]+"><input type="hidden" name="([a-z_]+)" value="([^"]+)">`)

// kindRows returns the opener of each row of an exception kind on the month's page.
func kindRows(t *testing.T, body, kind string) [][]string {
	t.Helper()
	i := strings.Index(body, `id="kind-`+kind+`"`)
	if i < 0 {
		t.Fatalf("the month's page has no %s exception:\n%s", kind, body)
	}
	section := body[i:]
	if j := strings.Index(section, "</tbody>"); j >= 0 {
		section = section[:j]
	}
	return opener.FindAllStringSubmatch(section, -1)
}

// TestExceptionsOpenPayoutsAndDeclarations: June 2025 with a payout whose totals differ
// from its form's row (AG-CQ, declared), a payout never declared (AG-CD) and AG-CQ's
// declaration claiming 10.00 more than its payouts. On the month's page each exception
// opens where it should, its id posted and never in a URL: the two payouts their payout's
// trail, the declaration its lines; the trails show the figures the database holds.
func TestExceptionsOpenPayoutsAndDeclarations(t *testing.T) {
	h := newHarness(t)
	cq := h.issue(t, "D1234567", "INV-D1")
	cqPayout := h.payAt(t, cq, "D1234567", customsCKG, cashierCKG)
	cd := h.issue(t, "D7654321", "INV-D2")
	cdPayout := h.payAt(t, cd, "D7654321", customsTFU, cashierTFU)
	h.clock.Set(t0.AddDate(0, 0, 23)) // 2025-07-03: June has ended
	decl, err := h.agency(t).DeclareMonth(ctx(t), &agencyv1.DeclareMonthRequest{RequestId: uuid.NewString(), Month: "2025-06"})
	if err != nil {
		t.Fatal(err)
	}
	declID := decl.GetDeclaration().GetDeclarationId()
	// The corruptions the reconciliation exists to catch (internal/report's
	// TestReconcileEveryExceptionOnce makes them the same way): past the payouts'
	// append-only trigger as the database's owner.
	cfg, err := pgx.ParseConfig(dbtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database = h.pool.Config().ConnConfig.Database
	su, err := pgx.ConnectConfig(ctx(t), cfg)
	if err != nil {
		t.Fatalf("connect as superuser: %v", err)
	}
	defer su.Close(context.Background())
	tx, err := su.Begin(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	for _, sql := range []string{
		`SET LOCAL session_replication_role = replica`,
		`UPDATE payouts SET gross_refund = gross_refund + 1, net_refund = net_refund + 1 WHERE id = '` + cqPayout + `'`,
		`UPDATE declarations SET gross_refund = gross_refund + 10, net_refund = net_refund + 10 WHERE id = '` + declID + `'`,
	} {
		if _, err := tx.Exec(ctx(t), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	if err := tx.Commit(ctx(t)); err != nil {
		t.Fatal(err)
	}
	h.clock.Set(t0.AddDate(0, 1, 10)) // 2025-07-20: past the 15th, the AG-CD payout is undeclared

	c := h.browserClient(t)
	csrf := h.signIn(t, c, official)
	code, body := page(t, c, http.MethodGet, h.consoleURL+"/official?month=2025-06", nil)
	if code != http.StatusOK || strings.Contains(body, `id="error"`) {
		t.Fatalf("June: %d\n%s", code, body)
	}
	for kind, want := range map[string][]string{
		"PAYOUT_TOTAL_MISMATCH": {"/official/payout-trail", "payout_id", cqPayout},
		"UNDECLARED_PAYOUT":     {"/official/payout-trail", "payout_id", cdPayout},
		"DECLARATION_MISMATCH":  {"/official/declaration", "declaration_id", declID},
	} {
		rows := kindRows(t, body, kind)
		if len(rows) != 1 || strings.Join(rows[0][1:], " ") != strings.Join(want, " ") {
			t.Errorf("%s opens %q, want %q", kind, rows, want)
		}
	}
	if strings.Contains(body, "?payout_id=") || strings.Contains(body, "?declaration_id=") || strings.Contains(body, "href=\"/official/payout-trail") {
		t.Errorf("an id in a URL on the month's page:\n%s", body)
	}

	// The mismatched payout's trail: the payout's row as stored (1.00 more), its form's
	// row, their sums, its transaction's entries, the declaration it is in.
	var gross, fee, net, fGross, fFee, fNet string
	var entries int
	if err := h.pool.QueryRow(ctx(t), `
		SELECT to_char(p.gross_refund, 'FM999,990.00'), to_char(p.fee, 'FM999,990.00'), to_char(p.net_refund, 'FM999,990.00'),
		       to_char(pf.gross_refund, 'FM999,990.00'), to_char(pf.fee, 'FM999,990.00'), to_char(pf.net_refund, 'FM999,990.00'),
		       (SELECT count(*) FROM journal_entries WHERE txn_id = p.txn_id)
		  FROM payouts p JOIN payout_forms pf ON pf.payout_id = p.id WHERE p.id = $1`, cqPayout).Scan(&gross, &fee, &net, &fGross, &fFee, &fNet, &entries); err != nil {
		t.Fatal(err)
	}
	if gross != "151.00" || fGross != "150.00" {
		t.Fatalf("the corrupted payout: %s, its form %s", gross, fGross)
	}
	code, body = page(t, c, http.MethodPost, h.consoleURL+"/official/payout-trail", url.Values{"csrf": {csrf}, "payout_id": {cqPayout}})
	body = html.UnescapeString(body)
	for _, want := range []string{
		`id="payout-id" class="hash">` + cqPayout,
		`id="payout-totals">` + gross + " − " + fee + " = " + net,
		`id="payout-formsum" class="mismatch">` + fGross + " − " + fFee + " = " + fNet + " <strong>differs from the payout's totals",
		"<code>" + cq.GetNumber() + "</code>", "CKG · CKG-01 · AG-CQ", "cashier-1", "Mobile payment",
		"Declared",
	} {
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("the mismatched payout's trail (%d) has no %q:\n%s", code, want, body)
		}
	}
	if got := strings.Count(body[strings.Index(body, `id="payout-entries"`):], "<tr><td><code>"); got != entries || entries < 3 {
		t.Errorf("the payout's trail lists %d entries, the database %d", got, entries)
	}
	if !strings.Contains(body, `name="form_number" value="`+cq.GetNumber()+`"`) || !strings.Contains(body, `name="declaration_id" value="`+declID+`"`) {
		t.Errorf("the payout's trail opens neither its form's trail nor its declaration:\n%s", body)
	}
	// The undeclared one: no declaration; its figures match.
	code, body = page(t, c, http.MethodPost, h.consoleURL+"/official/payout-trail", url.Values{"csrf": {csrf}, "payout_id": {cdPayout}})
	if code != http.StatusOK || !strings.Contains(body, `id="payout-undeclared"`) || strings.Contains(body, `class="mismatch"`) ||
		!strings.Contains(body, "TFU · TFU-01 · AG-CD") {
		t.Errorf("the undeclared payout's trail: %d\n%s", code, body)
	}
	// The declaration: its totals as stored (10.00 more), its line opening the form's trail
	// and the payout's.
	code, body = page(t, c, http.MethodPost, h.consoleURL+"/official/declaration", url.Values{"csrf": {csrf}, "declaration_id": {declID}})
	body = html.UnescapeString(body)
	if code != http.StatusOK || !strings.Contains(body, `id="decl-totals">160.00 − 30.00 = 130.00`) || !strings.Contains(body, `id="decl-forms">1<`) ||
		!strings.Contains(body, `name="payout_id" value="`+cqPayout+`"`) || !strings.Contains(body, `name="form_number" value="`+cq.GetNumber()+`"`) {
		t.Errorf("the declaration: %d\n%s", code, body)
	}
	// The declarations page opens it too.
	if _, body := page(t, c, http.MethodGet, h.consoleURL+"/official/declarations", nil); !strings.Contains(body, `name="declaration_id" value="`+declID+`"`) ||
		!strings.Contains(body, `class="link open-declaration"`) {
		t.Errorf("the declarations page opens no declaration:\n%s", body)
	}

	// Refusals, the API's, on the page: no such payout, a malformed id, no such declaration.
	for _, r := range []struct{ path, field, value, want string }{
		{"/official/payout-trail", "payout_id", uuid.NewString(), "no payout has this id"},
		{"/official/payout-trail", "payout_id", "P-1", "payout_id"},
		{"/official/declaration", "declaration_id", uuid.NewString(), "no such declaration"},
		{"/official/declaration", "declaration_id", "D-1", "declaration_id"},
	} {
		code, body := page(t, c, http.MethodPost, h.consoleURL+r.path, url.Values{"csrf": {csrf}, r.field: {r.value}})
		if code != http.StatusUnprocessableEntity || !strings.Contains(body, `id="error"`) || !strings.Contains(html.UnescapeString(body), r.want) {
			t.Errorf("%s %s=%s: %d\n%s", r.path, r.field, r.value, code, body)
		}
	}
	// In Chromium, for review: the month's payout exception opens the payout's trail, the
	// declaration's exception the declaration.
	tab := browser(t)
	run(t, tab, "sign in as official", chromedp.Navigate(h.link(t, official)), chromedp.WaitVisible(chromedp.CSS("#t-paid")))
	run(t, tab, "June", chromedp.Navigate(h.consoleURL+"/official?month=2025-06"), chromedp.WaitVisible(chromedp.CSS("#kind-PAYOUT_TOTAL_MISMATCH")))
	screenshot(t, tab, "official-reconciliation-payouts")
	run(t, tab, "open the payout", chromedp.Click(chromedp.CSS("#kind-PAYOUT_TOTAL_MISMATCH button.trail")), chromedp.WaitVisible(chromedp.CSS("#payout-forms")))
	noError(t, tab, "the payout's trail")
	if got := text(t, tab, "#payout-id"); got != cqPayout {
		t.Errorf("the payout's trail of %q, want %s", got, cqPayout)
	}
	screenshot(t, tab, "official-payout-trail")
	run(t, tab, "June again", chromedp.Navigate(h.consoleURL+"/official?month=2025-06"), chromedp.WaitVisible(chromedp.CSS("#kind-DECLARATION_MISMATCH")),
		chromedp.Click(chromedp.CSS("#kind-DECLARATION_MISMATCH button.trail")), chromedp.WaitVisible(chromedp.CSS("#decl-lines")))
	noError(t, tab, "the declaration")
	screenshot(t, tab, "official-declaration")
	run(t, tab, "切换中文", chromedp.Click(chromedp.CSS("#lang-switch")), chromedp.WaitVisible(chromedp.CSS(`html[lang="zh-CN"] table.lines`)))
	run(t, tab, "六月", chromedp.Navigate(h.consoleURL+"/official?month=2025-06"), chromedp.WaitVisible(chromedp.CSS("#kind-UNDECLARED_PAYOUT")),
		chromedp.Click(chromedp.CSS("#kind-UNDECLARED_PAYOUT button.trail")), chromedp.WaitVisible(chromedp.CSS("#payout-undeclared")))
	if got := text(t, tab, "#payout-undeclared"); got != "未列入任何结算申报。" {
		t.Errorf("the undeclared payout in Chinese: %q", got)
	}
	screenshot(t, tab, "official-payout-trail-zh")

	// Returned from the declarations page with a reason: the return form's own request id.
	_, body = page(t, c, http.MethodGet, h.consoleURL+"/official/declarations", nil)
	m := regexp.MustCompile(`name="request_id" value="([^"]+)">\s*<input name="reason"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no return form on the declarations page:\n%s", body)
	}
	code, body = page(t, c, http.MethodPost, h.consoleURL+"/official/declarations", url.Values{"csrf": {csrf}, "action": {"return"},
		"declaration_id": {declID}, "request_id": {m[1]}, "reason": {"totals differ from the payouts"}})
	var status string
	if err := h.pool.QueryRow(ctx(t), `SELECT status FROM declarations WHERE id = $1`, declID).Scan(&status); err != nil {
		t.Fatal(err)
	}
	if code != http.StatusOK || !strings.Contains(body, "Declaration returned.") || status != "RETURNED" {
		t.Errorf("returning the declaration: %d, %s\n%s", code, status, body)
	}

	// The API: the authority only.
	if _, err := authorityv1.NewAuthorityServiceClient(h.conn(t, cashierCKG)).GetPayoutTrail(ctx(t), &authorityv1.GetPayoutTrailRequest{PayoutId: cqPayout}); err == nil ||
		!strings.Contains(err.Error(), "PermissionDenied") {
		t.Errorf("GetPayoutTrail as a cashier: %v, want PermissionDenied", err)
	}
}
