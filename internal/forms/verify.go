package forms

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"taxrefund/internal/db"
	"taxrefund/internal/fault"
	"taxrefund/internal/idempotency"
	"taxrefund/internal/ledger"
	"taxrefund/internal/refund"
)

const methodVerify = "VerifyExport"

// VerifyRequest is a customs officer's confirmation of export.
type VerifyRequest struct {
	Idem    Idempotency
	Port    string
	Officer string
	Number  string
	// Presented is the document the traveller shows; it must be the form's.
	Presented refund.Document
	// Confirmed maps every line number of the form to the units seen leaving.
	Confirmed map[int]int32
}

// Verify records the customs confirmation (DOMAIN.md §5). Confirmed units post the
// pending transfer for G' of the confirmed amounts (the rest released); zero units on
// every line rejects the form and voids the transfer.
func (s *Service) Verify(ctx context.Context, req VerifyRequest) (Form, error) {
	if !refund.ValidFormNumber(req.Number) {
		return Form{}, fault.Field(fault.Invalid, "FORM_NUMBER", "form_number", "not a form number (check the barcode or the typing)")
	}
	presented := s.keys.BlindIndex(string(req.Presented.Type), req.Presented.IssuingCountry, req.Presented.Number)
	ids, err := s.ledger.Accounts(ctx, s.pool, ledger.RefundExpense, ledger.RefundPayable)
	if err != nil {
		return Form{}, err
	}
	var out Form
	err = db.InPipelinedTx(ctx, s.pool, func(tx *db.Tx) error {
		// One round trip for BEGIN, the idempotency record, the form under its row lock, its
		// lines, invoices and prepayment; one more for every write and COMMIT. A concurrent
		// duplicate waits on the record and aborts the batch before the lock is taken.
		read := &pgx.Batch{}
		idempotency.QueueBegin(read, req.Idem, methodVerify)
		lock := s.QueueLock(read, []string{req.Number}, true)
		if err := tx.SendBatch(ctx, read).Close(); err != nil {
			return err
		}
		found, _ := lock.Result()
		if len(found) == 0 {
			return notFound(req.Number)
		}
		f := found[0]
		if !bytes.Equal(f.DocIndex, presented) {
			return fault.Field(fault.Precondition, "DOCUMENT_MISMATCH", "presented_document",
				"the presented document is not the one the form was issued to")
		}
		if err := refund.RequireState(f.Number, f.State, refund.Issued, "verified"); err != nil {
			return err
		}
		now := s.now()
		today := refund.LocalDate(now)
		if today.After(f.ExportDeadline) {
			return fault.New(fault.Precondition, "EXPORT_WINDOW_CLOSED",
				fmt.Sprintf("form %s had to be confirmed by %s (Asia/Shanghai)", f.Number, refund.FormatDate(f.ExportDeadline)))
		}
		confirmed, err := confirmedQuantities(f.Form, req.Confirmed)
		if err != nil {
			return err
		}
		lines := make([]refund.Line, len(f.Lines))
		anyUnits := false
		for i, l := range f.Lines {
			lines[i] = l.Line
			anyUnits = anyUnits || confirmed[i] > 0
		}
		tot := refund.Compute(lines, confirmed)
		state, kind, posted := refund.Verified, "EXPORT_CONFIRMED", tot.Gross
		if !anyUnits {
			state, kind, posted = refund.Rejected, "EXPORT_REJECTED", decimalZero
		}
		txn, res, err := ledger.Resolve(f.pending(), "form:"+f.Number+":verify", kind, f.Number, today, posted)
		if err != nil {
			return err
		}
		f.State = state
		f.Verification = &Verification{Port: req.Port, Officer: req.Officer, At: now.UTC(), Eligible: tot.Eligible, Gross: tot.Gross}
		nos := make([]int16, len(f.Lines))
		for i := range f.Lines {
			q := confirmed[i]
			f.Lines[i].ConfirmedQty = &q
			nos[i] = int16(f.Lines[i].No)
		}
		if state == refund.Rejected {
			f.ClosedAt = &f.Verification.At
		}
		b := &pgx.Batch{}
		if err := s.ledger.Queue(b, txn, ids); err != nil {
			return err
		}
		s.ledger.QueueResolution(b, res)
		if s.exportHook != nil && lock.Outstanding(f.ID) {
			paid, err := s.exportHook.OnExport(ctx, tx, b, Export{
				Form: f.Form, Port: req.Port, At: f.Verification.At, Today: today, Totals: tot, AnyUnits: anyUnits, Caller: req.Idem.Caller,
			})
			if err != nil {
				return err
			}
			if paid != nil {
				f.State, f.PayoutID = refund.Refunded, paid
			}
		}
		b.Queue(`UPDATE forms SET state = $2, verified_port = $3, verified_officer = $4, verified_at = $5,
			confirmed_eligible = $6, confirmed_gross = $7, closed_at = $8, payout_id = $9 WHERE id = $1`,
			f.ID, string(f.State), req.Port, req.Officer, f.Verification.At, tot.Eligible, tot.Gross, f.ClosedAt, f.PayoutID)
		b.Queue(`UPDATE form_lines l SET confirmed_qty = u.q FROM unnest($2::smallint[], $3::int[]) AS u(n, q)
			WHERE l.form_id = $1 AND l.line_no = u.n`, f.ID, nos, confirmed)
		b.Queue(`INSERT INTO audit_events (actor, action, object, request_id, detail) VALUES ($1, $2, $3, $4, $5)`,
			req.Idem.Caller, kind, f.Number, req.Idem.RequestID,
			map[string]any{"port": req.Port, "confirmed_eligible": tot.Eligible, "confirmed_gross": tot.Gross})
		if err := idempotency.Finish(b, req.Idem, f.Form); err != nil {
			return err
		}
		if err := tx.SendFinal(ctx, b); err != nil {
			return err
		}
		out = f.Form
		return nil
	})
	if idempotency.IsDuplicate(err) {
		var first Form
		if err := idempotency.Replay(ctx, s.pool, req.Idem, methodVerify, &first); err != nil {
			return Form{}, err
		}
		return first, nil
	}
	if err != nil {
		if _, ok := fault.As(err); ok {
			return Form{}, err
		}
		return Form{}, fmt.Errorf("verify export: %w", err)
	}
	return out, nil
}

// Export is what a customs verification found, for an ExportHook.
type Export struct {
	// Form is the form as verified (state VERIFIED or REJECTED, confirmed quantities set).
	Form     Form
	Port     string
	At       time.Time
	Today    time.Time
	Totals   refund.Totals
	AnyUnits bool
	Caller   string
}

// ExportHook takes part in the verification of a form with an immediate-refund
// prepayment outstanding, in its transaction, after the form's pending transfer is
// resolved: it may queue its own writes on b, and may settle the form at once by
// returning the id of the payout that paid it (an immediate refund completing). A form
// without an outstanding prepayment (nearly every form) does not call it, which saves the
// hook's read. Its writes must go on b, which ends the transaction with its COMMIT: b
// takes no result callback (db.Tx.SendFinal), and whatever decides whether to commit is
// read through tx.
type ExportHook interface {
	OnExport(ctx context.Context, tx pgx.Tx, b *pgx.Batch, e Export) (payoutID *uuid.UUID, err error)
}

// OnExport installs the hook every verification calls.
func (s *Service) OnExport(h ExportHook) { s.exportHook = h }

// confirmedQuantities checks that every line of f is confirmed exactly once, for 0 to its
// quantity, and returns the quantities in line order.
func confirmedQuantities(f Form, byLine map[int]int32) ([]int32, error) {
	l := fault.List{Kind: fault.Invalid, Reason: "INVALID_CONFIRMATION", Message: "the confirmed quantities do not fit the form"}
	out := make([]int32, len(f.Lines))
	for i, line := range f.Lines {
		q, ok := byLine[line.No]
		switch {
		case !ok:
			l.Add(fmt.Sprintf("lines[line_no=%d]", line.No), "line %d is not confirmed (send 0 for goods not presented)", line.No)
		case q < 0 || q > line.Quantity:
			l.Add(fmt.Sprintf("lines[line_no=%d].confirmed_quantity", line.No), "must be 0 to %d (the line's quantity)", line.Quantity)
		}
		out[i] = q
	}
	for _, no := range slices.Sorted(maps.Keys(byLine)) {
		if no < 1 || no > len(f.Lines) {
			l.Add(fmt.Sprintf("lines[line_no=%d]", no), "the form has no line %d", no)
		}
	}
	return out, l.Err()
}
