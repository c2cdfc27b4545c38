package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"
)

// TestRefundPointPaysAndTakesBack: the refund point at Jiefangbei signs in to its own
// page, pays a form's net refund against the traveller's card pre-authorization, and
// records the prepayment handed back when the goods are returned; the database holds the
// prepayment, then its return.
func TestRefundPointPaysAndTakesBack(t *testing.T) {
	h := newHarness(t)
	// The Sichuan–Chongqing scheme's committed period starts on 2025-07-01.
	h.clock.Set(t0.AddDate(0, 1, 0))
	form := h.issue(t, "R1357913", "INV-R")
	c := h.browserClient(t)
	csrf := h.signIn(t, c, refundJFB)
	resp, err := c.Get(h.consoleURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); loc != "/refund-point" {
		t.Fatalf("a refund point is sent to %q, want /refund-point", loc)
	}
	pay := url.Values{"csrf": {csrf}, "action": {"pay"}, "request_id": {uuid.NewString()}, "form_number": {form.GetNumber()},
		"doc_type": {"PASSPORT"}, "doc_number": {"R1357913"}, "doc_country": {"FR"}, "agreement": {"AGR-R-1"},
		"token": {"tok_console_r1"}, "last4": {"0123"}, "expiry": {"2027-12"}, "authorized": {"150.00"}, "port": {"TFU"}}
	code, body := page(t, c, http.MethodPost, h.consoleURL+"/refund-point", pay)
	// N = G − F = 150.00 − 2% of 1,500.00 = 120.00.
	if code != http.StatusOK || !strings.Contains(body, "Prepayment paid.") || !strings.Contains(body, `id="prepayment-net">120.00<`) {
		t.Fatalf("immediate refund: %d\n%s", code, body)
	}
	var state string
	if err := h.pool.QueryRow(ctx(t), `SELECT p.state FROM prepayments p JOIN forms f ON f.id = p.form_id WHERE f.number = $1`, form.GetNumber()).Scan(&state); err != nil {
		t.Fatal(err)
	}
	if state != "PREPAID" {
		t.Fatalf("prepayment %s, want PREPAID", state)
	}
	ret := url.Values{"csrf": {csrf}, "action": {"return"}, "request_id": {uuid.NewString()}, "form_number": {form.GetNumber()}}
	code, body = page(t, c, http.MethodPost, h.consoleURL+"/refund-point", ret)
	if code != http.StatusOK || !strings.Contains(body, "Prepayment returned.") {
		t.Fatalf("return: %d\n%s", code, body)
	}
	if err := h.pool.QueryRow(ctx(t), `SELECT p.state FROM prepayments p JOIN forms f ON f.id = p.form_id WHERE f.number = $1`, form.GetNumber()).Scan(&state); err != nil {
		t.Fatal(err)
	}
	if state != "RETURNED" {
		t.Fatalf("prepayment %s after the return, want RETURNED", state)
	}
	// The page as the refund point sees it, for review.
	tab := browser(t)
	run(t, tab, "sign in as the refund point", chromedp.Navigate(h.link(t, refundJFB)), chromedp.WaitVisible(chromedp.CSS("#rp_form_number")))
	if got := focused(t, tab); got != "rp_form_number" {
		t.Errorf("the refund point page opens with the focus on %q, want the form number", got)
	}
	screenshot(t, tab, "refund-point")
	if strings.Contains(h.logs.String(), "R1357913") {
		t.Error("the log carries the clear document number")
	}
}
