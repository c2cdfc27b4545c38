package forms

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"taxrefund/internal/db"
	"taxrefund/internal/refund"
)

// The desk calls read forms in the same round trip as their other statements: the
// statements below ride on the caller's pgx.Batch, and their rows arrive through the
// batch's callbacks when the caller closes its results. A transaction that waits on the
// database once instead of four times holds its pool connection for that much less, and
// under load it is the pool, not PostgreSQL, that runs out first.

// Lines and invoices are selected by the same condition as their forms, not by the forms'
// ids: the ids are not known before the batch is sent.
const (
	lockByNumberSQL  = `SELECT * FROM forms WHERE number = ANY($1::text[]) ORDER BY id FOR UPDATE`
	linesByNumberSQL = `SELECT l.* FROM form_lines l
		WHERE l.form_id IN (SELECT id FROM forms WHERE number = ANY($1::text[])) ORDER BY l.form_id, l.line_no`
	invoicesByNumberSQL = `SELECT i.* FROM form_invoices i
		WHERE i.form_id IN (SELECT id FROM forms WHERE number = ANY($1::text[])) ORDER BY i.form_id, i.invoice_number`
	// A form's outstanding prepayment, probed per form through prepayments' form_id key
	// (a form has at most one prepayment). The LATERAL ... LIMIT keeps the planner from
	// joining the other way and keeps the state test out of the probe, where it would
	// pick the partial index on PREPAID rows and walk all of them. Written as "form_id IN
	// (SELECT ...) AND state = 'PREPAID'", the service's generic plan did walk or hash
	// every PREPAID prepayment on each call as long as prepayments had no statistics (a
	// new database, until autovacuum's first ANALYZE): 12.7 ms and 6,135 buffers a call
	// with 4,000 outstanding, half of PostgreSQL's time in the immediate refund benchmark.
	outstandingByNumberSQL = `SELECT p.form_id FROM forms f
		CROSS JOIN LATERAL (SELECT p.form_id, p.state FROM prepayments p WHERE p.form_id = f.id LIMIT 1) p
		WHERE f.number = ANY($1::text[]) AND p.state = 'PREPAID'`

	byDocumentSQL = `SELECT * FROM forms WHERE doc_index = $1 ORDER BY purchase_date DESC, id DESC LIMIT 200`
	// The forms of a document are few (the benchmark's travellers have one or two); the
	// limit of the form list bounds the traveller with thousands.
	linesByDocumentSQL = `SELECT l.* FROM form_lines l
		WHERE l.form_id IN (SELECT id FROM forms WHERE doc_index = $1 ORDER BY purchase_date DESC, id DESC LIMIT 200)
		ORDER BY l.form_id, l.line_no`
	invoicesByDocumentSQL = `SELECT i.* FROM form_invoices i
		WHERE i.form_id IN (SELECT id FROM forms WHERE doc_index = $1 ORDER BY purchase_date DESC, id DESC LIMIT 200)
		ORDER BY i.form_id, i.invoice_number`
)

// formRead collects forms, lines and invoices queued on a batch.
type formRead struct {
	rows     []db.Form
	lines    []db.FormLine
	invoices []db.FormInvoice
}

func (r *formRead) queue(b *pgx.Batch, formsSQL, linesSQL, invoicesSQL string, arg any) {
	b.Queue(formsSQL, arg).Query(func(rows pgx.Rows) (err error) {
		r.rows, err = pgx.CollectRows(rows, pgx.RowToStructByName[db.Form])
		return err
	})
	b.Queue(linesSQL, arg).Query(func(rows pgx.Rows) (err error) {
		r.lines, err = pgx.CollectRows(rows, pgx.RowToStructByName[db.FormLine])
		return err
	})
	if invoicesSQL != "" {
		b.Queue(invoicesSQL, arg).Query(func(rows pgx.Rows) (err error) {
			r.invoices, err = pgx.CollectRows(rows, pgx.RowToStructByName[db.FormInvoice])
			return err
		})
	}
}

// forms assembles what was read. Outside a transaction the statements see different
// snapshots, so lines of a form the first statement did not return are skipped.
func (r *formRead) forms() []Form {
	return assembleRows(r.rows, r.lines, r.invoices)
}

// LockRead is the result of QueueLock, filled when the batch's results are closed.
type LockRead struct {
	numbers []string
	read    formRead
	prepaid []uuid.UUID
}

// QueueLock queues onto b, inside a transaction, the statements that lock the forms
// numbered numbers (FOR UPDATE, in id order, so that two payouts over the same forms lock
// them in the same order) and read their lines, their invoices when withInvoices, and
// which of them have an immediate-refund prepayment outstanding. Each statement runs
// after the lock with a snapshot of its own, so it reads what the previous holder of the
// lock committed (a subquery of the locking statement would read that statement's
// snapshot, taken before it waited for the lock).
func (s *Service) QueueLock(b *pgx.Batch, numbers []string, withInvoices bool) *LockRead {
	r := &LockRead{numbers: numbers}
	invoices := ""
	if withInvoices {
		invoices = invoicesByNumberSQL
	}
	r.read.queue(b, lockByNumberSQL, linesByNumberSQL, invoices, numbers)
	b.Queue(outstandingByNumberSQL, numbers).Query(func(rows pgx.Rows) (err error) {
		r.prepaid, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		return err
	})
	return r
}

// Result returns the locked forms in id order, and the numbers that match no form.
func (r *LockRead) Result() (found []Locked, missing []string) {
	all := r.read.forms()
	have := make(map[string]bool, len(all))
	for i, f := range all {
		found = append(found, Locked{Form: f, DocIndex: r.read.rows[i].DocIndex, pendingID: r.read.rows[i].PendingID})
		have[f.Number] = true
	}
	for _, n := range r.numbers {
		if !have[n] {
			missing = append(missing, n)
		}
	}
	return found, missing
}

// Outstanding reports whether form id has an immediate-refund prepayment outstanding.
func (r *LockRead) Outstanding(id uuid.UUID) bool {
	for _, p := range r.prepaid {
		if p == id {
			return true
		}
	}
	return false
}

// RequireNoPrepayment is Service.RequireNoPrepayment on what the batch read.
func (r *LockRead) RequireNoPrepayment(forms ...Form) error {
	for _, f := range forms {
		if r.Outstanding(f.ID) {
			return prepaymentOutstanding(f.Number)
		}
	}
	return nil
}

// findByDocument reads a document's forms with their lines and invoices in one round trip.
func (s *Service) findByDocument(ctx context.Context, pool *pgxpool.Pool, index []byte) ([]Form, error) {
	var r formRead
	b := &pgx.Batch{}
	r.queue(b, byDocumentSQL, linesByDocumentSQL, invoicesByDocumentSQL, index)
	if err := db.Scope(pool).SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("find forms: %w", err)
	}
	return r.forms(), nil
}

// assembleRows puts lines and invoices (ordered by form) under their forms, keeping the
// forms' order. Lines and invoices of forms not in rows are ignored.
func assembleRows(rows []db.Form, lines []db.FormLine, invoices []db.FormInvoice) []Form {
	if len(rows) == 0 {
		return nil
	}
	byID := make(map[uuid.UUID]*Form, len(rows))
	out := make([]Form, len(rows))
	for i, r := range rows {
		out[i] = fromRow(r)
		byID[r.ID] = &out[i]
	}
	for _, l := range lines {
		f := byID[l.FormID]
		if f == nil {
			continue
		}
		f.Lines = append(f.Lines, Line{
			No: int(l.LineNo), ConfirmedQty: l.ConfirmedQty,
			Line: refund.Line{
				Description: l.Description, Category: refund.Category(l.Category), VATRate: l.VatRate,
				Quantity: l.Quantity, Amount: l.Amount, InvoiceNumber: l.InvoiceNumber, RefundRate: l.RefundRate,
				SerialNumber: deref(l.SerialNumber),
			},
		})
	}
	for _, inv := range invoices {
		if f := byID[inv.FormID]; f != nil {
			f.Invoices = append(f.Invoices, refund.Invoice{Number: inv.InvoiceNumber, Date: inv.InvoiceDate})
		}
	}
	return out
}
