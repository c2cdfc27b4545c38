package console_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"taxrefund/internal/console"
)

// acceptChinese asks every request in Chinese, as a browser set to zh-CN does.
type acceptChinese struct{ http.RoundTripper }

func (a acceptChinese) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Accept-Language", "zh-CN,zh;q=0.9")
	return a.RoundTripper.RoundTrip(r)
}

var issuedTile = regexp.MustCompile(`<strong id="t-issued">(\d+)</strong>`)

// TestOfficialMonthFromTheReportCache: with -console-report-max-age the month's page
// shows the figures of the report cache, saying as of when (10:00:00 in Shanghai, the
// read of the first view, at sign-in) in the official's language, with a link that recomputes them now;
// a page computed now says nothing of the kind.
func TestOfficialMonthFromTheReportCache(t *testing.T) {
	h := newHarness(t, func(d *console.Deps) { d.ReportMaxAge = time.Minute })
	h.issue(t, "C1000001", "INV-C1")
	c := h.browserClient(t)
	h.signIn(t, c, official)
	view := func(what, query string) (string, string) {
		t.Helper()
		code, body := page(t, c, http.MethodGet, h.consoleURL+"/official?month=2025-06"+query, nil)
		m := issuedTile.FindStringSubmatch(body)
		if code != http.StatusOK || m == nil {
			t.Fatalf("%s: status %d, no forms issued tile", what, code)
		}
		return m[1], body
	}

	// Signing in opened the month's page: its figures, read at 10:00:00, are cached.
	h.issue(t, "C1000002", "INV-C2")
	h.clock.Set(t0.Add(20 * time.Second))
	issued, body := view("second view", "")
	if issued != "1" {
		t.Errorf("second view: %s issued, want the cached 1", issued)
	}
	if !strings.Contains(body, `<p class="meta" id="as-of">Figures as of <time>10:00:00</time>`) ||
		!strings.Contains(body, `id="recompute" href="/official?month=2025-06&amp;fresh=1"`) {
		t.Errorf("second view: no as-of line for 10:00:00 with a recompute link:\n%s", body)
	}
	issued, body = view("recompute now", "&fresh=1")
	if issued != "2" || strings.Contains(body, `id="as-of"`) {
		t.Errorf("recompute now: %s issued, as-of line %v; want 2 computed now, no as-of line", issued, strings.Contains(body, `id="as-of"`))
	}
	// The recomputed figures serve the next view, as of their own read.
	h.clock.Set(t0.Add(25 * time.Second))
	issued, body = view("after recomputing", "")
	if issued != "2" || !strings.Contains(body, `Figures as of <time>10:00:20</time>`) {
		t.Errorf("after recomputing: %s issued, want the recomputed 2 as of 10:00:20", issued)
	}

	zh := h.browserClient(t)
	zh.Transport = acceptChinese{zh.Transport}
	h.signIn(t, zh, official)
	if _, body := page(t, zh, http.MethodGet, h.consoleURL+"/official?month=2025-06", nil); !strings.Contains(body, `数据截至 <time>10:00:20</time>`) || !strings.Contains(body, "立即重新计算") {
		t.Errorf("the Chinese page has no as-of line for 10:00:20:\n%s", body)
	}
}
