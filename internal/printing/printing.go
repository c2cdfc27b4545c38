// Package printing prints refund forms for the store that issued them: it counts every
// print (form_prints, one audit event each), marks reprints "reprint N" and voided forms
// VOID, lays the form out with package formdoc and renders it with package pdf.
package printing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"taxrefund/internal/db"
	"taxrefund/internal/fault"
	"taxrefund/internal/formdoc"
	"taxrefund/internal/forms"
	"taxrefund/internal/idempotency"
	"taxrefund/internal/pdf"
	"taxrefund/internal/refund"
)

const method = "GetFormDocument"

// Forms finds a store's own form.
type Forms interface {
	Get(ctx context.Context, store, number string) (forms.Form, error)
}

// Renderer turns HTML into PDF.
type Renderer interface {
	Render(ctx context.Context, html string, paper pdf.Paper) ([]byte, error)
}

// Service prints forms.
type Service struct {
	pool     *pgxpool.Pool
	forms    Forms
	renderer Renderer
	log      *slog.Logger
}

// New returns a Service.
func New(pool *pgxpool.Pool, f Forms, r Renderer, log *slog.Logger) *Service {
	return &Service{pool: pool, forms: f, renderer: r, log: log}
}

// Request is a store's request to print one of its forms.
type Request struct {
	Idem      idempotency.Key
	StoreCode string
	Number    string
	Format    formdoc.Format
	// Language adds the traveller's language to Chinese and English; empty: by the
	// traveller's nationality.
	Language formdoc.Lang
}

// Result is a printed form.
type Result struct {
	PDF []byte
	// Print is 1 for the first print, N + 1 for reprint N.
	Print     int
	Languages []formdoc.Lang
}

// answer is what a retry of the same request_id replays: the print it made.
type answer struct {
	Print int `json:"print"`
}

// Print counts a print of the form and renders it. The print is recorded (and audited)
// before the rendering: a rendering that fails answers UNAVAILABLE, and a retry with the
// same request_id renders the same print again rather than counting another.
func (s *Service) Print(ctx context.Context, req Request) (Result, error) {
	f, err := s.forms.Get(ctx, req.StoreCode, req.Number)
	if err != nil {
		return Result{}, err
	}
	paper := pdf.A4
	format := "A4"
	if req.Format == formdoc.Receipt80 {
		paper, format = pdf.Receipt80, "RECEIPT_80MM"
	}
	langs := formdoc.Languages(f.Nationality, req.Language)
	var n int
	err = db.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if err := idempotency.Begin(ctx, tx, req.Idem, method); err != nil {
			return err
		}
		// Prints of one form are numbered one after the other, whatever races.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('form_prints:' || $1::text, 0))`, f.ID); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(print_no), 0) + 1 FROM form_prints WHERE form_id = $1`, f.ID).Scan(&n); err != nil {
			return err
		}
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO form_prints (form_id, print_no, store_code, format, language, printed_by, request_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, f.ID, n, f.StoreCode, format, string(langs[len(langs)-1]), req.Idem.Caller, req.Idem.RequestID)
		action := "FORM_PRINTED"
		if n > 1 {
			action = "FORM_REPRINTED"
		}
		b.Queue(`INSERT INTO audit_events (actor, action, object, request_id, detail) VALUES ($1, $2, $3, $4, $5)`,
			req.Idem.Caller, action, f.Number, req.Idem.RequestID,
			map[string]any{"print": n, "format": format, "languages": langs, "state": string(f.State)})
		if err := idempotency.Finish(b, req.Idem, answer{Print: n}); err != nil {
			return err
		}
		return db.SendBatch(ctx, tx, b)
	})
	if idempotency.IsDuplicate(err) {
		var first answer
		if err := idempotency.Replay(ctx, db.Scope(s.pool), req.Idem, method, &first); err != nil {
			return Result{}, err
		}
		n, err = first.Print, nil
	}
	if err != nil {
		if _, ok := fault.As(err); ok {
			return Result{}, err
		}
		return Result{}, fmt.Errorf("record print: %w", err)
	}
	doc, err := s.document(ctx, f, n)
	if err != nil {
		return Result{}, err
	}
	html, err := formdoc.HTML(doc, req.Format, langs)
	if err != nil {
		return Result{}, err
	}
	if req.Format != formdoc.Receipt80 {
		paper.Footer = formdoc.Footer(doc)
	}
	out, err := s.renderer.Render(ctx, html, paper)
	if err != nil {
		if errors.Is(err, pdf.ErrUnavailable) {
			s.log.ErrorContext(ctx, "render form", "form", f.Number, "error", err)
			return Result{}, fault.New(fault.Unavailable, "PRINTER_UNAVAILABLE",
				"the document could not be rendered now; retry with the same request_id for the same print")
		}
		return Result{}, err
	}
	return Result{PDF: out, Print: n, Languages: langs}, nil
}

// document gathers what the printed form shows.
func (s *Service) document(ctx context.Context, f forms.Form, print int) (formdoc.Document, error) {
	d := formdoc.Document{
		Number: f.Number, PurchaseDate: f.PurchaseDate, IssuedAt: f.IssuedAt, ExportDeadline: f.ExportDeadline,
		DocType: string(f.DocType), DocMasked: f.DocMasked, Nationality: f.Nationality,
		Eligible: f.Eligible, Gross: f.Gross, Print: print, Void: f.State == refund.Voided,
	}
	q := db.Scope(s.pool)
	if err := q.QueryRow(ctx, `SELECT s.name, s.credit_code, b.name FROM stores s JOIN blocks b ON b.code = s.block_code WHERE s.code = $1`,
		f.StoreCode).Scan(&d.StoreName, &d.StoreCreditCode, &d.BlockName); err != nil {
		return d, fmt.Errorf("store of form: %w", err)
	}
	rows, err := q.Query(ctx, `SELECT code, name FROM ports ORDER BY code`)
	if err != nil {
		return d, fmt.Errorf("ports: %w", err)
	}
	ports, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (formdoc.Port, error) {
		var p formdoc.Port
		return p, r.Scan(&p.Code, &p.Name)
	})
	if err != nil {
		return d, fmt.Errorf("ports: %w", err)
	}
	d.Ports = ports
	for _, l := range f.Lines {
		d.Lines = append(d.Lines, formdoc.Line{Description: l.Description, Quantity: l.Quantity, VATRate: l.VATRate,
			Amount: l.Amount, InvoiceNumber: l.InvoiceNumber})
	}
	for _, inv := range f.Invoices {
		d.Invoices = append(d.Invoices, formdoc.Invoice{Number: inv.Number, Date: inv.Date})
	}
	return d, nil
}
