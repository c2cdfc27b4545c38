package forms

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shopspring/decimal"

	"taxrefund/internal/db"
	"taxrefund/internal/fault"
	"taxrefund/internal/idempotency"
	"taxrefund/internal/ledger"
	"taxrefund/internal/pii"
	"taxrefund/internal/refund"
	"taxrefund/internal/risk"
)

const methodIssue = "IssueForm"

// IssueRequest is a store's application for a form, already checked for shape.
type IssueRequest struct {
	Idem      Idempotency
	StoreCode string
	// Application.PurchaseDate is ignored: a form is issued today, local time.
	Application refund.Application
}

// Issue applies DOMAIN.md §2–§4 and writes the form, its lines and invoices, the pending
// ledger transfer of G, the idempotency record and an audit event in one transaction. In
// the common case (the form alone reaches the minimum) that is one round trip.
func (s *Service) Issue(ctx context.Context, req IssueRequest) (Form, error) {
	now := s.now()
	app := req.Application
	app.PurchaseDate = refund.LocalDate(now)

	table, err := s.params.Get(ctx)
	if err != nil {
		return Form{}, err
	}
	p, err := table.Issuing(app.PurchaseDate)
	if err != nil {
		return Form{}, err
	}
	as, err := refund.Assess(app, p)
	if err == nil {
		err = risk.CheckSerials(table, app.PurchaseDate, app.Lines)
	}
	if err != nil {
		return s.refuse(ctx, req.Idem, err)
	}
	if !as.Gross.IsPositive() {
		return Form{}, fault.Field(fault.Precondition, "NO_REFUND", "lines", "the refund of these lines rounds to 0.00")
	}

	doc := app.Traveller.Document
	index := s.keys.BlindIndex(string(doc.Type), doc.IssuingCountry, doc.Number)
	form := Form{
		ID:             ledger.NewID(),
		StoreCode:      req.StoreCode,
		State:          refund.Issued,
		DocType:        doc.Type,
		DocCountry:     doc.IssuingCountry,
		DocMasked:      pii.Mask(doc.Number),
		Nationality:    app.Traveller.Nationality,
		PurchaseDate:   app.PurchaseDate,
		IssuedAt:       now.UTC(),
		ExportDeadline: as.ExportDeadline,
		Invoices:       app.Invoices,
		Eligible:       as.Eligible,
		Gross:          as.Gross,
	}
	for i, l := range as.Lines {
		form.Lines = append(form.Lines, Line{Line: l, No: i + 1})
	}
	keyID, cipher, err := s.keys.Seal([]byte(doc.Number), form.ID[:])
	if err != nil {
		return Form{}, fmt.Errorf("seal document: %w", err)
	}
	ids, err := s.ledger.Accounts(ctx, s.pool, ledger.RefundExpense, ledger.RefundPayable)
	if err != nil {
		return Form{}, err
	}

	write := func(q db.Batcher) error {
		form.Number = refund.NewFormNumber()
		b := &pgx.Batch{}
		if err := idempotency.Queue(b, req.Idem, methodIssue, form); err != nil {
			return err
		}
		txn, pending := ledger.NewPending("form:"+form.Number+":issue", "FORM_ISSUED", form.Number,
			form.PurchaseDate, ledger.RefundExpense, ledger.RefundPayable, form.Gross)
		if err := s.ledger.Queue(b, txn, ids); err != nil {
			return err
		}
		s.ledger.QueuePending(b, pending, ids)
		queueForm(b, form, app.Traveller, pending.ID, index, keyID, cipher)
		b.Queue(`INSERT INTO audit_events (actor, action, object, request_id, detail) VALUES ($1, 'FORM_ISSUED', $2, $3, $4)`,
			req.Idem.Caller, form.Number, req.Idem.RequestID,
			map[string]any{"eligible": form.Eligible, "gross": form.Gross, "document": s.keys.Fingerprint(string(doc.Type), doc.IssuingCountry, doc.Number)})
		return db.SendBatch(ctx, q, b)
	}

	if as.Eligible.GreaterThanOrEqual(p.MinPurchase) {
		err = db.Retry(ctx, func() error { return write(s.pool) })
	} else {
		// Below the minimum on its own: the traveller's other live forms at this store today
		// must make up the difference. The advisory lock keeps a concurrent void of one of
		// them from slipping between the check and the write.
		err = db.InTx(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))`,
				sameDayLockKey(index, req.StoreCode, app.PurchaseDate)); err != nil {
				return err
			}
			others, err := s.q.SameDayEligible(ctx, tx, db.SameDayEligibleParams{DocIndex: index, PurchaseDate: app.PurchaseDate, StoreCode: req.StoreCode})
			if err != nil {
				return fmt.Errorf("same-day purchases: %w", err)
			}
			if err := refund.CheckMinimum(as.Eligible, others, p.MinPurchase); err != nil {
				return err
			}
			return write(tx)
		})
	}
	switch {
	case err == nil:
		return form, nil
	case idempotency.IsDuplicate(err):
		var first Form
		if err := idempotency.Replay(ctx, s.pool, req.Idem, methodIssue, &first); err != nil {
			return Form{}, err
		}
		return first, nil
	case db.IsUniqueViolation(err, "form_invoices_live"):
		return Form{}, s.invoiceClaimed(ctx, req.StoreCode, app.Invoices)
	case isStoreInactive(err):
		return Form{}, fault.New(fault.Precondition, "STORE_NOT_ACTIVE", "this store is suspended or has exited: it issues no forms")
	}
	if _, ok := fault.As(err); ok {
		return s.refuse(ctx, req.Idem, err)
	}
	return Form{}, fmt.Errorf("issue form: %w", err)
}

// refuse returns a rule's refusal — unless the request was already answered: a retry
// gets the first answer even when the rules would refuse it now (the document has expired
// since, the form that made up the minimum was voided...). Only refusals pay for this
// look-up; the common path finds a duplicate by its primary key.
func (s *Service) refuse(ctx context.Context, idem Idempotency, refusal error) (Form, error) {
	var first Form
	err := idempotency.Replay(ctx, s.pool, idem, methodIssue, &first)
	switch {
	case err == nil:
		return first, nil
	case errors.Is(err, pgx.ErrNoRows):
		return Form{}, refusal
	case fault.Is(err, fault.Precondition):
		return Form{}, err // the request_id was used for something else
	}
	return Form{}, err
}

func sameDayLockKey(index []byte, store string, date any) string {
	return fmt.Sprintf("sameday:%x:%s:%v", index, store, date)
}

// queueForm appends the form's rows: the form, its lines and its invoices.
func queueForm(b *pgx.Batch, f Form, t refund.Traveller, pendingID any, index []byte, keyID string, cipher []byte) {
	b.Queue(`INSERT INTO forms (id, number, store_code, block_code, state, doc_type, doc_country, doc_index, doc_key_id,
		doc_cipher, doc_masked, doc_expiry, nationality, last_entry_date, purchase_date, issued_at, export_deadline,
		eligible_amount, gross_refund, pending_id)
		VALUES ($1, $2, $3, '', 'ISSUED', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)`,
		f.ID, f.Number, f.StoreCode, string(f.DocType), f.DocCountry, index, keyID, cipher, f.DocMasked,
		t.Expiry, f.Nationality, t.LastEntry, f.PurchaseDate, f.IssuedAt, f.ExportDeadline, f.Eligible, f.Gross, pendingID)
	n := len(f.Lines)
	nos := make([]int16, n)
	desc := make([]string, n)
	cats := make([]string, n)
	vats := make([]decimal.Decimal, n)
	rates := make([]decimal.Decimal, n)
	qtys := make([]int32, n)
	amts := make([]decimal.Decimal, n)
	invs := make([]string, n)
	serials := make([]*string, n)
	for i, l := range f.Lines {
		nos[i], desc[i], cats[i], vats[i], rates[i], qtys[i], amts[i], invs[i] =
			int16(l.No), l.Description, string(l.Category), l.VATRate, l.RefundRate, l.Quantity, l.Amount, l.InvoiceNumber
		if l.SerialNumber != "" {
			serials[i] = &f.Lines[i].SerialNumber
		}
	}
	b.Queue(`INSERT INTO form_lines (form_id, line_no, description, category, vat_rate, refund_rate, quantity, amount, invoice_number, serial_number)
		SELECT $1, * FROM unnest($2::smallint[], $3::text[], $4::text[], $5::numeric[], $6::numeric[], $7::int[], $8::numeric[], $9::text[], $10::text[])`,
		f.ID, nos, desc, cats, vats, rates, qtys, amts, invs, serials)
	invNos := make([]string, len(f.Invoices))
	invDates := make([]any, len(f.Invoices))
	for i, inv := range f.Invoices {
		invNos[i], invDates[i] = inv.Number, inv.Date
	}
	b.Queue(`INSERT INTO form_invoices (form_id, invoice_number, invoice_date, store_code)
		SELECT $1, n, d, $2 FROM unnest($3::text[], $4::date[]) AS i(n, d)`,
		f.ID, f.StoreCode, invNos, invDates)
}

// invoiceClaimed names the invoices of the request that are already on a live form.
func (s *Service) invoiceClaimed(ctx context.Context, store string, invoices []refund.Invoice) error {
	l := fault.List{Kind: fault.Precondition, Reason: "INVOICE_ALREADY_CLAIMED", Message: "an invoice is already on a live form"}
	for i, inv := range invoices {
		holder, err := s.q.InvoiceHolder(ctx, db.Scope(s.pool), db.InvoiceHolderParams{StoreCode: store, InvoiceNumber: inv.Number})
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return fmt.Errorf("invoice holder: %w", err)
		}
		l.Add(fmt.Sprintf("invoices[%d].number", i), "invoice %s is already on form %s", inv.Number, holder)
	}
	if len(l.Violations) == 0 {
		l.Add("invoices", "an invoice was claimed by a concurrent request; retry")
	}
	return l.Err()
}

func isStoreInactive(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "TR001"
}
