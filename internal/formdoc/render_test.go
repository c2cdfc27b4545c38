package formdoc_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"taxrefund/internal/formdoc"
	"taxrefund/internal/pdf"
	"taxrefund/internal/refund"
)

// keep writes the PNG pages to this directory, to look at them.
var keep = flag.String("keep", "", "directory to keep the rendered PDFs and PNG pages in")

// One browser for the whole test binary.
var renderer *pdf.Renderer

func TestMain(m *testing.M) {
	flag.Parse()
	r, err := pdf.Start(pdf.Options{Timeout: 3 * time.Minute}) // the test machine may be busy
	if err != nil {
		fmt.Fprintln(os.Stderr, "formdoc tests need Chromium:", err)
		os.Exit(1)
	}
	renderer = r
	code := m.Run()
	r.Close()
	os.Exit(code)
}

const fullDocument = "E12345678"

func sample(number string) formdoc.Document {
	d := func(s string) time.Time { t, _ := time.Parse(time.DateOnly, s); return t }
	return formdoc.Document{
		Number: number, StoreName: "Jiefangbei Department Store (demo)", StoreCreditCode: "91500103AY4CL12THR",
		BlockName: "Jiefangbei–Chaotianmen refund block", PurchaseDate: d("2026-12-05"),
		IssuedAt: time.Date(2026, 12, 5, 6, 30, 0, 0, time.UTC), ExportDeadline: d("2027-03-05"),
		DocType: "PASSPORT", DocMasked: "*****5678", Nationality: "FR",
		Lines: []formdoc.Line{
			{Description: "Silk scarf 丝巾", Quantity: 2, VATRate: decimal.RequireFromString("0.13"), Amount: decimal.RequireFromString("1000.00"), InvoiceNumber: "INV-0001"},
			{Description: "Tea 茶叶 <b>&", Quantity: 1, VATRate: decimal.RequireFromString("0.09"), Amount: decimal.RequireFromString("500.00"), InvoiceNumber: "INV-0002"},
		},
		Invoices: []formdoc.Invoice{{Number: "INV-0001", Date: d("2026-12-05")}, {Number: "INV-0002", Date: d("2026-12-05")}},
		Eligible: decimal.RequireFromString("1500.00"), Gross: decimal.RequireFromString("150.00"),
		Ports: []formdoc.Port{{Code: "CKG", Name: "Chongqing Jiangbei International Airport"}, {Code: "TFU", Name: "Chengdu Tianfu International Airport"}},
		Print: 1,
	}
}

// read renders d and reads it back as a reader would: the text with pdftotext, the
// barcodes from a 200 dpi image with zbarimg.
type readBack struct {
	text  string
	codes []string
	pages []string
}

func render(t *testing.T, d formdoc.Document, f formdoc.Format, langs []formdoc.Lang, name string) readBack {
	t.Helper()
	html, err := formdoc.HTML(d, f, langs)
	if err != nil {
		t.Fatal(err)
	}
	paper := pdf.A4
	paper.Footer = formdoc.Footer(d)
	if f == formdoc.Receipt80 {
		paper = pdf.Receipt80
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := renderer.Render(ctx, html, paper)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if *keep != "" {
		dir = *keep
	}
	file := filepath.Join(dir, name+".pdf")
	if err := os.WriteFile(file, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return readPDF(t, file)
}

func readPDF(t *testing.T, file string) readBack {
	t.Helper()
	txt, err := exec.Command("pdftotext", "-layout", file, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	prefix := strings.TrimSuffix(file, ".pdf")
	if out, err := exec.Command("pdftoppm", "-r", "200", "-png", file, prefix).CombinedOutput(); err != nil {
		t.Fatalf("pdftoppm: %v: %s", err, out)
	}
	pages, _ := filepath.Glob(prefix + "*.png")
	if len(pages) == 0 {
		t.Fatal("pdftoppm made no page")
	}
	var codes []string
	for _, p := range pages {
		// zbarimg exits 4 when it finds no code: that is an answer, not an error here.
		out, _ := exec.Command("zbarimg", "--quiet", p).Output()
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if l != "" {
				codes = append(codes, l)
			}
		}
	}
	return readBack{text: string(txt), codes: codes, pages: pages}
}

func TestRenderEveryFormatAndLanguage(t *testing.T) {
	formats := map[string]formdoc.Format{"a4": formdoc.A4, "receipt": formdoc.Receipt80}
	for fname, f := range formats {
		for _, extra := range append([]formdoc.Lang{""}, formdoc.Extra...) {
			langs := formdoc.Languages("", extra)
			name := fmt.Sprintf("%s-%s", fname, strings.Join(func() []string {
				s := make([]string, len(langs))
				for i, l := range langs {
					s[i] = string(l)
				}
				return s
			}(), "-"))
			t.Run(name, func(t *testing.T) {
				number := refund.NewFormNumber()
				got := render(t, sample(number), f, langs, name)
				want := map[string]bool{"CODE-128:" + number: false, "QR-Code:" + number: false}
				for _, c := range got.codes {
					if _, ok := want[c]; !ok {
						t.Errorf("decoded %q, not the form number %s", c, number)
					}
					want[c] = true
				}
				for c, seen := range want {
					if !seen {
						t.Errorf("%s not decoded from %v (decoded %q)", c, got.pages, got.codes)
					}
				}
				if !strings.Contains(got.text, number) {
					t.Errorf("text has no form number %s", number)
				}
				if !strings.Contains(got.text, "****5678") {
					t.Errorf("text has no masked document ****5678:\n%s", got.text)
				}
				if strings.Contains(got.text, fullDocument) || strings.Contains(got.text, "*****5678") {
					t.Errorf("text shows more of the document than its last four")
				}
				for _, s := range []string{"离境退税申请单", "Departure Tax Refund Application Form", "150.00", "1500.00", "2027-03-05", "CKG"} {
					if !strings.Contains(got.text, s) {
						t.Errorf("text lacks %q", s)
					}
				}
				if extra != "" && extra != formdoc.Arabic {
					// pdftotext gives Arabic in presentation forms, which a plain
					// comparison cannot match; its shaping is checked below.
					if title := titleOf(extra); !strings.Contains(got.text, title) {
						t.Errorf("text lacks the %s title %q", extra, title)
					}
				}
				if strings.Contains(got.text, "REPRINT") || strings.Contains(got.text, "VOID") {
					t.Errorf("a first print of a live form is marked reprint or void")
				}
			})
		}
	}
}

func titleOf(l formdoc.Lang) string {
	return formdoc.Title(l)
}

func TestVoidAndReprintMarks(t *testing.T) {
	for fname, f := range map[string]formdoc.Format{"a4": formdoc.A4, "receipt": formdoc.Receipt80} {
		t.Run(fname, func(t *testing.T) {
			number := refund.NewFormNumber()
			d := sample(number)
			d.Void, d.Print = true, 3
			d.Nationality = "JP"
			got := render(t, d, f, formdoc.Languages(d.Nationality, ""), fname+"-void-reprint")
			for _, want := range []string{"REPRINT 2", "补打 2", "再発行 2", "VOID", "已作废", "This form has been voided"} {
				if !strings.Contains(got.text, want) {
					t.Errorf("text lacks %q", want)
				}
			}
			if len(got.codes) != 2 {
				t.Errorf("decoded %q; want the Code 128 and the QR code of %s", got.codes, number)
			}
		})
	}
}

// BenchmarkRender is the time of one print: the HTML and barcodes, and Chromium's layout
// and PDF, in a warm browser (BENCH.md).
func BenchmarkRender(b *testing.B) {
	for name, f := range map[string]formdoc.Format{"A4": formdoc.A4, "Receipt80": formdoc.Receipt80} {
		paper := pdf.A4
		if f == formdoc.Receipt80 {
			paper = pdf.Receipt80
		}
		b.Run(name, func(b *testing.B) {
			d := sample(refund.NewFormNumber())
			for b.Loop() {
				html, err := formdoc.HTML(d, f, formdoc.Languages("FR", ""))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := renderer.Render(context.Background(), html, paper); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// withLines gives d n lines of goods with long descriptions, and their totals.
func withLines(d formdoc.Document, n int) formdoc.Document {
	d.Lines = nil
	total := decimal.Zero
	for i := range n {
		amount := decimal.New(int64(100+i), 0)
		d.Lines = append(d.Lines, formdoc.Line{
			Description: fmt.Sprintf("Cashmere knitted cardigan, hand-finished 羊绒开衫 %d", i+1), Quantity: 1,
			VATRate: decimal.RequireFromString("0.13"), Amount: amount, InvoiceNumber: fmt.Sprintf("INV-%04d", i+1)})
		total = total.Add(amount)
	}
	d.Eligible, d.Gross = total, total.Mul(decimal.RequireFromString("0.11")).Round(2)
	return d
}

// TestA4PagesCarryTheNumber: a form of ten lines fits one A4 page in the longest
// three-language sets; a longer form runs on, and every page names the form and counts
// the pages, so a page that comes apart from the others still says whose it is.
func TestA4PagesCarryTheNumber(t *testing.T) {
	cases := []struct {
		lines    int
		extra    formdoc.Lang
		multiple bool
	}{
		{10, formdoc.Russian, false},
		{10, formdoc.German, false},
		{10, formdoc.Arabic, false},
		{45, formdoc.Russian, true},
	}
	for _, c := range cases {
		name := fmt.Sprintf("a4-%d-lines-%s", c.lines, c.extra)
		t.Run(name, func(t *testing.T) {
			number := refund.NewFormNumber()
			got := render(t, withLines(sample(number), c.lines), formdoc.A4, formdoc.Languages("", c.extra), name)
			n := len(got.pages)
			if !c.multiple && n != 1 {
				t.Fatalf("%d lines in %s print on %d pages; want one", c.lines, c.extra, n)
			}
			if c.multiple && n < 2 {
				t.Fatalf("%d lines print on one page: the case does not test running on", c.lines)
			}
			for p := 1; p <= n; p++ {
				txt, err := exec.Command("pdftotext", "-f", fmt.Sprint(p), "-l", fmt.Sprint(p), "-layout",
					strings.TrimSuffix(got.pages[0], filepath.Base(got.pages[0]))+name+".pdf", "-").Output()
				if err != nil {
					t.Fatalf("pdftotext page %d: %v", p, err)
				}
				if !strings.Contains(string(txt), number) {
					t.Errorf("page %d does not name the form %s", p, number)
				}
				if want := fmt.Sprintf("%d / %d", p, n); !strings.Contains(string(txt), want) {
					t.Errorf("page %d lacks its count %q", p, want)
				}
			}
			if len(got.codes) != 2 {
				t.Errorf("decoded %q; want the Code 128 and the QR code of %s", got.codes, number)
			}
		})
	}
}
