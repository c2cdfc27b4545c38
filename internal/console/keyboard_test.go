package console_test

import (
	"testing"

	"github.com/chromedp/chromedp"
)

// TestDeskPagesByKeyboardOnly: an officer with a barcode scanner (which types and presses
// Enter) and a cashier use the desk pages with the keyboard alone: Tab moves through the
// fields in reading order, Enter submits.
func TestDeskPagesByKeyboardOnly(t *testing.T) {
	h := newHarness(t)
	form := h.issue(t, "G2468013", "INV-K")
	number := form.GetNumber()

	tab := browser(t)
	run(t, tab, "sign in as customs", chromedp.Navigate(h.link(t, customsCKG)), chromedp.WaitVisible(chromedp.CSS("#form_number")))
	if got := focused(t, tab); got != "form_number" {
		t.Fatalf("the customs page opens with the focus on %q, want the form number (for the scanner)", got)
	}
	run(t, tab, "scan the barcode", chromedp.KeyEvent(number+"\r"), chromedp.WaitVisible(chromedp.CSS("#form-"+number)))
	tabTo(t, tab, "q1")
	run(t, tab, "one scarf of two", chromedp.KeyEvent("\b1"))
	tabTo(t, tab, "doc_number")
	run(t, tab, "type the passport", chromedp.KeyEvent("G2468013"))
	tabTo(t, tab, "doc_country")
	run(t, tab, "type the country", chromedp.KeyEvent("FR"))
	tabTo(t, tab, "BUTTON")
	run(t, tab, "confirm with Enter", chromedp.KeyEvent("\r"), chromedp.WaitVisible(chromedp.CSS("#notice")))
	screenshot(t, tab, "customs-keyboard")
	var state string
	var q1 int32
	if err := h.pool.QueryRow(ctx(t), `SELECT f.state, l.confirmed_qty FROM forms f JOIN form_lines l ON l.form_id = f.id AND l.line_no = 1 WHERE f.number = $1`, number).Scan(&state, &q1); err != nil {
		t.Fatal(err)
	}
	if state != "VERIFIED" || q1 != 1 {
		t.Fatalf("after the keyboard confirmation: %s, line 1 confirmed %d; want VERIFIED, 1", state, q1)
	}

	tab = browser(t)
	run(t, tab, "sign in as cashier", chromedp.Navigate(h.link(t, cashierCKG)), chromedp.WaitVisible(chromedp.CSS("#doc_number")))
	if got := focused(t, tab); got != "doc_number" {
		t.Fatalf("the cashier page opens with the focus on %q, want the document number", got)
	}
	run(t, tab, "type the passport", chromedp.KeyEvent("G2468013"))
	tabTo(t, tab, "doc_country")
	run(t, tab, "country and Enter", chromedp.KeyEvent("FR\r"), chromedp.WaitVisible(chromedp.CSS("#pay-form")))
	tabTo(t, tab, "receipt")
	run(t, tab, "receipt reference", chromedp.KeyEvent("SIG-K1"))
	tabTo(t, tab, "pay")
	run(t, tab, "pay with Enter", chromedp.KeyEvent("\r"), chromedp.WaitVisible(chromedp.CSS("#receipt-card")))
	if got := text(t, tab, "#net-total"); got != "75.00" {
		t.Fatalf("receipt net %q, want 75.00", got)
	}
	tabTo(t, tab, "print")
	if err := h.pool.QueryRow(ctx(t), `SELECT state FROM forms WHERE number = $1`, number).Scan(&state); err != nil {
		t.Fatal(err)
	}
	if state != "REFUNDED" {
		t.Fatalf("after the keyboard payment: %s, want REFUNDED", state)
	}
}
