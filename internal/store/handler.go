// Package store serves taxrefund.store.v1.StoreService: a store's POS issues, reads and
// voids its own forms. The store is the caller of the client certificate, never a field.
package store

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	formv1 "taxrefund/api/taxrefund/form/v1"
	storev1 "taxrefund/api/taxrefund/store/v1"
	"taxrefund/internal/auth"
	"taxrefund/internal/fault"
	"taxrefund/internal/formdoc"
	"taxrefund/internal/forms"
	"taxrefund/internal/printing"
	"taxrefund/internal/refund"
	"taxrefund/internal/risk"
	"taxrefund/internal/wire"
)

// Forms is what the handler needs of the forms service.
type Forms interface {
	Issue(ctx context.Context, req forms.IssueRequest) (forms.Form, error)
	Void(ctx context.Context, req forms.VoidRequest) (forms.Form, error)
	Get(ctx context.Context, store, number string) (forms.Form, error)
	List(ctx context.Context, q forms.ListQuery) ([]forms.Form, bool, error)
}

// Printer prints a store's forms (package printing).
type Printer interface {
	Print(ctx context.Context, req printing.Request) (printing.Result, error)
}

// Handler implements StoreService.
type Handler struct {
	storev1.UnimplementedStoreServiceServer
	forms   Forms
	printer Printer
}

// New returns a Handler.
func New(f Forms) *Handler { return &Handler{forms: f} }

// WithPrinter returns h printing forms with p; without one GetFormDocument answers
// UNAVAILABLE.
func (h *Handler) WithPrinter(p Printer) *Handler {
	h.printer = p
	return h
}

// GetFormDocument prints one of the caller's forms as PDF.
func (h *Handler) GetFormDocument(ctx context.Context, req *storev1.GetFormDocumentRequest) (*storev1.GetFormDocumentResponse, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	f := wire.NewFields()
	rid := f.RequestID("request_id", req.GetRequestId())
	var format formdoc.Format
	switch req.GetFormat() {
	case storev1.DocumentFormat_DOCUMENT_FORMAT_A4:
		format = formdoc.A4
	case storev1.DocumentFormat_DOCUMENT_FORMAT_RECEIPT_80MM:
		format = formdoc.Receipt80
	default:
		f.Add("format", "must be DOCUMENT_FORMAT_A4 or DOCUMENT_FORMAT_RECEIPT_80MM")
	}
	var lang formdoc.Lang
	if tag := req.GetLanguage(); tag != "" {
		l, ok := formdoc.ParseLang(tag)
		if !ok || len(tag) > 35 {
			f.Add("language", "must be empty or one of zh, en, ja, ko, ru, fr, de, es, ar")
		}
		lang = l
	}
	if err := f.Err(); err != nil {
		return nil, err
	}
	if h.printer == nil {
		return nil, fault.New(fault.Unavailable, "PRINTING_OFF", "this server does not print forms")
	}
	res, err := h.printer.Print(ctx, printing.Request{
		Idem:      forms.Idempotency{Caller: p.String(), RequestID: rid, Hash: wire.CanonicalHash(req)},
		StoreCode: p.Store, Number: req.GetFormNumber(), Format: format, Language: lang,
	})
	if err != nil {
		return nil, err
	}
	out := &storev1.GetFormDocumentResponse{Pdf: res.PDF, PrintNumber: int32(res.Print)}
	for _, l := range res.Languages {
		out.Languages = append(out.Languages, string(l))
	}
	return out, nil
}

func caller(ctx context.Context) (auth.Party, error) {
	p, ok := auth.FromContext(ctx)
	if !ok || p.Role != auth.RoleStore {
		return auth.Party{}, fault.New(fault.Denied, "NOT_A_STORE", "only a store may call this")
	}
	return p, nil
}

// IssueForm issues a refund form.
func (h *Handler) IssueForm(ctx context.Context, req *storev1.IssueFormRequest) (*storev1.IssueFormResponse, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	f := wire.NewFields()
	rid := f.RequestID("request_id", req.GetRequestId())
	t := req.GetTraveller()
	var app refund.Application
	if t == nil {
		f.Add("traveller", "is required")
	} else {
		app.Traveller = refund.Traveller{
			Document:    f.Document("traveller.document", t.GetDocument()),
			Expiry:      f.Date("traveller.document_expiry_date", t.GetDocumentExpiryDate()),
			Nationality: f.Country("traveller.nationality", t.GetNationality()),
			LastEntry:   f.Date("traveller.last_entry_date", t.GetLastEntryDate()),
		}
	}
	app.Invoices = f.Invoices("invoices", req.GetInvoices())
	known := map[string]bool{}
	for _, inv := range req.GetInvoices() {
		known[inv.GetNumber()] = true
	}
	used := map[string]bool{}
	switch n := len(req.GetLines()); {
	case n == 0:
		f.Add("lines", "at least one line is required")
	case n > wire.MaxLines:
		f.Add("lines", "at most %d lines per form", wire.MaxLines)
	default:
		for i, l := range req.GetLines() {
			name := fmt.Sprintf("lines[%d]", i)
			line := refund.Line{
				Description:   f.Description(name+".description", l.GetDescription()),
				Category:      f.Category(name+".category", l.GetCategory()),
				VATRate:       f.VATRate(name+".vat_rate", l.GetVatRate()),
				Quantity:      l.GetQuantity(),
				Amount:        f.Amount(name+".amount", l.GetAmount()),
				InvoiceNumber: l.GetInvoiceNumber(),
			}
			if l.GetSerialNumber() != "" {
				serial, ok := risk.ParseSerial(l.GetSerialNumber())
				if !ok {
					f.Add(name+".serial_number", "must be 1 to 64 letters, digits, '.', '/' or '-'")
				}
				line.SerialNumber = serial
			}
			if line.Quantity < 1 || line.Quantity > 1_000_000 {
				f.Add(name+".quantity", "must be 1 to 1000000")
			}
			if !known[line.InvoiceNumber] {
				f.Add(name+".invoice_number", "must name one of the request's invoices (no VAT invoice, no refund)")
			}
			used[line.InvoiceNumber] = true
			app.Lines = append(app.Lines, line)
		}
		for i, inv := range req.GetInvoices() {
			if len(req.GetInvoices()) > wire.MaxInvoices {
				break // already refused as too many
			}
			if !used[inv.GetNumber()] {
				f.Add(fmt.Sprintf("invoices[%d]", i), "no line is on this invoice")
			}
		}
	}
	if err := f.Err(); err != nil {
		return nil, err
	}
	form, err := h.forms.Issue(ctx, forms.IssueRequest{
		Idem:        forms.Idempotency{Caller: p.String(), RequestID: rid, Hash: wire.CanonicalHash(req)},
		StoreCode:   p.Store,
		Application: app,
	})
	if err != nil {
		return nil, err
	}
	return &storev1.IssueFormResponse{Form: wire.Form(form)}, nil
}

// GetForm returns one of the caller's forms.
func (h *Handler) GetForm(ctx context.Context, req *storev1.GetFormRequest) (*storev1.GetFormResponse, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	form, err := h.forms.Get(ctx, p.Store, req.GetFormNumber())
	if err != nil {
		return nil, err
	}
	return &storev1.GetFormResponse{Form: wire.Form(form)}, nil
}

const (
	defaultPageSize = 50
	maxPageSize     = 500
)

// ListForms pages through the caller's forms.
func (h *Handler) ListForms(ctx context.Context, req *storev1.ListFormsRequest) (*storev1.ListFormsResponse, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	f := wire.NewFields()
	q := forms.ListQuery{StoreCode: p.Store, PageSize: int(req.GetPageSize())}
	q.From = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	q.To = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	if req.GetFromDate() != "" {
		q.From = f.Date("from_date", req.GetFromDate())
	}
	if req.GetToDate() != "" {
		q.To = f.Date("to_date", req.GetToDate())
	}
	if q.To.Before(q.From) {
		f.Add("to_date", "is before from_date")
	}
	state, ok := wire.State(req.GetState())
	if !ok {
		f.Add("state", "is not a form state")
	}
	q.State = state
	switch {
	case q.PageSize == 0:
		q.PageSize = defaultPageSize
	case q.PageSize < 0 || q.PageSize > maxPageSize:
		f.Add("page_size", "must be 1 to %d", maxPageSize)
	}
	if tok := req.GetPageToken(); tok != "" {
		d, id, ok := decodeToken(tok)
		if !ok {
			f.Add("page_token", "is not a token this service issued")
		}
		q.AfterDate, q.AfterID = &d, &id
	}
	if err := f.Err(); err != nil {
		return nil, err
	}
	page, more, err := h.forms.List(ctx, q)
	if err != nil {
		return nil, err
	}
	resp := &storev1.ListFormsResponse{Forms: make([]*formv1.Form, len(page))}
	for i, form := range page {
		resp.Forms[i] = wire.Form(form)
	}
	if more {
		last := page[len(page)-1]
		resp.NextPageToken = encodeToken(last.PurchaseDate, last.ID)
	}
	return resp, nil
}

// VoidForm voids an ISSUED form when the goods are returned.
func (h *Handler) VoidForm(ctx context.Context, req *storev1.VoidFormRequest) (*storev1.VoidFormResponse, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	f := wire.NewFields()
	rid := f.RequestID("request_id", req.GetRequestId())
	reason := f.Reason("reason", req.GetReason())
	if err := f.Err(); err != nil {
		return nil, err
	}
	form, err := h.forms.Void(ctx, forms.VoidRequest{
		Idem:      forms.Idempotency{Caller: p.String(), RequestID: rid, Hash: wire.CanonicalHash(req)},
		StoreCode: p.Store,
		Number:    req.GetFormNumber(),
		Reason:    reason,
	})
	if err != nil {
		return nil, err
	}
	return &storev1.VoidFormResponse{Form: wire.Form(form)}, nil
}

// Page tokens are opaque to clients: base64 of "date|id".
func encodeToken(d time.Time, id uuid.UUID) string {
	return base64.RawURLEncoding.EncodeToString([]byte(refund.FormatDate(d) + "|" + id.String()))
}

func decodeToken(tok string) (date time.Time, id uuid.UUID, ok bool) {
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return date, id, false
	}
	ds, is, found := strings.Cut(string(raw), "|")
	if !found {
		return date, id, false
	}
	d, err1 := refund.ParseDate(ds)
	u, err2 := uuid.Parse(is)
	return d, u, err1 == nil && err2 == nil
}
