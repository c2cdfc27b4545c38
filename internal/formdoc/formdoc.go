// Package formdoc lays out the printed refund form (离境退税申请单) as a self-contained
// HTML page for package pdf: the form number as a Code 128 barcode and a QR code (PNG data
// URIs, drawn by github.com/boombuler/barcode), the store, the purchase, each line, the
// refund the traveller can expect, the traveller's document masked to its last four
// characters, where and by when to claim, and what to show at customs; in Chinese and
// English, and in the traveller's language when the form speaks it. Arabic is laid out
// right to left and shaped (joined letters) by the browser's own text shaper.
package formdoc

import (
	"bytes"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"image/png"
	"strings"
	"time"

	"github.com/boombuler/barcode"
	"github.com/boombuler/barcode/code128"
	"github.com/boombuler/barcode/qr"
	"github.com/shopspring/decimal"
)

// Format is the paper the form is laid out for.
type Format int

const (
	// A4 is a full page.
	A4 Format = iota + 1
	// Receipt80 is an 80 mm POS receipt roll.
	Receipt80
)

// Line is a line of goods.
type Line struct {
	Description   string
	Quantity      int32
	VATRate       decimal.Decimal
	Amount        decimal.Decimal
	InvoiceNumber string
}

// Invoice is a VAT invoice of the purchase.
type Invoice struct {
	Number string
	Date   time.Time
}

// Port is a port of exit where the refund is claimed.
type Port struct {
	Code, Name string
}

// Document is what the printed form shows.
type Document struct {
	Number          string
	StoreName       string
	StoreCreditCode string
	BlockName       string
	PurchaseDate    time.Time
	IssuedAt        time.Time
	ExportDeadline  time.Time
	// DocType is PASSPORT, HK_MACAO_PERMIT or TAIWAN_PERMIT; DocMasked the stored masked
	// number, of which only the last four characters are printed.
	DocType     string
	DocMasked   string
	Nationality string
	Lines       []Line
	Invoices    []Invoice
	Eligible    decimal.Decimal
	Gross       decimal.Decimal
	Ports       []Port
	// Print is 1 for the first print, N+1 for reprint N.
	Print int
	Void  bool
}

//go:embed form.html.tmpl
var files embed.FS

var tmpl = template.Must(template.New("form.html.tmpl").Funcs(template.FuncMap{
	"dir": func(l Lang) string {
		if l == Arabic {
			return "rtl"
		}
		return "ltr"
	},
}).ParseFS(files, "form.html.tmpl"))

var shanghai = func() *time.Location {
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		return time.FixedZone("CST", 8*3600)
	}
	return loc
}()

// Label is one label in each of the form's languages.
type Label []Said

// Said is a text in one language.
type Said struct {
	Lang Lang
	Text string
}

type row struct {
	No            int
	Description   string
	Quantity      int32
	VAT           string
	Amount        string
	InvoiceNumber string
}

type view struct {
	Doc       Document
	Receipt   bool
	Langs     []Lang
	L         map[string]Label
	DocType   Label
	DocLast4  string
	Purchased string
	Issued    string
	Deadline  string
	Rows      []row
	Invoices  []string
	Eligible  string
	Gross     string
	Reprint   int
	Code128   template.URL
	QR        template.URL
	Ports     []Port
}

// HTML returns the form as one self-contained HTML page.
func HTML(d Document, f Format, langs []Lang) (string, error) {
	if f != A4 && f != Receipt80 {
		return "", fmt.Errorf("formdoc: unknown format %d", f)
	}
	c128, err := code128PNG(d.Number)
	if err != nil {
		return "", err
	}
	q, err := qrPNG(d.Number)
	if err != nil {
		return "", err
	}
	v := view{
		Doc: d, Receipt: f == Receipt80, Langs: langs, L: map[string]Label{},
		DocLast4:  "****" + last4(d.DocMasked),
		Purchased: d.PurchaseDate.Format(time.DateOnly),
		Issued:    d.IssuedAt.In(shanghai).Format("2006-01-02 15:04"),
		Deadline:  d.ExportDeadline.Format(time.DateOnly),
		Eligible:  d.Eligible.StringFixed(2),
		Gross:     d.Gross.StringFixed(2),
		Code128:   template.URL(c128),
		QR:        template.URL(q),
		Ports:     d.Ports,
	}
	if d.Print > 1 {
		v.Reprint = d.Print - 1
	}
	for key, tr := range text {
		v.L[key] = pick(tr, langs)
	}
	if tr, ok := docTypes[d.DocType]; ok {
		v.DocType = pick(tr, langs)
	}
	for i, l := range d.Lines {
		v.Rows = append(v.Rows, row{No: i + 1, Description: l.Description, Quantity: l.Quantity,
			VAT: l.VATRate.Shift(2).String() + "%", Amount: l.Amount.StringFixed(2), InvoiceNumber: l.InvoiceNumber})
	}
	for _, inv := range d.Invoices {
		v.Invoices = append(v.Invoices, inv.Number+" ("+inv.Date.Format(time.DateOnly)+")")
	}
	var b strings.Builder
	if err := tmpl.Execute(&b, v); err != nil {
		return "", fmt.Errorf("formdoc: %w", err)
	}
	return b.String(), nil
}

func pick(tr map[Lang]string, langs []Lang) Label {
	out := make(Label, 0, len(langs))
	for _, l := range langs {
		if s, ok := tr[l]; ok {
			out = append(out, Said{Lang: l, Text: s})
		}
	}
	return out
}

// last4 returns the last four characters of a masked document number: all the form
// prints of it.
func last4(masked string) string {
	r := []rune(masked)
	if len(r) > 4 {
		r = r[len(r)-4:]
	}
	return string(r)
}

// code128PNG draws s as Code 128, 3 pixels per module, as a PNG data URI. The quiet zones
// are the page's white margins around the image.
func code128PNG(s string) (string, error) {
	bc, err := code128.Encode(s)
	if err != nil {
		return "", fmt.Errorf("code 128: %w", err)
	}
	return dataURI(bc, bc.Bounds().Dx()*3, 90)
}

// qrPNG draws s as a QR code (error correction M: a smudged corner still reads), 8 pixels
// per module.
func qrPNG(s string) (string, error) {
	bc, err := qr.Encode(s, qr.M, qr.AlphaNumeric)
	if err != nil {
		return "", fmt.Errorf("qr: %w", err)
	}
	return dataURI(bc, bc.Bounds().Dx()*8, bc.Bounds().Dy()*8)
}

func dataURI(bc barcode.Barcode, w, h int) (string, error) {
	scaled, err := barcode.Scale(bc, w, h)
	if err != nil {
		return "", fmt.Errorf("scale barcode: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, scaled); err != nil {
		return "", fmt.Errorf("encode barcode: %w", err)
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}

// Footer is the A4 form's page footer: the form number and "page / pages" on every page,
// so that a page of a long form that comes apart from the others still says whose it is.
// It is a template for pdf.Paper.Footer.
func Footer(d Document) string {
	return `<div style="width:100%;margin:0 10mm;font-size:7pt;font-family:'DejaVu Sans Mono',monospace;display:flex;justify-content:space-between">` +
		`<span>` + template.HTMLEscapeString(d.Number) + `</span>` +
		`<span><span class="pageNumber"></span> / <span class="totalPages"></span></span></div>`
}

// Title is the form's title in l.
func Title(l Lang) string { return text["title"][l] }
