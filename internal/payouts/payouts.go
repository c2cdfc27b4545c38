// Package payouts pays refunds at the airport desks: one payout covers one or more
// VERIFIED forms of one traveller and is made exactly once, whatever retries, races
// between desks or crashes happen (DOMAIN.md §5, §8).
package payouts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"taxrefund/internal/db"
	"taxrefund/internal/fault"
	"taxrefund/internal/forms"
	"taxrefund/internal/idempotency"
	"taxrefund/internal/ledger"
	"taxrefund/internal/money"
	"taxrefund/internal/params"
	"taxrefund/internal/pii"
	"taxrefund/internal/refund"
)

// Method is how a refund is paid.
type Method string

// The payment methods.
const (
	Cash     Method = "CASH"
	BankCard Method = "BANK_CARD"
	Mobile   Method = "MOBILE"
)

// FormShare is one form's part of a payout.
type FormShare struct {
	Number   string
	Eligible decimal.Decimal
	Gross    decimal.Decimal
	Fee      decimal.Decimal
	Net      decimal.Decimal
}

// Payout is one payment to a traveller, as the receipt (收款回执单) shows it.
type Payout struct {
	ID               uuid.UUID
	DeskCode         string
	AgencyCode       string
	Port             string
	Cashier          string
	Method           Method
	AccountMasked    string
	ReceiptReference string
	PaidAt           time.Time
	DocType          refund.DocumentType
	DocCountry       string
	DocMasked        string
	FeeRate          decimal.Decimal
	Gross            decimal.Decimal
	Fee              decimal.Decimal
	Net              decimal.Decimal
	Forms            []FormShare
}

// Service makes and reads payouts.
type Service struct {
	pool   *pgxpool.Pool
	q      *db.Queries
	ledger *ledger.Store
	keys   *pii.Keyring
	params *params.Cache
	forms  *forms.Service
	now    func() time.Time
	log    *slog.Logger
	desks  deskCache
}

// Deps are what a Service needs.
type Deps struct {
	Pool   *pgxpool.Pool
	Ledger *ledger.Store
	Keys   *pii.Keyring
	Params *params.Cache
	Forms  *forms.Service
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	Log *slog.Logger
}

// New returns a Service.
func New(d Deps) *Service {
	now := db.Clock(d.Now)
	return &Service{pool: d.Pool, q: db.New(), ledger: d.Ledger, keys: d.Keys, params: d.Params, forms: d.Forms, now: now, log: d.Log}
}

const methodSettle = "SettleRefund"

// SettleRequest is a cashier's payout of one or more VERIFIED forms of one traveller.
type SettleRequest struct {
	Idem      idempotency.Key
	DeskCode  string
	Cashier   string
	Numbers   []string
	Presented refund.Document
	Method    Method
	// Account is the card number or wallet account (BANK_CARD, MOBILE); only its masked
	// form is stored.
	Account string
	Receipt string
}

var accountPattern = regexp.MustCompile(`^[0-9A-Za-z@._+-]{4,64}$`)

// Settle pays the forms: F and N per form from the agency's fee rate, the cash cap
// across all desks for the traveller's day, the ledger entries of DOMAIN.md §8, all in
// one transaction. A retried request returns the first payout; a form already paid is
// refused naming the payout that paid it.
func (s *Service) Settle(ctx context.Context, req SettleRequest) (Payout, error) {
	if err := checkShape(req); err != nil {
		return Payout{}, err
	}
	desk, err := s.desks.get(ctx, s.pool, req.DeskCode)
	if errors.Is(err, pgx.ErrNoRows) {
		return Payout{}, fault.New(fault.Denied, "UNKNOWN_DESK", "this desk is not registered")
	}
	if err != nil {
		return Payout{}, fmt.Errorf("desk: %w", err)
	}
	if desk.Kind != "AIRPORT" || desk.PortCode == nil {
		return Payout{}, fault.New(fault.Precondition, "NOT_AN_AIRPORT_DESK", "refunds after export are paid at an airport desk")
	}
	agency := desk.AgencyCode
	payAccount := ledger.Transfers(agency)
	if req.Method == Cash {
		payAccount = ledger.Cash(agency, desk.Code)
	}
	ids, err := s.ledger.Accounts(ctx, s.pool, ledger.RefundPayable, ledger.AgencyPayable(agency), ledger.Receivable(agency),
		payAccount, ledger.FeeIncome(agency))
	if err != nil {
		return Payout{}, err
	}
	presented := s.keys.BlindIndex(string(req.Presented.Type), req.Presented.IssuingCountry, req.Presented.Number)
	// Read the parameters before the transaction: a cache reload inside it would need a
	// second connection while holding the first.
	table, err := s.params.Get(ctx)
	if err != nil {
		return Payout{}, err
	}

	var out Payout
	err = db.InPipelinedTx(ctx, s.pool, func(tx *db.Tx) error {
		now := s.now()
		today := refund.LocalDate(now)
		// One round trip begins the transaction, takes the idempotency record (a concurrent
		// duplicate waits on it and aborts the batch), locks and reads the forms and their
		// prepayments and, for cash, takes the traveller's cash lock for the day and reads
		// what was paid under it; everything is then decided here, and written and
		// committed in one more round trip.
		read := &pgx.Batch{}
		idempotency.QueueBegin(read, req.Idem, methodSettle)
		lock := s.forms.QueueLock(read, req.Numbers, false)
		var cashPaid decimal.Decimal
		if req.Method == Cash {
			queueCashPaid(read, presented, today, &cashPaid)
		}
		if err := tx.SendBatch(ctx, read).Close(); err != nil {
			return err
		}
		locked, missing := lock.Result()
		if len(missing) > 0 {
			return fault.Field(fault.NotFound, "FORM_NOT_FOUND", "form_numbers", fmt.Sprintf("no form %s", missing[0]))
		}
		if err := checkForms(locked, presented, *desk.PortCode); err != nil {
			return err
		}
		plain := make([]forms.Form, len(locked))
		for i, f := range locked {
			plain[i] = f.Form
		}
		if err := lock.RequireNoPrepayment(plain...); err != nil {
			return err
		}
		feeRate, err := table.Require(params.AgencyFeeRate, agency, today)
		if err != nil {
			return err
		}
		p := Payout{
			ID: ledger.NewID(), DeskCode: desk.Code, AgencyCode: agency, Port: *desk.PortCode, Cashier: req.Cashier,
			Method: req.Method, AccountMasked: maskAccount(req.Account), ReceiptReference: req.Receipt, PaidAt: now.UTC(),
			DocType: locked[0].DocType, DocCountry: locked[0].DocCountry, DocMasked: locked[0].DocMasked, FeeRate: feeRate,
		}
		for _, f := range locked {
			share := shareOf(f.Form, feeRate)
			p.Forms = append(p.Forms, share)
			p.Gross, p.Fee, p.Net = p.Gross.Add(share.Gross), p.Fee.Add(share.Fee), p.Net.Add(share.Net)
		}
		if req.Method == Cash {
			if err := checkCashCap(table, today, cashPaid, p.Net); err != nil {
				return err
			}
		}
		txn := ledger.Txn{
			ID: ledger.NewID(), IdemKey: "payout:" + p.ID.String(), Kind: "REFUND_PAID", Ref: p.ID.String(), EffectiveDate: today,
			Entries: positive(
				ledger.Entry{Account: ledger.RefundPayable, Side: ledger.Debit, Amount: p.Gross},
				ledger.Entry{Account: ledger.AgencyPayable(agency), Side: ledger.Credit, Amount: p.Gross},
				ledger.Entry{Account: ledger.Receivable(agency), Side: ledger.Debit, Amount: p.Gross},
				ledger.Entry{Account: payAccount, Side: ledger.Credit, Amount: p.Net},
				ledger.Entry{Account: ledger.FeeIncome(agency), Side: ledger.Credit, Amount: p.Fee},
			),
		}
		b := &pgx.Batch{}
		var txnID *uuid.UUID
		if len(txn.Entries) > 0 {
			if err := s.ledger.Queue(b, txn, ids); err != nil {
				return err
			}
			txnID = &txn.ID
		} // else every form's refund rounds to 0.00: the payout closes them and moves no money
		b.Queue(`INSERT INTO payouts (id, desk_code, agency_code, port_code, cashier, method, account_masked, receipt_reference,
			doc_index, doc_type, doc_country, doc_masked, paid_at, paid_date, fee_rate, gross_refund, fee, net_refund, txn_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)`,
			p.ID, p.DeskCode, agency, p.Port, p.Cashier, string(p.Method), p.AccountMasked, p.ReceiptReference,
			presented, string(p.DocType), p.DocCountry, p.DocMasked, p.PaidAt, today, feeRate, p.Gross, p.Fee, p.Net, txnID)
		formIDs := make([]uuid.UUID, len(locked))
		for i, f := range locked {
			sh := p.Forms[i]
			formIDs[i] = f.ID
			b.Queue(`INSERT INTO payout_forms (payout_id, form_id, eligible_amount, gross_refund, fee, net_refund) VALUES ($1, $2, $3, $4, $5, $6)`,
				p.ID, f.ID, sh.Eligible, sh.Gross, sh.Fee, sh.Net)
		}
		b.Queue(`UPDATE forms SET state = 'REFUNDED', payout_id = $2 WHERE id = ANY($1)`, formIDs, p.ID)
		b.Queue(`INSERT INTO audit_events (actor, action, object, request_id, detail) VALUES ($1, 'REFUND_PAID', $2, $3, $4)`,
			req.Idem.Caller, p.ID.String(), req.Idem.RequestID,
			map[string]any{"forms": req.Numbers, "method": p.Method, "gross": p.Gross, "fee": p.Fee, "net": p.Net})
		if err := idempotency.Finish(b, req.Idem, p); err != nil {
			return err
		}
		if err := tx.SendFinal(ctx, b); err != nil {
			return err
		}
		out = p
		return nil
	})
	if idempotency.IsDuplicate(err) {
		var first Payout
		if err := idempotency.Replay(ctx, s.pool, req.Idem, methodSettle, &first); err != nil {
			return Payout{}, err
		}
		return first, nil
	}
	if err != nil {
		if _, ok := fault.As(err); ok {
			return Payout{}, err
		}
		return Payout{}, fmt.Errorf("settle refund: %w", err)
	}
	return out, nil
}

func checkShape(req SettleRequest) error {
	l := fault.List{Kind: fault.Invalid, Reason: "INVALID_REQUEST", Message: "the request has invalid fields"}
	if len(req.Numbers) == 0 || len(req.Numbers) > 20 {
		l.Add("form_numbers", "list 1 to 20 forms")
	}
	seen := map[string]bool{}
	for i, n := range req.Numbers {
		if !refund.ValidFormNumber(n) {
			l.Add(fmt.Sprintf("form_numbers[%d]", i), "not a form number (check the barcode or the typing)")
		} else if seen[n] {
			l.Add(fmt.Sprintf("form_numbers[%d]", i), "form %s is listed twice", n)
		}
		seen[n] = true
	}
	switch req.Method {
	case Cash:
		if req.Account != "" {
			l.Add("account_reference", "must be empty for a cash payout")
		}
	case BankCard, Mobile:
		if !accountPattern.MatchString(req.Account) {
			l.Add("account_reference", "must be the card number or wallet account (4 to 64 letters, digits or @._+-)")
		}
	default:
		l.Add("method", "must be CASH, BANK_CARD or MOBILE")
	}
	if req.Receipt == "" || len(req.Receipt) > 64 {
		l.Add("receipt_reference", "is required: the reference of the receipt the traveller signed (at most 64 characters)")
	}
	return l.Err()
}

// checkForms refuses forms of another traveller than the presented document, and forms
// not VERIFIED, naming the payout that already paid a form.
func checkForms(locked []forms.Locked, presented []byte, port string) error {
	for _, f := range locked {
		if !bytes.Equal(f.DocIndex, presented) {
			return fault.Field(fault.Precondition, "DOCUMENT_MISMATCH", "presented_document",
				fmt.Sprintf("form %s was not issued to the presented document (one payout pays one traveller)", f.Number))
		}
	}
	for _, f := range locked {
		if f.State == refund.Verified {
			continue
		}
		e := fault.Field(fault.Precondition, "FORM_NOT_VERIFIED", "form_numbers",
			fmt.Sprintf("form %s is %s; only a VERIFIED form can be paid", f.Number, f.State)).With("form_number", f.Number).With("state", string(f.State))
		if f.PayoutID != nil {
			e.Reason = "FORM_ALREADY_PAID"
			e.Message = fmt.Sprintf("form %s was already paid by payout %s", f.Number, f.PayoutID)
			e.Violations[0].Description = e.Message
			e.With("payout_id", f.PayoutID.String())
		}
		return e
	}
	// DOMAIN.md §5: paid only at the port where customs confirmed the export, where the
	// traveller is about to board.
	for _, f := range locked {
		if f.Verification != nil && f.Verification.Port != port {
			return fault.Field(fault.Precondition, "WRONG_PORT", "form_numbers",
				fmt.Sprintf("form %s was confirmed for export at %s; it is paid only at %s, not at this desk of %s", f.Number, f.Verification.Port, f.Verification.Port, port)).
				With("form_number", f.Number).With("export_port", f.Verification.Port).With("desk_port", port)
		}
	}
	return nil
}

// shareOf is a form's A', G', F' and N' = G' − F' (DOMAIN.md §3), from its confirmed lines.
func shareOf(f forms.Form, feeRate decimal.Decimal) FormShare {
	lines := make([]refund.Line, len(f.Lines))
	confirmed := make([]int32, len(f.Lines))
	for i, l := range f.Lines {
		lines[i] = l.Line
		if l.ConfirmedQty != nil {
			confirmed[i] = *l.ConfirmedQty
		}
	}
	tot := refund.Compute(lines, confirmed)
	fee := tot.Fee(feeRate)
	return FormShare{Number: f.Number, Eligible: tot.Eligible, Gross: tot.Gross, Fee: fee, Net: tot.Gross.Sub(fee)}
}

// queueCashPaid queues the traveller's cash lock for the local day and the read of the
// cash paid to them that day, at every desk, into *paid. The advisory lock, held to the
// end of the transaction, serializes cash payouts to one document on one day, so two
// desks cannot both slip under the cap; the sum runs after it is granted.
func queueCashPaid(b *pgx.Batch, index []byte, today time.Time, paid *decimal.Decimal) {
	b.Queue(`SELECT pg_advisory_xact_lock(hashtextextended($1::text, 1))`,
		fmt.Sprintf("cash:%x:%s", index, refund.FormatDate(today)))
	// Through the function: row-level security hides other agencies' payouts from a desk
	// (migrations/00008_row_security.sql), and the cap counts them all.
	b.Queue(`SELECT cash_paid_on_day($1, $2)`, index, today).QueryRow(func(r pgx.Row) error {
		return r.Scan(paid)
	})
}

// checkCashCap refuses cash that would take the traveller's cash for the local day, at
// every desk (paid, read under the cash lock), past the cap.
func checkCashCap(table *params.Table, today time.Time, paid, net decimal.Decimal) error {
	limit, err := table.Require(params.CashCap, "", today)
	if err != nil {
		return err
	}
	if paid.Add(net).GreaterThan(limit) {
		return fault.Field(fault.Precondition, "CASH_CAP_EXCEEDED", "method",
			fmt.Sprintf("cash today would total %s, above the cap of %s: pay by bank card or mobile payment",
				money.Format(paid.Add(net)), money.Format(limit))).With("cash_paid_today", money.Format(paid))
	}
	return nil
}

// positive drops zero entries (a form whose fee rounds to 0.00, say).
func positive(entries ...ledger.Entry) []ledger.Entry {
	out := entries[:0]
	for _, e := range entries {
		if e.Amount.IsPositive() {
			out = append(out, e)
		}
	}
	return out
}

// maskAccount keeps the last four characters of a card or wallet account.
func maskAccount(s string) string {
	if s == "" {
		return ""
	}
	return pii.Mask(s)
}

// Get returns a payout made by the cashier's agency.
func (s *Service) Get(ctx context.Context, deskCode string, id uuid.UUID) (Payout, error) {
	desk, err := s.desks.get(ctx, s.pool, deskCode)
	if err != nil {
		return Payout{}, fault.New(fault.Denied, "UNKNOWN_DESK", "this desk is not registered")
	}
	row, err := s.q.PayoutByID(ctx, db.Scope(s.pool), id)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && row.AgencyCode != desk.AgencyCode) {
		return Payout{}, fault.Field(fault.NotFound, "PAYOUT_NOT_FOUND", "payout_id", "no such payout of this agency")
	}
	if err != nil {
		return Payout{}, fmt.Errorf("get payout: %w", err)
	}
	shares, err := s.q.PayoutForms(ctx, db.Scope(s.pool), id)
	if err != nil {
		return Payout{}, fmt.Errorf("payout forms: %w", err)
	}
	p := Payout{
		ID: row.ID, DeskCode: row.DeskCode, AgencyCode: row.AgencyCode, Port: deref(row.PortCode), Cashier: row.Cashier,
		Method: Method(row.Method), AccountMasked: row.AccountMasked, ReceiptReference: row.ReceiptReference, PaidAt: row.PaidAt,
		DocType: refund.DocumentType(row.DocType), DocCountry: row.DocCountry, DocMasked: row.DocMasked,
		FeeRate: row.FeeRate, Gross: row.GrossRefund, Fee: row.Fee, Net: row.NetRefund,
	}
	for _, sh := range shares {
		p.Forms = append(p.Forms, FormShare{Number: sh.Number, Eligible: sh.EligibleAmount, Gross: sh.GrossRefund, Fee: sh.Fee, Net: sh.NetRefund})
	}
	return p, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
