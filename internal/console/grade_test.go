package console_test

import (
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"
)

// TestOfficialSetsAStoresGrade: the stores page changes a store's credit grade with a
// reason; the retry of the same submission (same request_id) changes nothing more and
// leaves one audit event; a bad grade, no reason and an exited store are refused with
// the API's words; the action is there in Chinese too.
func TestOfficialSetsAStoresGrade(t *testing.T) {
	h := newHarness(t)
	c := h.browserClient(t)
	csrf := h.signIn(t, c, official)
	code, body := page(t, c, http.MethodGet, h.consoleURL+"/official/stores?q=S-JFB-1", nil)
	if code != http.StatusOK || !strings.Contains(body, `value="grade" class="setgrade">Set grade</button>`) || !strings.Contains(body, `<option selected>A</option>`) {
		t.Fatalf("the stores page offers no grade change: %d\n%s", code, body)
	}
	grade := url.Values{"csrf": {csrf}, "action": {"grade"}, "code": {"S-JFB-1"}, "credit_grade": {"B"}, "reason": {"late VAT filings"}, "request_id": {uuid.NewString()}}
	for i := range 2 {
		code, body = page(t, c, http.MethodPost, h.consoleURL+"/official/stores", grade)
		if code != http.StatusOK || !strings.Contains(body, `<span id="notice-detail">S-JFB-1 · B · 2025-06-10`) {
			t.Fatalf("submission %d: %d\n%s", i+1, code, body)
		}
	}
	var stored string
	var events int
	if err := h.pool.QueryRow(ctx(t), `SELECT credit_grade, (SELECT count(*) FROM audit_events WHERE object = 'S-JFB-1' AND action = 'STORE_GRADE_SET'
		AND detail->>'reason' = 'late VAT filings' AND detail->>'from' = 'A' AND detail->>'to' = 'B' AND detail->>'effective_date' = '2025-06-10')
		FROM stores WHERE code = 'S-JFB-1'`).Scan(&stored, &events); err != nil {
		t.Fatal(err)
	}
	if stored != "B" || events != 1 {
		t.Errorf("after two submissions of one change: grade %s, %d audit events, want B and 1", stored, events)
	}
	if _, body := page(t, c, http.MethodGet, h.consoleURL+"/official/stores?q=S-JFB-1", nil); !strings.Contains(body, `<option selected>B</option>`) {
		t.Errorf("the stores page after the change:\n%s", body)
	}

	exit := url.Values{"csrf": {csrf}, "action": {"exit"}, "code": {"S-JFB-2"}, "reason": {"closed"}, "request_id": {uuid.NewString()}}
	if code, body := page(t, c, http.MethodPost, h.consoleURL+"/official/stores", exit); code != http.StatusOK {
		t.Fatalf("exit S-JFB-2: %d\n%s", code, body)
	}
	for _, r := range []struct {
		code, grade, reason, want string
	}{
		{"S-JFB-1", "C", "rating", "credit_grade: must be A, B or M"},
		{"S-JFB-1", "M", "", "reason: is required"},
		{"S-JFB-2", "A", "reopened", "store S-JFB-2 has exited; its grade no longer changes"},
	} {
		v := url.Values{"csrf": {csrf}, "action": {"grade"}, "code": {r.code}, "credit_grade": {r.grade}, "reason": {r.reason}, "request_id": {uuid.NewString()}}
		code, body := page(t, c, http.MethodPost, h.consoleURL+"/official/stores", v)
		if code != http.StatusUnprocessableEntity || !strings.Contains(html.UnescapeString(body), r.want) {
			t.Errorf("grade %s of %s, reason %q: %d, want %q\n%s", r.grade, r.code, r.reason, code, r.want, body)
		}
	}
	if err := h.pool.QueryRow(ctx(t), `SELECT string_agg(code || ':' || credit_grade, ',' ORDER BY code) FROM stores WHERE code IN ('S-JFB-1', 'S-JFB-2')`).Scan(&stored); err != nil || stored != "S-JFB-1:B,S-JFB-2:A" {
		t.Errorf("after the refusals: %s (%v)", stored, err)
	}

	// In Chinese.
	lang := url.Values{"csrf": {csrf}, "lang": {"zh-CN"}, "back": {"/official/stores"}}
	if code, _ := page(t, c, http.MethodPost, h.consoleURL+"/lang", lang); code != http.StatusSeeOther {
		t.Fatalf("switch to Chinese: %d", code)
	}
	if _, body := page(t, c, http.MethodGet, h.consoleURL+"/official/stores?q=S-JFB-1", nil); !strings.Contains(body, `class="setgrade">调整等级</button>`) ||
		!strings.Contains(body, `aria-label="信用等级"`) {
		t.Errorf("the stores page in Chinese:\n%s", body)
	}

	// In Chromium, for review: the stores page with its actions, in Chinese (the session's
	// language) and in English.
	tab := browser(t)
	run(t, tab, "sign in as official", chromedp.Navigate(h.link(t, official)), chromedp.WaitVisible(chromedp.CSS("#t-paid")))
	run(t, tab, "stores", chromedp.Navigate(h.consoleURL+"/official/stores"), chromedp.WaitVisible(chromedp.CSS("#store-S-JFB-1 button.setgrade")),
		chromedp.SetValue(chromedp.CSS(`#store-S-JFB-1 form.grade select`), "M"),
		chromedp.SendKeys(chromedp.CSS(`#store-S-JFB-1 form.grade input[name="reason"]`), "tax arrears"),
		chromedp.Click(chromedp.CSS("#store-S-JFB-1 button.setgrade")), chromedp.WaitVisible(chromedp.CSS("#notice")))
	if got := text(t, tab, "#notice"); !strings.Contains(got, "S-JFB-1 · M ·") {
		t.Errorf("notice after setting the grade in Chromium: %q", got)
	}
	screenshot(t, tab, "official-stores-grade")
	run(t, tab, "切换中文", chromedp.Click(chromedp.CSS("#lang-switch")), chromedp.WaitVisible(chromedp.CSS(`html[lang="zh-CN"] #store-S-JFB-1`)))
	screenshot(t, tab, "official-stores-grade-zh")
}
