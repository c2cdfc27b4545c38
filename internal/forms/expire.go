package forms

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"taxrefund/internal/db"
	"taxrefund/internal/ledger"
	"taxrefund/internal/refund"
)

// expireBatch is how many forms one expiry transaction handles.
const expireBatch = 200

// Expire moves every form still ISSUED after its export deadline to EXPIRED and voids its
// pending transfer (DOMAIN.md §5), in batches. Two servers may run it at once: each
// batch skips rows another holds, and a form expires at most once.
func (s *Service) Expire(ctx context.Context, actor string) (int, error) {
	ids, err := s.ledger.Accounts(ctx, s.pool, ledger.RefundExpense, ledger.RefundPayable)
	if err != nil {
		return 0, err
	}
	total := 0
	for {
		n := 0
		err := db.InTx(ctx, s.pool, func(tx pgx.Tx) error {
			now := s.now()
			today := refund.LocalDate(now)
			rows, err := tx.Query(ctx, `
				SELECT id, number, gross_refund, pending_id FROM forms
				 WHERE state = 'ISSUED' AND export_deadline < $1
				 ORDER BY export_deadline, id
				 LIMIT $2
				   FOR UPDATE SKIP LOCKED`, today, expireBatch)
			if err != nil {
				return err
			}
			type due struct {
				id      uuid.UUID
				number  string
				gross   decimal.Decimal
				pending uuid.UUID
			}
			list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (due, error) {
				var d due
				err := r.Scan(&d.id, &d.number, &d.gross, &d.pending)
				return d, err
			})
			if err != nil {
				return err
			}
			n = len(list)
			if n == 0 {
				return nil
			}
			b := &pgx.Batch{}
			formIDs := make([]uuid.UUID, n)
			for i, d := range list {
				p := ledger.Pending{ID: d.pending, Debit: ledger.RefundExpense, Credit: ledger.RefundPayable, Amount: d.gross}
				txn, res, err := ledger.Resolve(p, "form:"+d.number+":expire", "FORM_EXPIRED", d.number, today, decimalZero)
				if err != nil {
					return err
				}
				if err := s.ledger.Queue(b, txn, ids); err != nil {
					return err
				}
				s.ledger.QueueResolution(b, res)
				formIDs[i] = d.id
			}
			b.Queue(`UPDATE forms SET state = 'EXPIRED', closed_at = $2, close_reason = 'export not confirmed within the window' WHERE id = ANY($1)`, formIDs, now)
			b.Queue(`INSERT INTO audit_events (actor, action, object, detail)
				SELECT $1, 'FORM_EXPIRED', f.number, '{}'::jsonb FROM forms f WHERE f.id = ANY($2)`, actor, formIDs)
			return db.SendBatch(ctx, tx, b)
		})
		if err != nil {
			return total, fmt.Errorf("expire forms: %w", err)
		}
		total += n
		if n < expireBatch {
			return total, nil
		}
	}
}
