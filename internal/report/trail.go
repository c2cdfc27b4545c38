package report

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"taxrefund/internal/db"
)

// ErrNoForm is returned for a form number no form has.
var ErrNoForm = errors.New("no such form")

// TrailLine is one line of a form.
type TrailLine struct {
	LineNo        int32
	Description   string
	Quantity      int32
	ConfirmedQty  *int32
	Amount        decimal.Decimal
	VATRate       decimal.Decimal
	RefundRate    decimal.Decimal
	InvoiceNumber string
}

// TrailEntry is one journal entry of a transaction about a form.
type TrailEntry struct {
	TxnID         string
	Kind          string
	EffectiveDate time.Time
	Account       string
	Side          string
	Amount        decimal.Decimal
	Pending       bool
	Seq           int64
}

// TrailPayout is the payout of a form: its totals and the form's row in it.
type TrailPayout struct {
	ID, Desk, Agency, Method string
	PaidDate                 time.Time
	Gross, Fee, Net          decimal.Decimal
	FormGross, FormFee       decimal.Decimal
	FormNet                  decimal.Decimal
}

// Trail is one form with everything a reconciliation exception about it points at.
type Trail struct {
	Number, Store, State, Nationality, DocMasked string
	PurchaseDate                                 time.Time
	IssuedAt                                     time.Time
	Eligible, Gross                              decimal.Decimal
	VerifiedPort                                 *string
	VerifiedAt                                   *time.Time
	ConfirmedGross                               *decimal.Decimal
	Lines                                        []TrailLine
	Entries                                      []TrailEntry
	Payout                                       *TrailPayout
}

const trailFormSQL = `
SELECT id, number, store_code, state, nationality, doc_masked, purchase_date, issued_at, eligible_amount, gross_refund,
       verified_port, verified_at, confirmed_gross, pending_id, payout_id
  FROM forms WHERE number = $1`

const trailLinesSQL = `
SELECT line_no, description, quantity, confirmed_qty, amount, vat_rate, refund_rate, invoice_number
  FROM form_lines WHERE form_id = $1 ORDER BY line_no`

// The form's transactions: its issue (the pending transfer's), the one that resolved the
// pending transfer, and its payout's; by their primary keys, never a scan.
const trailEntriesSQL = `
WITH txn AS (
	SELECT $1::uuid AS id
	UNION SELECT txn_id FROM pending_resolutions WHERE pending_id = $1
	UNION SELECT txn_id FROM payouts WHERE id = $2 AND txn_id IS NOT NULL)
SELECT t.id::text, t.kind, t.effective_date, a.code, e.side, e.amount, e.pending, coalesce(s.seq, 0)
  FROM txn JOIN journal_txns t ON t.id = txn.id
  JOIN journal_entries e ON e.txn_id = t.id
  JOIN accounts a ON a.id = e.account_id
  LEFT JOIN seals s ON s.chain = 'journal' AND s.row_id = t.id::text
 ORDER BY t.created_at, t.id, e.pending DESC, e.side DESC, a.code`

const trailPayoutSQL = `
SELECT p.id::text, p.desk_code, p.agency_code, p.method, p.paid_date, p.gross_refund, p.fee, p.net_refund,
       pf.gross_refund, pf.fee, pf.net_refund
  FROM payouts p JOIN payout_forms pf ON pf.payout_id = p.id AND pf.form_id = $2
 WHERE p.id = $1`

// FormTrail reads a form, its lines, the journal entries of its transactions and its
// payout (ErrNoForm when no form has the number).
func FormTrail(ctx context.Context, q db.DBTX, number string) (Trail, error) {
	var t Trail
	var id, pendingID [16]byte
	var payoutID *[16]byte
	err := q.QueryRow(ctx, trailFormSQL, number).Scan(&id, &t.Number, &t.Store, &t.State, &t.Nationality, &t.DocMasked, &t.PurchaseDate,
		&t.IssuedAt, &t.Eligible, &t.Gross, &t.VerifiedPort, &t.VerifiedAt, &t.ConfirmedGross, &pendingID, &payoutID)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, ErrNoForm
	}
	if err != nil {
		return t, fmt.Errorf("form trail: %w", err)
	}
	rows, err := q.Query(ctx, trailLinesSQL, id)
	if err != nil {
		return t, fmt.Errorf("form trail lines: %w", err)
	}
	t.Lines, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (TrailLine, error) {
		var l TrailLine
		err := row.Scan(&l.LineNo, &l.Description, &l.Quantity, &l.ConfirmedQty, &l.Amount, &l.VATRate, &l.RefundRate, &l.InvoiceNumber)
		return l, err
	})
	if err != nil {
		return t, fmt.Errorf("form trail lines: %w", err)
	}
	rows, err = q.Query(ctx, trailEntriesSQL, pendingID, payoutID)
	if err != nil {
		return t, fmt.Errorf("form trail entries: %w", err)
	}
	t.Entries, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (TrailEntry, error) {
		var e TrailEntry
		err := row.Scan(&e.TxnID, &e.Kind, &e.EffectiveDate, &e.Account, &e.Side, &e.Amount, &e.Pending, &e.Seq)
		return e, err
	})
	if err != nil {
		return t, fmt.Errorf("form trail entries: %w", err)
	}
	if payoutID == nil {
		return t, nil
	}
	var p TrailPayout
	err = q.QueryRow(ctx, trailPayoutSQL, *payoutID, id).Scan(&p.ID, &p.Desk, &p.Agency, &p.Method, &p.PaidDate, &p.Gross, &p.Fee, &p.Net,
		&p.FormGross, &p.FormFee, &p.FormNet)
	if errors.Is(err, pgx.ErrNoRows) {
		// The form names a payout that has no row for it: the invariants report it.
		return t, nil
	}
	if err != nil {
		return t, fmt.Errorf("form trail payout: %w", err)
	}
	t.Payout = &p
	return t, nil
}
