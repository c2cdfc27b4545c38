package forms

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"taxrefund/internal/db"
	"taxrefund/internal/fault"
	"taxrefund/internal/idempotency"
	"taxrefund/internal/ledger"
	"taxrefund/internal/refund"
)

const methodVoid = "VoidForm"

// VoidRequest is a store's request to void a form whose goods came back.
type VoidRequest struct {
	Idem      Idempotency
	StoreCode string
	Number    string
	Reason    string
}

// Void voids an ISSUED form of the calling store: its pending ledger transfer is voided,
// its invoices are released for a new form.
func (s *Service) Void(ctx context.Context, req VoidRequest) (Form, error) {
	if !refund.ValidFormNumber(req.Number) {
		return Form{}, fault.Field(fault.Invalid, "FORM_NUMBER", "form_number", "not a form number (check the barcode or the typing)")
	}
	ids, err := s.ledger.Accounts(ctx, s.pool, ledger.RefundExpense, ledger.RefundPayable)
	if err != nil {
		return Form{}, err
	}
	var out Form
	err = db.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if err := idempotency.Begin(ctx, tx, req.Idem, methodVoid); err != nil {
			return err
		}
		f, err := s.lockForm(ctx, tx, req.Number)
		if err != nil {
			return err
		}
		if f.StoreCode != req.StoreCode {
			return notFound(req.Number)
		}
		if err := refund.RequireState(f.Number, f.State, refund.Issued, "voided"); err != nil {
			return err
		}
		if err := s.RequireNoPrepayment(ctx, tx, f.Form); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))`,
			sameDayLockKey(f.docIndex, f.StoreCode, f.PurchaseDate)); err != nil {
			return err
		}
		now := s.now()
		txn, res, err := ledger.Resolve(f.pending(), "form:"+f.Number+":void", "FORM_VOIDED", f.Number, refund.LocalDate(now), decimalZero)
		if err != nil {
			return err
		}
		f.State, f.ClosedAt = refund.Voided, &now
		b := &pgx.Batch{}
		if err := s.ledger.Queue(b, txn, ids); err != nil {
			return err
		}
		s.ledger.QueueResolution(b, res)
		b.Queue(`UPDATE forms SET state = 'VOIDED', closed_at = $2, close_reason = $3 WHERE id = $1`, f.ID, now, req.Reason)
		b.Queue(`UPDATE form_invoices SET live = false WHERE form_id = $1`, f.ID)
		b.Queue(`INSERT INTO audit_events (actor, action, object, request_id, detail) VALUES ($1, 'FORM_VOIDED', $2, $3, $4)`,
			req.Idem.Caller, f.Number, req.Idem.RequestID, map[string]any{"reason": req.Reason})
		if err := idempotency.Finish(b, req.Idem, f.Form); err != nil {
			return err
		}
		if err := db.SendBatch(ctx, tx, b); err != nil {
			return err
		}
		out = f.Form
		return nil
	})
	if idempotency.IsDuplicate(err) {
		var first Form
		if err := idempotency.Replay(ctx, s.pool, req.Idem, methodVoid, &first); err != nil {
			return Form{}, err
		}
		return first, nil
	}
	if err != nil {
		if _, ok := fault.As(err); ok {
			return Form{}, err
		}
		return Form{}, fmt.Errorf("void form: %w", err)
	}
	return out, nil
}

// lockedForm is a form read under a row lock, with what a state change needs.
type lockedForm struct {
	Form
	docIndex  []byte
	pendingID [16]byte
}

func (f lockedForm) pending() ledger.Pending {
	return ledger.Pending{ID: f.pendingID, Debit: ledger.RefundExpense, Credit: ledger.RefundPayable, Amount: f.Gross}
}

// lockForm reads a form and its lines FOR UPDATE.
func (s *Service) lockForm(ctx context.Context, tx pgx.Tx, number string) (lockedForm, error) {
	row, err := s.q.FormByNumberForUpdate(ctx, tx, number)
	if errors.Is(err, pgx.ErrNoRows) {
		return lockedForm{}, notFound(number)
	}
	if err != nil {
		return lockedForm{}, fmt.Errorf("lock form: %w", err)
	}
	forms, err := s.assemble(ctx, tx, []db.Form{row})
	if err != nil {
		return lockedForm{}, err
	}
	return lockedForm{Form: forms[0], docIndex: row.DocIndex, pendingID: row.PendingID}, nil
}

// Locked is a form read under a row lock inside a caller's transaction.
type Locked struct {
	Form
	DocIndex  []byte
	pendingID uuid.UUID
}

// LockMany reads the forms numbered numbers FOR UPDATE, in id order, inside tx, in one
// round trip (see QueueLock). Numbers that match no form are returned in missing.
func (s *Service) LockMany(ctx context.Context, tx pgx.Tx, numbers []string) (found []Locked, missing []string, err error) {
	b := &pgx.Batch{}
	r := s.QueueLock(b, numbers, true)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, nil, fmt.Errorf("lock forms: %w", err)
	}
	found, missing = r.Result()
	return found, missing, nil
}

func (f Locked) pending() ledger.Pending {
	return ledger.Pending{ID: f.pendingID, Debit: ledger.RefundExpense, Credit: ledger.RefundPayable, Amount: f.Gross}
}

// RequireNoPrepayment refuses a form whose immediate-refund prepayment is outstanding: the
// traveller holds the money until the refund point records it handed back or the card
// pre-authorization is captured.
func (s *Service) RequireNoPrepayment(ctx context.Context, q db.DBTX, forms ...Form) error {
	ids := make([]uuid.UUID, len(forms))
	for i, f := range forms {
		ids[i] = f.ID
	}
	open, err := s.q.FormsWithOutstandingPrepayment(ctx, q, ids)
	if err != nil {
		return fmt.Errorf("outstanding prepayments: %w", err)
	}
	for _, f := range forms {
		for _, id := range open {
			if id == f.ID {
				return prepaymentOutstanding(f.Number)
			}
		}
	}
	return nil
}

func prepaymentOutstanding(number string) error {
	return fault.Field(fault.Precondition, "PREPAYMENT_OUTSTANDING", "form_number",
		fmt.Sprintf("form %s has an immediate-refund prepayment outstanding: it must be handed back at the refund point (or captured) first", number)).With("form_number", number)
}
