package console_test

import (
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestCustomsInspectsARedForm: with a minimum age of 60 minutes in force, a form a minute
// old is shown RED with its reason; its confirmation is refused with the reason; the
// officer records a passed inspection through the page; the confirmation then goes through.
func TestCustomsInspectsARedForm(t *testing.T) {
	h := newHarness(t)
	if _, err := h.pool.Exec(ctx(t), `INSERT INTO parameters (name, scope, valid_from, value) VALUES ('risk_min_age_minutes', '', '2015-01-01', 60)`); err != nil {
		t.Fatal(err)
	}
	form := h.issue(t, "R5566778", "INV-R1")
	h.clock.Set(t0.Add(time.Minute))
	c := h.browserClient(t)
	csrf := h.signIn(t, c, customsCKG)
	code, body := page(t, c, http.MethodPost, h.consoleURL+"/customs", url.Values{"csrf": {csrf}, "action": {"find"}, "form_number": {form.GetNumber()}})
	body = html.UnescapeString(body)
	if code != http.StatusOK || !strings.Contains(body, "risk-RED") || !strings.Contains(body, "issued recently: 1m00s before the confirmation (minimum 60 minutes)") ||
		!strings.Contains(body, `name="action" value="inspect"`) {
		t.Fatalf("a form a minute old: %d\n%s", code, body)
	}
	confirm := url.Values{"csrf": {csrf}, "action": {"confirm"}, "form_number": {form.GetNumber()}, "request_id": {uuid.NewString()},
		"doc_type": {"PASSPORT"}, "doc_number": {"R5566778"}, "doc_country": {"FR"}, "line": {"1", "2"}, "q1": {"2"}, "q2": {"1"}}
	code, body = page(t, c, http.MethodPost, h.consoleURL+"/customs", confirm)
	if code != http.StatusUnprocessableEntity || !strings.Contains(html.UnescapeString(body), "inspection required: issued recently") {
		t.Fatalf("confirming a RED form: %d\n%s", code, body)
	}
	code, body = page(t, c, http.MethodPost, h.consoleURL+"/customs", url.Values{"csrf": {csrf}, "action": {"inspect"}, "form_number": {form.GetNumber()},
		"request_id": {uuid.NewString()}, "result": {"PASSED"}, "note": {"scarves and tea seen"}})
	if code != http.StatusOK || !strings.Contains(body, "Inspection recorded.") || !strings.Contains(body, "Inspection: Passed") {
		t.Fatalf("recording the inspection: %d\n%s", code, body)
	}
	confirm.Set("request_id", uuid.NewString())
	code, body = page(t, c, http.MethodPost, h.consoleURL+"/customs", confirm)
	if code != http.StatusOK || !strings.Contains(body, "Export confirmed.") {
		t.Fatalf("confirming after the inspection: %d\n%s", code, body)
	}
	var officer, note string
	if err := h.pool.QueryRow(ctx(t), `SELECT officer, note FROM inspections`).Scan(&officer, &note); err != nil || officer != "officer-1" || note != "scarves and tea seen" {
		t.Fatalf("inspection row: %q %q %v", officer, note, err)
	}
}
