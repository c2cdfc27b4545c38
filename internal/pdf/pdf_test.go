package pdf_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"taxrefund/internal/pdf"
)

// TestRenderA4AndRoll renders a page with Chinese, Japanese, Korean and Arabic text on both
// papers and reads the text back out of the PDF; the roll is one page as long as the text.
func TestRenderA4AndRoll(t *testing.T) {
	r, err := pdf.Start(pdf.Options{Timeout: 3 * time.Minute}) // the test machine may be busy
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	html := `<!DOCTYPE html><html><head><meta charset="utf-8"></head><body style="font-family: 'Noto Sans CJK SC', 'DejaVu Sans'">
<p>离境退税申请单</p><p lang="ja">出国時税還付申請書</p><p lang="ko">출국 세금 환급 신청서</p><p lang="ar" dir="rtl">نموذج</p>` +
		strings.Repeat("<p>line</p>", 60) + `<p>THE END</p></body></html>`
	for _, paper := range []pdf.Paper{pdf.A4, pdf.Receipt80} {
		start := time.Now()
		out, err := r.Render(context.Background(), html, paper)
		if err != nil {
			t.Fatalf("%s: %v", paper.Name, err)
		}
		t.Logf("%s: %d bytes in %v", paper.Name, len(out), time.Since(start))
		file := filepath.Join(t.TempDir(), "p.pdf")
		if err := os.WriteFile(file, out, 0o644); err != nil {
			t.Fatal(err)
		}
		info, err := exec.Command("pdfinfo", file).Output()
		if err != nil {
			t.Fatalf("pdfinfo: %v", err)
		}
		txt, err := exec.Command("pdftotext", file, "-").Output()
		if err != nil {
			t.Fatalf("pdftotext: %v", err)
		}
		for _, want := range []string{"离境退税申请单", "出国時税還付申請書", "출국 세금 환급 신청서", "THE END"} {
			if !strings.Contains(string(txt), want) {
				t.Errorf("%s: text lacks %q", paper.Name, want)
			}
		}
		if paper == pdf.Receipt80 && !strings.Contains(string(info), "Pages:           1\n") {
			t.Errorf("%s: the roll is not one page:\n%s", paper.Name, info)
		}
		if paper == pdf.A4 && !strings.Contains(string(info), "(A4)") {
			t.Errorf("%s: not A4 paper:\n%s", paper.Name, info)
		}
		// Every font is embedded: DejaVu as a TrueType subset, Noto CJK (CFF outlines) as
		// Type 3 glyph programs of the glyphs used, which is how Chromium's PDF back end
		// (Skia) embeds CFF fonts.
		fonts, err := exec.Command("pdffonts", file).Output()
		if err != nil {
			t.Fatalf("pdffonts: %v", err)
		}
		rows := strings.Split(strings.TrimSpace(string(fonts)), "\n")[2:]
		if len(rows) == 0 {
			t.Errorf("%s: no font in the PDF", paper.Name)
		}
		for _, row := range rows {
			f := strings.Fields(row)
			if len(f) < 6 || f[len(f)-5] != "yes" {
				t.Errorf("%s: font not embedded: %s", paper.Name, row)
			}
		}
	}
	// Content wider than the paper is a layout error, not a shrunken page.
	_, err = r.Render(context.Background(), `<div style="width: 200mm">wide</div>`, pdf.Receipt80)
	if err == nil || !strings.Contains(err.Error(), "wider") {
		t.Errorf("too wide a page: %v; want ErrTooWide", err)
	}
}
