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
// pending transfer, and its payout's; by their primary keys, never a scan. With $1 NULL,
// the payout's alone (a payout's trail).
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
	if t.Entries, err = trailEntries(ctx, q, pendingID, payoutID); err != nil {
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

// ErrNoPayout is returned for a payout id no payout has.
var ErrNoPayout = errors.New("no such payout")

// PayoutForm is one form of a payout: the form, and its row in the payout.
type PayoutForm struct {
	Number, Store, State string
	ConfirmedGross       *decimal.Decimal
	Eligible, Gross      decimal.Decimal
	Fee, Net             decimal.Decimal
}

// PayoutDeclaration is a declaration a payout is in.
type PayoutDeclaration struct {
	ID, Agency, Status string
	Month              time.Time
}

// PayoutTrail is one payout with everything a reconciliation exception about it points
// at: its forms and their rows, the entries of its transaction and its declarations.
type PayoutTrail struct {
	ID, Desk, Agency, Cashier, Method string
	Port                              *string
	PaidAt, PaidDate                  time.Time
	FeeRate                           decimal.Decimal
	Gross, Fee, Net                   decimal.Decimal
	// The sums of the forms' rows.
	FormsGross, FormsFee, FormsNet decimal.Decimal
	Forms                          []PayoutForm
	Entries                        []TrailEntry
	Declarations                   []PayoutDeclaration
}

const payoutTrailSQL = `
SELECT id::text, desk_code, agency_code, port_code, cashier, method, paid_at, paid_date, fee_rate, gross_refund, fee, net_refund
  FROM payouts WHERE id = $1`

// The payout's rows, by the primary key's prefix, and their forms by theirs.
const payoutTrailFormsSQL = `
SELECT f.number, f.store_code, f.state, f.confirmed_gross, pf.eligible_amount, pf.gross_refund, pf.fee, pf.net_refund
  FROM payout_forms pf JOIN forms f ON f.id = pf.form_id
 WHERE pf.payout_id = $1
 ORDER BY f.number`

// declaration_payouts_payout (00003) serves the lookup by payout.
const payoutTrailDeclarationsSQL = `
SELECT d.id::text, d.agency_code, d.month, d.status
  FROM declaration_payouts dp JOIN declarations d ON d.id = dp.declaration_id
 WHERE dp.payout_id = $1
 ORDER BY d.declared_at, d.id`

// PayoutTrailOf reads a payout, its forms and their rows, the entries of its journal
// transaction and the declarations it is in (ErrNoPayout when no payout has the id).
func PayoutTrailOf(ctx context.Context, q db.DBTX, id [16]byte) (PayoutTrail, error) {
	var t PayoutTrail
	err := q.QueryRow(ctx, payoutTrailSQL, id).Scan(&t.ID, &t.Desk, &t.Agency, &t.Port, &t.Cashier, &t.Method, &t.PaidAt, &t.PaidDate,
		&t.FeeRate, &t.Gross, &t.Fee, &t.Net)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, ErrNoPayout
	}
	if err != nil {
		return t, fmt.Errorf("payout trail: %w", err)
	}
	rows, err := q.Query(ctx, payoutTrailFormsSQL, id)
	if err != nil {
		return t, fmt.Errorf("payout trail forms: %w", err)
	}
	t.Forms, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (PayoutForm, error) {
		var f PayoutForm
		err := row.Scan(&f.Number, &f.Store, &f.State, &f.ConfirmedGross, &f.Eligible, &f.Gross, &f.Fee, &f.Net)
		return f, err
	})
	if err != nil {
		return t, fmt.Errorf("payout trail forms: %w", err)
	}
	for _, f := range t.Forms {
		t.FormsGross, t.FormsFee, t.FormsNet = t.FormsGross.Add(f.Gross), t.FormsFee.Add(f.Fee), t.FormsNet.Add(f.Net)
	}
	// The payout's own transaction (none for a zero payout): no form's pending transfer.
	if t.Entries, err = trailEntries(ctx, q, nil, id); err != nil {
		return t, fmt.Errorf("payout trail entries: %w", err)
	}
	rows, err = q.Query(ctx, payoutTrailDeclarationsSQL, id)
	if err != nil {
		return t, fmt.Errorf("payout trail declarations: %w", err)
	}
	t.Declarations, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (PayoutDeclaration, error) {
		var d PayoutDeclaration
		err := row.Scan(&d.ID, &d.Agency, &d.Month, &d.Status)
		return d, err
	})
	if err != nil {
		return t, fmt.Errorf("payout trail declarations: %w", err)
	}
	return t, nil
}

// trailEntries reads the entries of the journal transactions trailEntriesSQL finds for a
// form's pending transfer and a payout (either may be nil).
func trailEntries(ctx context.Context, q db.DBTX, pendingID, payoutID any) ([]TrailEntry, error) {
	rows, err := q.Query(ctx, trailEntriesSQL, pendingID, payoutID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (TrailEntry, error) {
		var e TrailEntry
		err := row.Scan(&e.TxnID, &e.Kind, &e.EffectiveDate, &e.Account, &e.Side, &e.Amount, &e.Pending, &e.Seq)
		return e, err
	})
}
