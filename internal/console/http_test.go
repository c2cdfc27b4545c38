package console_test

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/xuri/excelize/v2"

	deskv1 "taxrefund/api/taxrefund/desk/v1"
	formv1 "taxrefund/api/taxrefund/form/v1"
	storev1 "taxrefund/api/taxrefund/store/v1"
)

// page GETs or POSTs (form != nil) path with client c and returns the status and body.
func page(t *testing.T, c *http.Client, method, u string, form url.Values) (int, string) {
	t.Helper()
	var resp *http.Response
	var err error
	if method == http.MethodPost {
		resp, err = c.PostForm(u, form)
	} else {
		resp, err = c.Get(u)
	}
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signIn opens a fresh link of certificate name with client c and returns the CSRF token
// of the session's first page.
func (h *harness) signIn(t *testing.T, c *http.Client, name string) string {
	t.Helper()
	resp, err := c.Get(h.link(t, name))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in as %s: status %d, want 303", name, resp.StatusCode)
	}
	ck := resp.Cookies()
	if len(ck) != 1 || !ck[0].HttpOnly || !ck[0].Secure || ck[0].SameSite != http.SameSiteStrictMode || ck[0].Path != "/" {
		t.Fatalf("session cookie %+v: want one HttpOnly, Secure, SameSite=Strict cookie for /", ck)
	}
	// "/" sends each role to its page.
	loc := resp.Header.Get("Location")
	for range 3 {
		r, err := c.Get(h.consoleURL + loc)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != http.StatusSeeOther {
			break
		}
		loc = r.Header.Get("Location")
	}
	_, body := page(t, c, http.MethodGet, h.consoleURL+loc, nil)
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token on the first page of %s", name)
	}
	return m[1]
}

// TestSignInLinkIsOneTimeAndExpires: a link opens one session, once, within its minute;
// a session unused for the idle timeout is signed out, and so is one that signs out.
func TestSignInLinkIsOneTimeAndExpires(t *testing.T) {
	h := newHarness(t)
	c := h.browserClient(t)
	link := h.link(t, customsCKG)
	if !strings.HasPrefix(link, h.consoleURL+"/signin/") {
		t.Fatalf("link %q is not on the console", link)
	}
	resp, err := c.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("first use: %d to %q, want 303 to /", resp.StatusCode, resp.Header.Get("Location"))
	}
	if code, body := page(t, c, http.MethodGet, h.consoleURL+"/customs", nil); code != http.StatusOK || !strings.Contains(body, "taxrefund://customs/CKG/officer-1") {
		t.Fatalf("signed-in customs page: %d", code)
	}
	// The second use, from another browser, opens nothing.
	other := h.browserClient(t)
	if code, body := page(t, other, http.MethodGet, link, nil); code != http.StatusUnauthorized || !strings.Contains(body, "used already or has expired") {
		t.Fatalf("second use of the link: %d", code)
	}
	if code, _ := page(t, other, http.MethodGet, h.consoleURL+"/customs", nil); code != http.StatusUnauthorized {
		t.Fatalf("a browser without a session got %d on /customs, want 401", code)
	}
	// A link unused for a minute is dead.
	late := h.link(t, customsCKG)
	h.clock.Set(t0.Add(61 * time.Second))
	if code, _ := page(t, other, http.MethodGet, late, nil); code != http.StatusUnauthorized {
		t.Fatalf("a link opened after 61 s: %d, want 401", code)
	}
	// 59 s is within the minute.
	inTime := h.link(t, customsCKG)
	h.clock.Set(t0.Add(120 * time.Second))
	if code, _ := page(t, other, http.MethodGet, inTime, nil); code != http.StatusSeeOther {
		t.Fatalf("a link opened after 59 s: %d, want 303 into the console", code)
	}
	// The first browser's session was last used at t0: idle for 15 minutes, it is closed.
	h.clock.Set(t0.Add(16 * time.Minute))
	if code, _ := page(t, c, http.MethodGet, h.consoleURL+"/customs", nil); code != http.StatusUnauthorized {
		t.Fatalf("a session idle for 16 minutes: %d, want 401", code)
	}
	// Sign out ends the session at once.
	csrf := h.signIn(t, c, customsCKG)
	if code, _ := page(t, c, http.MethodPost, h.consoleURL+"/signout", url.Values{"csrf": {csrf}}); code != http.StatusOK {
		t.Fatalf("sign out: %d", code)
	}
	if code, _ := page(t, c, http.MethodGet, h.consoleURL+"/customs", nil); code != http.StatusUnauthorized {
		t.Fatalf("after signing out: %d, want 401", code)
	}
}

// TestCashierStaysInItsLane: a cashier's session cannot open the officials' pages or act
// on them, cannot pay a form confirmed at another port (the API's own refusal, shown on
// the page), and a POST without the session's CSRF token is refused. Every page carries
// a Content-Security-Policy without 'unsafe-inline', and no document number reaches the
// log.
func TestCashierStaysInItsLane(t *testing.T) {
	h := newHarness(t)
	form := h.issue(t, "K7654321", "INV-9")
	// Customs at Tianfu confirms the export: it is payable at TFU only.
	req := &deskv1.VerifyExportRequest{RequestId: uuid.NewString(), FormNumber: form.GetNumber(), PresentedDocument: passport("K7654321")}
	for _, l := range form.GetLines() {
		req.Lines = append(req.Lines, &deskv1.LineConfirmation{LineNo: l.GetLineNo(), ConfirmedQuantity: l.GetQuantity()})
	}
	if _, err := h.desk(t, customsTFU).VerifyExport(ctx(t), req); err != nil {
		t.Fatal(err)
	}

	c := h.browserClient(t)
	csrf := h.signIn(t, c, cashierCKG)
	for _, p := range []string{"/official", "/official/declarations", "/official/stores?q=JFB", "/official/export?month=2025-06&format=csv", "/customs",
		"/official/parameters", "/official/journal", "/official/pdf?month=2025-06"} {
		code, body := page(t, c, http.MethodGet, h.consoleURL+p, nil)
		if code != http.StatusForbidden || !strings.Contains(body, `id="forbidden"`) {
			t.Errorf("cashier GET %s: %d, want 403", p, code)
		}
	}
	// An approval posted with the cashier's own valid token is refused as well.
	if code, _ := page(t, c, http.MethodPost, h.consoleURL+"/official/declarations", url.Values{"csrf": {csrf}, "action": {"approve"}, "declaration_id": {uuid.NewString()}, "request_id": {uuid.NewString()}}); code != http.StatusForbidden {
		t.Errorf("cashier POST approve: %d, want 403", code)
	}
	if code, _ := page(t, c, http.MethodPost, h.consoleURL+"/customs", url.Values{"csrf": {csrf}, "action": {"confirm"}, "form_number": {form.GetNumber()}}); code != http.StatusForbidden {
		t.Errorf("cashier POST customs confirm: %d, want 403", code)
	}
	// So are the registry's, the parameters' and the journal's actions, and nothing changes.
	for _, post := range []struct {
		path string
		form url.Values
	}{
		{"/official/stores", url.Values{"csrf": {csrf}, "action": {"suspend"}, "code": {"S-JFB-1"}, "reason": {"x"}, "request_id": {uuid.NewString()}}},
		{"/official/parameters", url.Values{"csrf": {csrf}, "name": {"cash_cap"}, "valid_from": {"2025-07-01"}, "value": {"1.00"}, "note": {"x"}, "request_id": {uuid.NewString()}}},
		{"/official/journal", url.Values{"csrf": {csrf}}},
		{"/official/trail", url.Values{"csrf": {csrf}, "form_number": {form.GetNumber()}}},
	} {
		if code, body := page(t, c, http.MethodPost, h.consoleURL+post.path, post.form); code != http.StatusForbidden || !strings.Contains(body, `id="forbidden"`) {
			t.Errorf("cashier POST %s: %d, want 403", post.path, code)
		}
	}
	var storeStatus string
	var caps int
	if err := h.pool.QueryRow(ctx(t), `SELECT status, (SELECT count(*) FROM parameters WHERE name = 'cash_cap' AND value = 1) FROM stores WHERE code = 'S-JFB-1'`).Scan(&storeStatus, &caps); err != nil {
		t.Fatal(err)
	}
	if storeStatus != "ACTIVE" || caps != 0 {
		t.Errorf("after the cashier's refused posts: store %s, %d cash caps of 1.00; want ACTIVE, 0", storeStatus, caps)
	}

	// The cashier at CKG looks the traveller up: the form is shown as payable elsewhere.
	doc := url.Values{"csrf": {csrf}, "action": {"find"}, "doc_type": {"PASSPORT"}, "doc_number": {"K7654321"}, "doc_country": {"FR"}}
	code, body := page(t, c, http.MethodPost, h.consoleURL+"/cashier", doc)
	if code != http.StatusOK || !strings.Contains(body, "Confirmed at another port: pay there") || strings.Contains(body, `id="pay-form"`) {
		t.Fatalf("cashier at CKG finding a TFU form: %d\n%s", code, body)
	}
	// Forcing the payment anyway: the payout service refuses it, naming the rule.
	pay := url.Values{"csrf": {csrf}, "action": {"pay"}, "request_id": {uuid.NewString()}, "form": {form.GetNumber()}, "method": {"CASH"},
		"doc_type": {"PASSPORT"}, "doc_number": {"K7654321"}, "doc_country": {"FR"}, "receipt": {"SIG-X"}}
	code, body = page(t, c, http.MethodPost, h.consoleURL+"/cashier", pay)
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, `id="error"`) || !strings.Contains(body, "TFU") {
		t.Fatalf("paying a TFU form at CKG: %d\n%s", code, body)
	}
	var state string
	var payouts int
	if err := h.pool.QueryRow(ctx(t), `SELECT state, (SELECT count(*) FROM payouts) FROM forms WHERE number = $1`, form.GetNumber()).Scan(&state, &payouts); err != nil {
		t.Fatal(err)
	}
	if state != "VERIFIED" || payouts != 0 {
		t.Fatalf("after the refused payment: form %s, %d payouts; want VERIFIED, 0", state, payouts)
	}
	found, err := h.desk(t, cashierTFU).FindForms(ctx(t), &deskv1.FindFormsRequest{Query: &deskv1.FindFormsRequest_FormNumber{FormNumber: form.GetNumber()}})
	if err != nil || found.GetForms()[0].GetState() != formv1.FormState_FORM_STATE_VERIFIED || found.GetForms()[0].GetPayoutId() != "" {
		t.Fatalf("API after the refused payment: %v %v", found, err)
	}

	// Without the token, or with another session's, a POST does nothing.
	pay.Set("csrf", "")
	if code, _ := page(t, c, http.MethodPost, h.consoleURL+"/cashier", pay); code != http.StatusForbidden {
		t.Errorf("POST without the CSRF token: %d, want 403", code)
	}
	other := h.browserClient(t)
	otherCSRF := h.signIn(t, other, cashierTFU)
	pay.Set("csrf", otherCSRF)
	if code, _ := page(t, c, http.MethodPost, h.consoleURL+"/cashier", pay); code != http.StatusForbidden {
		t.Errorf("POST with another session's CSRF token: %d, want 403", code)
	}

	resp, err := c.Get(h.consoleURL + "/cashier")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "style-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	if strings.Contains(h.logs.String(), "K7654321") {
		t.Error("the log carries the clear document number")
	}
}

// TestOfficialDownloadsTheMonth: the official's month page offers the API's export; the
// workbook holds the month's payout with the official's office in its heading.
func TestOfficialDownloadsTheMonth(t *testing.T) {
	h := newHarness(t)
	form := h.issue(t, "D9081726", "INV-D")
	req := &deskv1.VerifyExportRequest{RequestId: uuid.NewString(), FormNumber: form.GetNumber(), PresentedDocument: passport("D9081726")}
	for _, l := range form.GetLines() {
		req.Lines = append(req.Lines, &deskv1.LineConfirmation{LineNo: l.GetLineNo(), ConfirmedQuantity: l.GetQuantity()})
	}
	if _, err := h.desk(t, customsCKG).VerifyExport(ctx(t), req); err != nil {
		t.Fatal(err)
	}
	if _, err := h.desk(t, cashierCKG).SettleRefund(ctx(t), &deskv1.SettleRefundRequest{RequestId: uuid.NewString(), FormNumbers: []string{form.GetNumber()},
		PresentedDocument: passport("D9081726"), Method: deskv1.PaymentMethod_PAYMENT_METHOD_MOBILE, AccountReference: "wx-user-0042", ReceiptReference: "SIG-D"}); err != nil {
		t.Fatal(err)
	}
	c := h.browserClient(t)
	h.signIn(t, c, official)
	resp, err := c.Get(h.consoleURL + "/official/export?month=2025-06&format=xlsx")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Disposition"), "taxrefund-report-2025-06.xlsx") {
		t.Fatalf("export: %d %q", resp.StatusCode, resp.Header.Get("Content-Disposition"))
	}
	f, err := excelize.OpenReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("the download is not a workbook: %v", err)
	}
	defer f.Close()
	rows, err := f.GetRows("By port", excelize.Options{RawCellValue: true})
	if err != nil {
		t.Fatal(err)
	}
	// G = 150.00, F = 30.00, N = 120.00, paid at CKG.
	if len(rows) < 6 || !strings.Contains(rows[1][0], "Issuing office: sat") || rows[4][0] != "CKG" || rows[4][7] != "150.00" || rows[4][9] != "120.00" {
		t.Fatalf("By port: %q", rows)
	}
}

// TestCustomsSeesWhyNot: a voided form is shown with the reason it cannot be confirmed
// and no confirmation to submit; a confirmation with another traveller's document is
// refused by the API, the page says why, and nothing changes.
func TestCustomsSeesWhyNot(t *testing.T) {
	h := newHarness(t)
	voided := h.issue(t, "V1122334", "INV-V1")
	if _, err := storev1.NewStoreServiceClient(h.conn(t, storeJFB)).VoidForm(ctx(t), &storev1.VoidFormRequest{RequestId: uuid.NewString(), FormNumber: voided.GetNumber(), Reason: "goods returned"}); err != nil {
		t.Fatal(err)
	}
	open := h.issue(t, "V1122334", "INV-V2")
	c := h.browserClient(t)
	csrf := h.signIn(t, c, customsCKG)
	code, body := page(t, c, http.MethodPost, h.consoleURL+"/customs", url.Values{"csrf": {csrf}, "action": {"find"}, "form_number": {voided.GetNumber()}})
	if code != http.StatusOK || !strings.Contains(body, "Voided by the store (goods returned)") || strings.Contains(body, `class="primary confirm"`) {
		t.Fatalf("a voided form: %d\n%s", code, body)
	}
	confirm := url.Values{"csrf": {csrf}, "action": {"confirm"}, "form_number": {open.GetNumber()}, "request_id": {uuid.NewString()},
		"doc_type": {"PASSPORT"}, "doc_number": {"W9999999"}, "doc_country": {"FR"}, "line": {"1", "2"}, "q1": {"2"}, "q2": {"1"}}
	code, body = page(t, c, http.MethodPost, h.consoleURL+"/customs", confirm)
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, `id="error"`) || !strings.Contains(body, "form-"+open.GetNumber()) {
		t.Fatalf("a confirmation with another document: %d\n%s", code, body)
	}
	var state string
	if err := h.pool.QueryRow(ctx(t), `SELECT state FROM forms WHERE number = $1`, open.GetNumber()).Scan(&state); err != nil {
		t.Fatal(err)
	}
	if state != "ISSUED" {
		t.Fatalf("after the refused confirmation the form is %s, want ISSUED", state)
	}
}
