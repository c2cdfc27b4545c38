package console_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	authorityv1 "taxrefund/api/taxrefund/authority/v1"
)

// TestOfficialKeepsTheRegistry drives the official's registry pages in Chromium: a new
// cash cap from a date, a store suspended and reinstated with reasons, the hash chains
// verified on demand; each outcome checked in the database and through the API.
func TestOfficialKeepsTheRegistry(t *testing.T) {
	h := newHarness(t)
	h.issue(t, "P1122334", "INV-R") // something in the journal
	tab := browser(t)
	run(t, tab, "sign in as official", chromedp.Navigate(h.link(t, official)), chromedp.WaitVisible(chromedp.CSS("#t-paid")))
	noError(t, tab, "the month")

	// The month as a PDF, for signature: downloaded from the month's page, read back as text.
	c := h.browserClient(t)
	h.signIn(t, c, official)
	resp, err := c.Get(h.consoleURL + "/official/pdf?month=2025-06")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/pdf" || !bytes.HasPrefix(doc, []byte("%PDF-")) {
		t.Fatalf("GET /official/pdf: %d %s, %d bytes (%v)", resp.StatusCode, resp.Header.Get("Content-Type"), len(doc), err)
	}
	pdfPath := filepath.Join(moduleRoot(t), ".data", "console-screenshots", "official-month.pdf")
	if err := os.MkdirAll(filepath.Dir(pdfPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pdfPath, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("pdftotext", "-layout", pdfPath, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	for _, want := range []string{"Departure tax refunds of the month 2025-06", "Issuing office: taxrefund://authority/sat", "150.00", "CNY (yuan)", "Prepared by", "Approved by", "25-06"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the month's PDF has no %q:\n%s", want, out)
		}
	}

	// Parameters: a cash cap of 6,000.00 from 2025-07-01.
	run(t, tab, "set a parameter", chromedp.Navigate(h.consoleURL+"/official/parameters"), chromedp.WaitVisible(chromedp.CSS("#set-param")),
		chromedp.SetValue(chromedp.CSS(`#set-param select[name="name"]`), "cash_cap"),
		chromedp.SetValue(chromedp.CSS(`#set-param input[name="valid_from"]`), "2025-07-01"),
		chromedp.SendKeys(chromedp.CSS(`#set-param input[name="value"]`), "6000"),
		chromedp.SendKeys(chromedp.CSS(`#set-param input[name="note"]`), "Circular 2025-7"),
		chromedp.Click(chromedp.CSS("#set-param button")), chromedp.WaitVisible(chromedp.CSS("#notice")))
	if got := text(t, tab, "#params"); !strings.Contains(got, "2025-07-01") || !strings.Contains(got, "6,000.00") || !strings.Contains(got, "Circular 2025-7") {
		t.Fatalf("parameters after setting the cap:\n%s", got)
	}
	screenshot(t, tab, "official-parameters")
	var n int
	if err := h.pool.QueryRow(ctx(t), `SELECT count(*) FROM parameters WHERE name = 'cash_cap' AND scope = '' AND valid_from = '2025-07-01' AND value = 6000`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("database: %d cash caps from 2025-07-01 (%v), want 1", n, err)
	}
	ps, err := h.authority(t).ListParameters(ctx(t), &authorityv1.ListParametersRequest{Name: "cash_cap"})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range ps.GetParameters() {
		found = found || p.GetValidFrom() == "2025-07-01"
	}
	if !found {
		t.Fatalf("API: no cash cap from 2025-07-01 in %v", ps.GetParameters())
	}

	// The registry: S-JFB-1 suspended, then reinstated, each with a reason.
	row := "#store-S-JFB-1"
	status := func() (string, authorityv1.StoreStatus) {
		var db string
		if err := h.pool.QueryRow(ctx(t), `SELECT status FROM stores WHERE code = 'S-JFB-1'`).Scan(&db); err != nil {
			t.Fatal(err)
		}
		st, err := h.authority(t).GetStore(ctx(t), &authorityv1.GetStoreRequest{Code: "S-JFB-1"})
		if err != nil {
			t.Fatal(err)
		}
		return db, st.GetStore().GetStatus()
	}
	run(t, tab, "suspend", chromedp.Navigate(h.consoleURL+"/official/stores?q=S-JFB-1"), chromedp.WaitVisible(chromedp.CSS(row)),
		chromedp.SendKeys(chromedp.CSS(row+` input[name="reason"]`), "Invoices under review"),
		chromedp.Click(chromedp.CSS(row+" button.suspend")), chromedp.WaitVisible(chromedp.CSS("#notice")))
	if got := text(t, tab, row); !strings.Contains(got, "Suspended") {
		t.Fatalf("store row after suspending: %q", got)
	}
	if got := text(t, tab, "#notice"); !strings.Contains(got, "S-JFB-1 · SUSPENDED · 2025-06-10") {
		t.Fatalf("notice after suspending: %q", got)
	}
	screenshot(t, tab, "official-store-suspended")
	if db, api := status(); db != "SUSPENDED" || api != authorityv1.StoreStatus_STORE_STATUS_SUSPENDED {
		t.Fatalf("after suspending: database %s, API %v", db, api)
	}
	run(t, tab, "reinstate", chromedp.SendKeys(chromedp.CSS(row+` input[name="reason"]`), "Review closed"),
		chromedp.Click(chromedp.CSS(row+" button.reinstate")), chromedp.WaitVisible(chromedp.CSS(row+" button.suspend")))
	if got := text(t, tab, row); !strings.Contains(got, "Active") {
		t.Fatalf("store row after reinstating: %q", got)
	}
	if db, api := status(); db != "ACTIVE" || api != authorityv1.StoreStatus_STORE_STATUS_ACTIVE {
		t.Fatalf("after reinstating: database %s, API %v", db, api)
	}
	var reasons int
	if err := h.pool.QueryRow(ctx(t), `SELECT count(*) FROM audit_events WHERE object = 'S-JFB-1' AND detail->>'reason' IN ('Invoices under review', 'Review closed')`).Scan(&reasons); err != nil {
		t.Fatal(err)
	} else if reasons != 2 {
		t.Errorf("audit trail: %d events carry the two reasons, want 2", reasons)
	}

	// The journal: heads shown, then verified on demand.
	run(t, tab, "the journal", chromedp.Navigate(h.consoleURL+"/official/journal"), chromedp.WaitVisible(chromedp.CSS("#chain-journal")))
	noError(t, tab, "the journal's heads")
	run(t, tab, "verify now", chromedp.Navigate(h.consoleURL+"/official/journal"), chromedp.WaitVisible(chromedp.CSS("#heads")),
		chromedp.Click(chromedp.CSS("#verify")), chromedp.WaitVisible(chromedp.CSS("#verify-result")))
	noError(t, tab, "the journal")
	if got := text(t, tab, "#verify-result"); !strings.Contains(got, "verified intact") {
		t.Fatalf("verification result: %q", got)
	}
	vc, err := h.authority(t).VerifyChains(ctx(t), &authorityv1.VerifyChainsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range vc.GetChains() {
		got := text(t, tab, "#chain-"+c.GetChain())
		if !strings.Contains(got, "intact") || (c.GetHead().GetHash() != "" && !strings.Contains(got, c.GetHead().GetHash())) {
			t.Errorf("chain %s row %q; API head #%d %s", c.GetChain(), got, c.GetHead().GetSeq(), c.GetHead().GetHash())
		}
	}
	screenshot(t, tab, "official-journal")
	run(t, tab, "switch to Chinese", chromedp.Click(chromedp.CSS("#lang-switch")), chromedp.WaitVisible(chromedp.CSS(`html[lang="zh-CN"] #heads`)))
	screenshot(t, tab, "official-journal-zh")
}

// noError fails the test when the page shows a refusal.
func noError(t *testing.T, tab context.Context, what string) {
	t.Helper()
	msg, err := chromedp.Run(tab, chromedp.Evaluate[string](`(function(){var e=document.getElementById("error");return e?e.textContent:""})()`))
	if err != nil {
		t.Fatal(err)
	}
	if msg != "" {
		t.Fatalf("%s: the page shows an error: %s", what, msg)
	}
}
