package console

import (
	"context"
	"html/template"
	"net/http"
	"strings"

	"taxrefund/internal/pdf"
)

// PDF renders HTML to PDF (internal/pdf's headless Chromium).
type PDF interface {
	Render(ctx context.Context, html string, paper pdf.Paper) ([]byte, error)
}

// monthPDF is the month's figures and trend chart on A4, for signature: the month page's
// content in a document of its own, its CSS inlined (the PDF is rendered from a string,
// with no server to fetch a stylesheet from).
type monthPDF struct {
	L         L
	Office    string
	Generated string
	CSS       template.CSS
	C         officialContent
}

func (c *Console) monthPDFFile(w http.ResponseWriter, r *http.Request, s *session) {
	if c.d.PDF == nil {
		http.Error(w, "PDF rendering is not configured on this server (-chromium)", http.StatusNotImplemented)
		return
	}
	// The month for signature is computed now, never from the report cache.
	content, code, problem := c.monthContent(r.Context(), s, r.URL.Query().Get("month"), 0)
	if problem != "" {
		p := c.pageFor(s, "/official", "nav.official")
		p.Content, p.Error = content, problem
		c.render(w, r, max(code, http.StatusUnprocessableEntity), "official", p)
		return
	}
	css, err := web.ReadFile("web/static/console.css")
	if err != nil {
		http.Error(w, "the document could not be drawn", http.StatusInternalServerError)
		return
	}
	var b strings.Builder
	// The stylesheet is the binary's own, never request data.
	if err := c.pdfTmpl.Execute(&b, monthPDF{L: L{Lang: s.lang}, Office: s.party.URI, Generated: whenTime(c.d.Now()), CSS: template.CSS(css), C: content}); err != nil {
		c.d.Log.ErrorContext(r.Context(), "console month pdf", "error", err)
		http.Error(w, "the document could not be drawn", http.StatusInternalServerError)
		return
	}
	doc, err := c.d.PDF.Render(r.Context(), b.String(), pdf.A4)
	if err != nil {
		c.d.Log.ErrorContext(r.Context(), "console month pdf", "error", err)
		http.Error(w, "the PDF could not be rendered; try again", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/pdf")
	w.Header().Set("Content-Disposition", `attachment; filename="taxrefund-month-`+content.Month+`.pdf"`)
	_, _ = w.Write(doc)
}
