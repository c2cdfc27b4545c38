package console_test

import (
	"bytes"
	"image"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	authorityv1 "taxrefund/api/taxrefund/authority/v1"
)

// TestCustomsSeesARedFormInTheBrowser: with a minimum age of 60 minutes in force and the
// store under review, a form a minute old is RED for two reasons; in Chromium the officer
// sees the RED banner and both reasons, inside the page, in English and in Chinese (the
// rule's name translated), and the inspection form under them. The screenshots are for
// review (.data/console-screenshots/customs-red*.png).
func TestCustomsSeesARedFormInTheBrowser(t *testing.T) {
	h := newHarness(t)
	if _, err := h.pool.Exec(ctx(t), `INSERT INTO parameters (name, scope, valid_from, value) VALUES ('risk_min_age_minutes', '', '2015-01-01', 60)`); err != nil {
		t.Fatal(err)
	}
	if _, err := h.authority(t).SetStoreReview(ctx(t), &authorityv1.SetStoreReviewRequest{RequestId: uuid.NewString(), Code: "S-JFB-1", UnderReview: true,
		Reason: "invoices under review"}); err != nil {
		t.Fatal(err)
	}
	form := h.issue(t, "R1234567", "INV-RED")
	number := form.GetNumber()
	h.clock.Set(t0.Add(time.Minute))

	tab := browser(t)
	run(t, tab, "sign in as customs", chromedp.Navigate(h.link(t, customsCKG)), chromedp.WaitVisible(chromedp.CSS("#form_number")))
	find := func(what string) {
		run(t, tab, what, chromedp.SendKeys(chromedp.CSS("#form_number"), number), chromedp.Click(chromedp.CSS("#find")),
			chromedp.WaitVisible(chromedp.CSS("#form-"+number+" .risk-RED")))
	}
	find("find the RED form")
	noError(t, tab, "the RED form")
	// Both reasons are on the page, visible, and inside the window's width.
	visible, err := chromedp.Run(tab, chromedp.Evaluate[int](`Array.from(document.querySelectorAll(".risk-RED .reasons li")).filter(function(li){
		var r = li.getBoundingClientRect(); return r.height > 0 && r.width > 0 && r.left >= 0 && r.right <= window.innerWidth;}).length`))
	if err != nil || visible != 2 {
		t.Errorf("visible RED reasons: %d (%v), want 2", visible, err)
	}
	got := text(t, tab, "#form-"+number+" .risk-RED")
	for _, want := range []string{"RED: inspect the goods before confirming", "store under review: S-JFB-1",
		"issued recently: 1m00s before the confirmation (minimum 60 minutes)"} {
		if !strings.Contains(got, want) {
			t.Errorf("the RED banner has no %q:\n%s", want, got)
		}
	}
	if n, err := chromedp.Run(tab, chromedp.Evaluate[int](`document.querySelectorAll("#form-`+number+` form.inspect button.inspect").length`)); err != nil || n != 1 {
		t.Errorf("inspection forms: %d (%v), want 1", n, err)
	}
	screenshot(t, tab, "customs-red")

	run(t, tab, "切换中文", chromedp.Click(chromedp.CSS("#lang-switch")), chromedp.WaitVisible(chromedp.CSS(`html[lang="zh-CN"] #form_number`)))
	find("查找红色申请单")
	got = text(t, tab, "#form-"+number+" .risk-RED")
	for _, want := range []string{"红色：确认前须查验货物", "商店受审查", "开具时间过短", "1m00s"} {
		if !strings.Contains(got, want) {
			t.Errorf("the RED banner in Chinese has no %q:\n%s", want, got)
		}
	}
	screenshot(t, tab, "customs-red-zh")
}

// TestMonthPDFAsImage renders June's PDF (a paid form in it) to PNG with pdftoppm at
// 80 dpi, as a reviewer would look at it: one A4 page, and the trend chart's bar drawn
// (pixels of the bar's blue in the page).
func TestMonthPDFAsImage(t *testing.T) {
	h := newHarness(t)
	paid := h.issue(t, "G1234567", "INV-G")
	h.payAt(t, paid, "G1234567", customsCKG, cashierCKG)
	c := h.browserClient(t)
	h.signIn(t, c, official)
	resp, err := c.Get(h.consoleURL + "/official/pdf?month=2025-06")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.HasPrefix(doc, []byte("%PDF-")) {
		t.Fatalf("GET /official/pdf: %d, %d bytes (%v)", resp.StatusCode, len(doc), err)
	}
	dir := filepath.Join(moduleRoot(t), ".data", "console-screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	pdfPath := filepath.Join(dir, "official-month-pdf.pdf")
	if err := os.WriteFile(pdfPath, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	prefix := filepath.Join(dir, "official-month-pdf")
	old, _ := filepath.Glob(prefix + "-*.png")
	for _, f := range old {
		_ = os.Remove(f)
	}
	if out, err := exec.Command("pdftoppm", "-png", "-r", "80", pdfPath, prefix).CombinedOutput(); err != nil {
		t.Fatalf("pdftoppm (poppler-utils): %v\n%s", err, out)
	}
	pages, err := filepath.Glob(prefix + "-*.png")
	if err != nil || len(pages) != 1 {
		t.Fatalf("pages rendered: %v (%v), want 1", pages, err)
	}
	f, err := os.Open(pages[0])
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(f)
	_ = f.Close()
	if err != nil {
		t.Fatal(err)
	}
	// A4 at 80 dpi: 662 × 935 pixels.
	b := img.Bounds()
	if b.Dx() < 650 || b.Dx() > 670 || b.Dy() < 925 || b.Dy() > 945 {
		t.Errorf("page size %v, want A4 at 80 dpi (662 × 935)", b)
	}
	if n := count(img, func(r, g, bl uint32) bool { return r < 0xf000 || g < 0xf000 || bl < 0xf000 }); n < b.Dx()*b.Dy()/50 {
		t.Errorf("the page is nearly blank: %d non-white pixels", n)
	}
	// The bar's blue (#3b6fb6), give or take the rasterizer's blending.
	bar := count(img, func(r, g, bl uint32) bool {
		r, g, bl = r>>8, g>>8, bl>>8
		return bl > 150 && bl > r+80 && bl > g+40
	})
	if bar < 100 {
		t.Errorf("no chart bar drawn: %d pixels of the bar's blue", bar)
	}
}

func count(img image.Image, match func(r, g, b uint32) bool) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if match(r, g, bl) {
				n++
			}
		}
	}
	return n
}
