package console_test

import (
	"fmt"
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
	// The prepayment is due for capture: on the page, with its due date (the committed
	// date + 3 working days, as the capture job reckons it) and the days left.
	var due string
	var left int
	if err := h.pool.QueryRow(ctx(t), `
		SELECT add_working_days(p.committed_date, 3)::text, add_working_days(p.committed_date, 3) - $2::date
		  FROM prepayments p JOIN forms f ON f.id = p.form_id WHERE f.number = $1`, form.GetNumber(), h.clock.Now().Format("2006-01-02")).Scan(&due, &left); err != nil {
		t.Fatal(err)
	}
	row := captureRow(body, form.GetNumber())
	if left < 1 || !strings.Contains(row, "<td>"+due+"</td>") || !strings.Contains(row, fmt.Sprintf(`"num days-left">%d<`, left)) || !strings.Contains(row, "120.00") {
		t.Fatalf("the capture list after paying, want %s due %s in %d days:\n%s", form.GetNumber(), due, left, body)
	}
	// A second traveller's prepayment, kept to the end.
	second := h.issue(t, "R2468024", "INV-R2")
	pay2 := url.Values{"csrf": {csrf}, "action": {"pay"}, "request_id": {uuid.NewString()}, "form_number": {second.GetNumber()},
		"doc_type": {"PASSPORT"}, "doc_number": {"R2468024"}, "doc_country": {"FR"}, "agreement": {"AGR-R-2"},
		"token": {"tok_console_r2"}, "last4": {"0456"}, "expiry": {"2027-12"}, "authorized": {"150.00"}, "port": {"TFU"}}
	if code, body := page(t, c, http.MethodPost, h.consoleURL+"/refund-point", pay2); code != http.StatusOK || captureRow(body, second.GetNumber()) == "" {
		t.Fatalf("second immediate refund: %d\n%s", code, body)
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
	// Returned: off the list; the second one stays.
	if captureRow(body, form.GetNumber()) != "" || captureRow(body, second.GetNumber()) == "" {
		t.Fatalf("the capture list after the return:\n%s", body)
	}
	// Past its due date and not yet captured (the job has not run): due now.
	// (Days later: a new session, the first one has long been signed out for idleness.)
	h.clock.Set(h.clock.Now().AddDate(0, 0, left+7))
	later := h.browserClient(t)
	h.signIn(t, later, refundJFB)
	if _, body := page(t, later, http.MethodGet, h.consoleURL+"/refund-point", nil); !strings.Contains(captureRow(body, second.GetNumber()), "due now") {
		t.Fatalf("the capture list past the due date:\n%s", body)
	}
	h.clock.Set(t0.AddDate(0, 1, 0))
	// The page as the refund point sees it, for review.
	tab := browser(t)
	run(t, tab, "sign in as the refund point", chromedp.Navigate(h.link(t, refundJFB)), chromedp.WaitVisible(chromedp.CSS("#rp_form_number")))
	if got := focused(t, tab); got != "rp_form_number" {
		t.Errorf("the refund point page opens with the focus on %q, want the form number", got)
	}
	if got := text(t, tab, "#captures-due"); !strings.Contains(got, second.GetNumber()) || !strings.Contains(got, "****0456") {
		t.Errorf("the capture list in the browser:\n%s", got)
	}
	screenshot(t, tab, "refund-point")
	if strings.Contains(h.logs.String(), "R1357913") {
		t.Error("the log carries the clear document number")
	}
}

// captureRow is the row of the refund point's capture list that names the form ("": none).
func captureRow(body, number string) string {
	start := strings.Index(body, `id="captures-due"`)
	if start < 0 {
		return ""
	}
	list := body[start:]
	list = list[:strings.Index(list, "</table>")]
	for _, row := range strings.Split(list, "<tr") {
		if strings.Contains(row, ">"+number+"<") {
			return row
		}
	}
	return ""
}
