package forms

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"taxrefund/internal/db"
	"taxrefund/internal/fault"
	"taxrefund/internal/refund"
)

// Get returns the form numbered number if it belongs to store; another store's form is
// reported as not found, so a store learns nothing of other stores' forms.
func (s *Service) Get(ctx context.Context, store, number string) (Form, error) {
	if !refund.ValidFormNumber(number) {
		return Form{}, fault.Field(fault.Invalid, "FORM_NUMBER", "form_number", "not a form number (check the barcode or the typing)")
	}
	row, err := s.q.FormByNumber(ctx, db.Scope(s.pool), number)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && row.StoreCode != store) {
		return Form{}, notFound(number)
	}
	if err != nil {
		return Form{}, fmt.Errorf("get form: %w", err)
	}
	out, err := s.assemble(ctx, db.Scope(s.pool), []db.Form{row})
	if err != nil {
		return Form{}, err
	}
	return out[0], nil
}

// ListQuery selects a page of a store's forms.
type ListQuery struct {
	StoreCode string
	From, To  time.Time
	// State is empty for every state.
	State    refund.State
	PageSize int
	// After is the (purchase date, id) of the last form of the previous page, if any.
	AfterDate *time.Time
	AfterID   *uuid.UUID
}

// List returns a page of the store's forms, newest first, and whether more follow.
func (s *Service) List(ctx context.Context, lq ListQuery) ([]Form, bool, error) {
	var state *string
	if lq.State != "" {
		st := string(lq.State)
		state = &st
	}
	rows, err := s.q.ListStoreForms(ctx, db.Scope(s.pool), db.ListStoreFormsParams{
		StoreCode: lq.StoreCode, FromDate: lq.From, ToDate: lq.To, State: state,
		AfterDate: lq.AfterDate, AfterID: lq.AfterID, PageSize: int32(lq.PageSize + 1),
	})
	if err != nil {
		return nil, false, fmt.Errorf("list forms: %w", err)
	}
	more := len(rows) > lq.PageSize
	if more {
		rows = rows[:lq.PageSize]
	}
	out, err := s.assemble(ctx, db.Scope(s.pool), rows)
	return out, more, err
}

// FindByDocument returns every form of a traveller's document, from every store.
func (s *Service) FindByDocument(ctx context.Context, doc refund.Document) ([]Form, error) {
	index := s.keys.BlindIndex(string(doc.Type), doc.IssuingCountry, doc.Number)
	return s.findByDocument(ctx, s.pool, index)
}

// FindByNumber returns one form by its number, whichever store issued it.
func (s *Service) FindByNumber(ctx context.Context, number string) (Form, error) {
	if !refund.ValidFormNumber(number) {
		return Form{}, fault.Field(fault.Invalid, "FORM_NUMBER", "form_number", "not a form number (check the barcode or the typing)")
	}
	row, err := s.q.FormByNumber(ctx, db.Scope(s.pool), number)
	if errors.Is(err, pgx.ErrNoRows) {
		return Form{}, notFound(number)
	}
	if err != nil {
		return Form{}, fmt.Errorf("find form: %w", err)
	}
	out, err := s.assemble(ctx, db.Scope(s.pool), []db.Form{row})
	if err != nil {
		return Form{}, err
	}
	return out[0], nil
}

// assemble loads the lines and invoices of rows (two queries, whatever the count) and
// returns the forms.
func (s *Service) assemble(ctx context.Context, q db.DBTX, rows []db.Form) ([]Form, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	ids := make([]uuid.UUID, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	lines, err := s.q.FormLines(ctx, q, ids)
	if err != nil {
		return nil, fmt.Errorf("form lines: %w", err)
	}
	invoices, err := s.q.FormInvoices(ctx, q, ids)
	if err != nil {
		return nil, fmt.Errorf("form invoices: %w", err)
	}
	return assembleRows(rows, lines, invoices), nil
}

func fromRow(r db.Form) Form {
	f := Form{
		ID: r.ID, Number: r.Number, StoreCode: r.StoreCode, State: refund.State(r.State),
		DocType: refund.DocumentType(r.DocType), DocCountry: r.DocCountry, DocMasked: r.DocMasked,
		Nationality: r.Nationality, PurchaseDate: r.PurchaseDate, IssuedAt: r.IssuedAt,
		ExportDeadline: r.ExportDeadline, Eligible: r.EligibleAmount, Gross: r.GrossRefund,
		PayoutID: r.PayoutID, ClosedAt: r.ClosedAt,
	}
	if r.VerifiedAt != nil {
		f.Verification = &Verification{
			Port: deref(r.VerifiedPort), Officer: deref(r.VerifiedOfficer), At: *r.VerifiedAt,
			Eligible: r.ConfirmedEligible.Decimal, Gross: r.ConfirmedGross.Decimal,
		}
	}
	return f
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
