// Package settlement runs the monthly settlement of DOMAIN.md §7: an agency declares the
// previous month's refunds (结算申报表), the authority approves — posting the
// reimbursement — or returns the declaration with reasons, and closes months.
package settlement

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"taxrefund/internal/anchor"
	"taxrefund/internal/audit"
	"taxrefund/internal/db"
	"taxrefund/internal/fault"
	"taxrefund/internal/idempotency"
	"taxrefund/internal/ledger"
	"taxrefund/internal/refund"
)

// Declaration statuses.
const (
	Declared = "DECLARED"
	Returned = "RETURNED"
	Approved = "APPROVED"
)

// Line is one refunded form of a declaration.
type Line struct {
	FormNumber   string
	PayoutID     uuid.UUID
	StoreCode    string
	VerifiedPort string
	VerifiedAt   time.Time
	Receipt      string
	PaidAt       time.Time
	Gross        decimal.Decimal
	Fee          decimal.Decimal
	Net          decimal.Decimal
}

// Declaration is an agency's claim for one month.
type Declaration struct {
	db.Declaration
	Lines []Line
	// Checkpoints are the latest signed checkpoints of the month's hash chains, as of
	// when the declaration was read (not part of the stored answer).
	Checkpoints []anchor.Checkpoint `json:"-"`
}

// Anchor signs the hash chains' heads outside the database (package anchor).
type Anchor interface {
	// CloseMonth signs the heads at a month's close.
	CloseMonth(ctx context.Context, month time.Time) error
	// Latest returns the latest signed checkpoints of a month ("YYYY-MM").
	Latest(month string) ([]anchor.Checkpoint, error)
}

// Service declares, reviews and closes months.
type Service struct {
	pool   *pgxpool.Pool
	q      *db.Queries
	ledger *ledger.Store
	now    func() time.Time
	anchor Anchor
}

// SetAnchor makes every month close sign the chain heads, and declarations carry their
// month's latest checkpoints. Without it neither happens.
func (s *Service) SetAnchor(a Anchor) { s.anchor = a }

// Checkpoints returns the latest signed checkpoints of month, one per chain; none
// without an anchor.
func (s *Service) Checkpoints(month time.Time) ([]anchor.Checkpoint, error) {
	if s.anchor == nil {
		return nil, nil
	}
	return s.anchor.Latest(FormatMonth(month))
}

// withCheckpoints adds the month's checkpoints to a declaration read or written.
func (s *Service) withCheckpoints(d Declaration, err error) (Declaration, error) {
	if err != nil {
		return d, err
	}
	d.Checkpoints, err = s.Checkpoints(d.Month)
	if err != nil {
		return d, fmt.Errorf("checkpoints of %s: %w", FormatMonth(d.Month), err)
	}
	return d, nil
}

// New returns a Service; now nil means time.Now.
func New(pool *pgxpool.Pool, led *ledger.Store, now func() time.Time) *Service {
	now = db.Clock(now)
	return &Service{pool: pool, q: db.New(), ledger: led, now: now}
}

// MonthStart returns the first day of t's month.
func MonthStart(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// ParseMonth parses "YYYY-MM".
func ParseMonth(s string) (time.Time, error) {
	return time.Parse("2006-01", s)
}

// FormatMonth renders a month as "YYYY-MM".
func FormatMonth(m time.Time) string { return m.Format("2006-01") }

// requireEnded refuses the current or a future local month.
func (s *Service) requireEnded(month time.Time, field string) error {
	current := MonthStart(refund.LocalDate(s.now()))
	if !month.Before(current) {
		return fault.Field(fault.Precondition, "MONTH_NOT_ENDED", field,
			fmt.Sprintf("%s has not ended (Asia/Shanghai): only a past month can be declared or closed", FormatMonth(month)))
	}
	return nil
}

// Declare declares agency's payouts of month: every payout made by its desks with a
// local payment date in the month. Once per agency and month; a RETURNED declaration
// may be declared again.
func (s *Service) Declare(ctx context.Context, key idempotency.Key, agency string, month time.Time) (Declaration, error) {
	if err := s.requireEnded(month, "month"); err != nil {
		return Declaration{}, err
	}
	var appointed time.Time
	if err := s.pool.QueryRow(ctx, `SELECT appointed_on FROM agencies WHERE code = $1`, agency).Scan(&appointed); err != nil {
		return Declaration{}, fmt.Errorf("agency %s: %w", agency, err)
	}
	if month.Before(MonthStart(appointed)) {
		return Declaration{}, fault.Field(fault.Precondition, "MONTH_BEFORE_AGENCY", "month",
			fmt.Sprintf("%s is before agency %s was appointed (%s): there is nothing to declare", FormatMonth(month), agency, appointed.Format(time.DateOnly)))
	}
	var out Declaration
	err := db.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if err := idempotency.Begin(ctx, tx, key, "DeclareMonth"); err != nil {
			return err
		}
		rows, err := s.q.MonthPayouts(ctx, tx, db.MonthPayoutsParams{AgencyCode: agency, MonthStart: month, MonthEnd: month.AddDate(0, 1, 0)})
		if err != nil {
			return err
		}
		d := Declaration{Declaration: db.Declaration{
			ID: ledger.NewID(), AgencyCode: agency, Month: month, Status: Declared,
			DeclaredBy: key.Caller, DeclaredAt: s.now().UTC(), ReturnReasons: []string{},
		}}
		payoutIDs := []uuid.UUID{}
		seen := map[uuid.UUID]bool{}
		for _, r := range rows {
			d.Lines = append(d.Lines, lineOf(r.PayoutID, r.PaidAt, r.ReceiptReference, r.Number, r.StoreCode, r.VerifiedPort, r.VerifiedAt, r.GrossRefund, r.Fee, r.NetRefund))
			d.GrossRefund, d.Fee, d.NetRefund = d.GrossRefund.Add(r.GrossRefund), d.Fee.Add(r.Fee), d.NetRefund.Add(r.NetRefund)
			if !seen[r.PayoutID] {
				seen[r.PayoutID] = true
				payoutIDs = append(payoutIDs, r.PayoutID)
			}
		}
		d.Forms = int32(len(rows))
		err = s.q.InsertDeclaration(ctx, tx, db.InsertDeclarationParams{
			ID: d.ID, AgencyCode: agency, Month: month, DeclaredBy: d.DeclaredBy, DeclaredAt: d.DeclaredAt,
			Forms: d.Forms, GrossRefund: d.GrossRefund, Fee: d.Fee, NetRefund: d.NetRefund,
		})
		if db.IsUniqueViolation(err, "declarations_one_live") {
			return fault.Field(fault.Precondition, "ALREADY_DECLARED", "month",
				fmt.Sprintf("%s has already declared %s; only a returned declaration can be declared again", agency, FormatMonth(month)))
		}
		if err != nil {
			return err
		}
		if err := s.q.InsertDeclarationPayouts(ctx, tx, db.InsertDeclarationPayoutsParams{DeclarationID: d.ID, PayoutIds: payoutIDs}); err != nil {
			return err
		}
		out = d
		return audit.Close(ctx, tx, key, "MONTH_DECLARED", d.ID.String(),
			map[string]any{"agency": agency, "month": FormatMonth(month), "forms": d.Forms, "gross": d.GrossRefund}, d)
	})
	return s.withCheckpoints(idempotency.Result(ctx, s.pool, key, "DeclareMonth", err, out))
}

// Approve approves a DECLARED declaration and posts the reimbursement S (the declared
// gross refunds): Dr authority:agency_payable:A / Cr authority:treasury and
// Dr agency:A:bank / Cr agency:A:receivable. Its forms become SETTLED.
func (s *Service) Approve(ctx context.Context, key idempotency.Key, id uuid.UUID) (Declaration, error) {
	return s.review(ctx, key, id, "ApproveDeclaration", func(ctx context.Context, tx pgx.Tx, d *Declaration) error {
		if err := s.checkStillTrue(ctx, tx, d); err != nil {
			return err
		}
		now := s.now()
		d.Status = Approved
		b := &pgx.Batch{}
		if d.GrossRefund.IsPositive() {
			a := d.AgencyCode
			ids, err := s.ledger.Accounts(ctx, tx, ledger.AgencyPayable(a), ledger.Treasury, ledger.Bank(a), ledger.Receivable(a))
			if err != nil {
				return err
			}
			txn := ledger.Txn{
				ID: ledger.NewID(), IdemKey: "declaration:" + d.ID.String() + ":reimburse", Kind: "MONTH_REIMBURSED",
				Ref: d.ID.String(), EffectiveDate: refund.LocalDate(now),
				Entries: []ledger.Entry{
					{Account: ledger.AgencyPayable(a), Side: ledger.Debit, Amount: d.GrossRefund},
					{Account: ledger.Treasury, Side: ledger.Credit, Amount: d.GrossRefund},
					{Account: ledger.Bank(a), Side: ledger.Debit, Amount: d.GrossRefund},
					{Account: ledger.Receivable(a), Side: ledger.Credit, Amount: d.GrossRefund},
				},
			}
			if err := s.ledger.Queue(b, txn, ids); err != nil {
				return err
			}
			d.TxnID = &txn.ID
		}
		reviewer := key.Caller
		at := now.UTC()
		d.ReviewedBy, d.ReviewedAt = &reviewer, &at
		b.Queue(`UPDATE declarations SET status = 'APPROVED', reviewed_by = $2, reviewed_at = $3, txn_id = $4 WHERE id = $1`,
			d.ID, reviewer, at, d.TxnID)
		b.Queue(`UPDATE forms SET state = 'SETTLED'
			WHERE payout_id IN (SELECT payout_id FROM declaration_payouts WHERE declaration_id = $1) AND state = 'REFUNDED'`, d.ID)
		return db.SendBatch(ctx, tx, b)
	})
}

// Return sends a DECLARED declaration back with reasons; the agency may declare again.
func (s *Service) Return(ctx context.Context, key idempotency.Key, id uuid.UUID, reasons []string) (Declaration, error) {
	if len(reasons) == 0 {
		return Declaration{}, fault.Field(fault.Invalid, "INVALID_REQUEST", "reasons", "say why the declaration is returned")
	}
	return s.review(ctx, key, id, "ReturnDeclaration", func(ctx context.Context, tx pgx.Tx, d *Declaration) error {
		reviewer := key.Caller
		at := s.now().UTC()
		d.Status, d.ReviewedBy, d.ReviewedAt, d.ReturnReasons = Returned, &reviewer, &at, reasons
		return s.q.ReviewDeclaration(ctx, tx, db.ReviewDeclarationParams{ID: d.ID, Status: Returned, ReviewedBy: &reviewer, ReviewedAt: &at, ReturnReasons: reasons})
	})
}

// review runs a DECLARED → APPROVED/RETURNED change under the declaration's row lock.
func (s *Service) review(ctx context.Context, key idempotency.Key, id uuid.UUID, method string,
	change func(context.Context, pgx.Tx, *Declaration) error) (Declaration, error) {
	var out Declaration
	err := db.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if err := idempotency.Begin(ctx, tx, key, method); err != nil {
			return err
		}
		row, err := s.q.GetDeclarationForUpdate(ctx, tx, id)
		if errors.Is(err, pgx.ErrNoRows) {
			return fault.Field(fault.NotFound, "DECLARATION_NOT_FOUND", "declaration_id", "no such declaration")
		}
		if err != nil {
			return err
		}
		if row.Status != Declared {
			return fault.Field(fault.Precondition, "DECLARATION_STATUS", "declaration_id",
				fmt.Sprintf("declaration %s is %s; only a DECLARED one can be reviewed", id, row.Status)).With("status", row.Status)
		}
		d := Declaration{Declaration: row}
		if d.Lines, err = s.lines(ctx, tx, id); err != nil {
			return err
		}
		if err := change(ctx, tx, &d); err != nil {
			return err
		}
		out = d
		return audit.Close(ctx, tx, key, "DECLARATION_"+d.Status, d.ID.String(),
			map[string]any{"agency": d.AgencyCode, "month": FormatMonth(d.Month), "reasons": d.ReturnReasons}, d)
	})
	return s.withCheckpoints(idempotency.Result(ctx, s.pool, key, method, err, out))
}

// checkStillTrue refuses to approve a declaration whose lines no longer add up to its
// totals (a reconciliation exception, never expected).
func (s *Service) checkStillTrue(ctx context.Context, tx pgx.Tx, d *Declaration) error {
	var g, f, n decimal.Decimal
	for _, l := range d.Lines {
		g, f, n = g.Add(l.Gross), f.Add(l.Fee), n.Add(l.Net)
	}
	if !g.Equal(d.GrossRefund) || !f.Equal(d.Fee) || !n.Equal(d.NetRefund) || int(d.Forms) != len(d.Lines) {
		return fault.New(fault.Precondition, "DECLARATION_MISMATCH",
			fmt.Sprintf("declaration %s totals %s/%s/%s but its payouts sum to %s/%s/%s: return it", d.ID, d.GrossRefund, d.Fee, d.NetRefund, g, f, n))
	}
	return nil
}

// CloseMonth freezes a past month: no journal transaction may take an effective date in
// it afterwards (the database refuses), so later corrections post in an open month.
// Closing a closed month is a no-op. Then, with an anchor, the chain heads are signed: a
// checkpoint of the month's close (again on a retry, which is harmless).
func (s *Service) CloseMonth(ctx context.Context, key idempotency.Key, month time.Time) (db.ClosedMonth, error) {
	if err := s.requireEnded(month, "month"); err != nil {
		return db.ClosedMonth{}, err
	}
	var out db.ClosedMonth
	err := db.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if err := idempotency.Begin(ctx, tx, key, "CloseMonth"); err != nil {
			return err
		}
		if err := s.q.CloseMonth(ctx, tx, db.CloseMonthParams{Month: month, ClosedBy: key.Caller}); err != nil {
			return err
		}
		cm, err := s.q.ClosedMonth(ctx, tx, month)
		if err != nil {
			return err
		}
		out = cm
		return audit.Close(ctx, tx, key, "MONTH_CLOSED", FormatMonth(month), map[string]any{}, cm)
	})
	out, err = idempotency.Result(ctx, s.pool, key, "CloseMonth", err, out)
	if err != nil || s.anchor == nil {
		return out, err
	}
	if err := s.anchor.CloseMonth(ctx, month); err != nil {
		return out, fault.New(fault.Unavailable, "CHECKPOINT_FAILED",
			fmt.Sprintf("%s is closed, but the checkpoint of its close could not be written (the server's log says why): retry with the same request_id", FormatMonth(month)))
	}
	return out, nil
}

// Get returns a declaration with its lines; agency, when not empty, must own it.
func (s *Service) Get(ctx context.Context, id uuid.UUID, agency string) (Declaration, error) {
	row, err := s.q.GetDeclaration(ctx, db.Scope(s.pool), id)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && agency != "" && row.AgencyCode != agency) {
		return Declaration{}, fault.Field(fault.NotFound, "DECLARATION_NOT_FOUND", "declaration_id", "no such declaration")
	}
	if err != nil {
		return Declaration{}, err
	}
	d := Declaration{Declaration: row}
	d.Lines, err = s.lines(ctx, db.Scope(s.pool), id)
	return s.withCheckpoints(d, err)
}

// List lists declarations (without lines), optionally filtered.
func (s *Service) List(ctx context.Context, agency string, month *time.Time, status string) ([]Declaration, error) {
	var a, st *string
	if agency != "" {
		a = &agency
	}
	if status != "" {
		st = &status
	}
	rows, err := s.q.ListDeclarations(ctx, s.pool, db.ListDeclarationsParams{AgencyCode: a, Month: month, Status: st})
	if err != nil {
		return nil, err
	}
	out := make([]Declaration, len(rows))
	for i, r := range rows {
		out[i] = Declaration{Declaration: r}
	}
	return out, nil
}

// AgencyOfDesk returns the agency a desk belongs to.
func (s *Service) AgencyOfDesk(ctx context.Context, desk string) (string, error) {
	a, err := s.q.DeskAgency(ctx, s.pool, desk)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fault.New(fault.Denied, "UNKNOWN_DESK", "this desk is not registered")
	}
	return a, err
}

func (s *Service) lines(ctx context.Context, q db.DBTX, id uuid.UUID) ([]Line, error) {
	rows, err := s.q.DeclarationLines(ctx, q, id)
	if err != nil {
		return nil, err
	}
	out := make([]Line, len(rows))
	for i, r := range rows {
		out[i] = lineOf(r.PayoutID, r.PaidAt, r.ReceiptReference, r.Number, r.StoreCode, r.VerifiedPort, r.VerifiedAt, r.GrossRefund, r.Fee, r.NetRefund)
	}
	return out, nil
}

func lineOf(payout uuid.UUID, paidAt time.Time, receipt, number, store string, port *string, verifiedAt *time.Time, g, f, n decimal.Decimal) Line {
	l := Line{FormNumber: number, PayoutID: payout, StoreCode: store, Receipt: receipt, PaidAt: paidAt, Gross: g, Fee: f, Net: n}
	if port != nil {
		l.VerifiedPort = *port
	}
	if verifiedAt != nil {
		l.VerifiedAt = *verifiedAt
	}
	return l
}
