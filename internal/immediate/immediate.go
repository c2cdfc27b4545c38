// Package immediate runs immediate refunds at purchase (即买即退, DOMAIN.md §6): a refund
// point pays the net refund at once against a pre-authorization on the traveller's own
// card; customs confirmation at a designated port by the committed date completes it (the
// hold is released), anything else breaches it (the hold is captured three working days
// after the committed date). Releases and captures go to the card acquirer through the
// outbox of package acquirer.
package immediate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"taxrefund/internal/acquirer"
	"taxrefund/internal/audit"
	"taxrefund/internal/db"
	"taxrefund/internal/fault"
	"taxrefund/internal/forms"
	"taxrefund/internal/idempotency"
	"taxrefund/internal/ledger"
	"taxrefund/internal/money"
	"taxrefund/internal/pan"
	"taxrefund/internal/params"
	"taxrefund/internal/pii"
	"taxrefund/internal/refund"
)

// Prepayment states.
const (
	Prepaid   = "PREPAID"
	Completed = "COMPLETED"
	Captured  = "CAPTURED"
	Returned  = "RETURNED"
)

// CaptureAfterWorkingDays is how long after the committed date a breached prepayment is
// captured (DOMAIN.md §6). The database's capture_due triggers (migrations/00032) use the
// same number.
const CaptureAfterWorkingDays = 3

// Prepayment is an immediate refund paid at a refund point.
type Prepayment struct {
	db.Prepayment
	FormNumber string
}

// Service pays, returns, completes and captures prepayments.
type Service struct {
	pool   *pgxpool.Pool
	q      *db.Queries
	ledger *ledger.Store
	keys   *pii.Keyring
	params *params.Cache
	forms  *forms.Service
	now    func() time.Time
	log    *slog.Logger
}

// Deps are what a Service needs.
type Deps struct {
	Pool   *pgxpool.Pool
	Ledger *ledger.Store
	Keys   *pii.Keyring
	Params *params.Cache
	Forms  *forms.Service
	Now    func() time.Time
	Log    *slog.Logger
}

// New returns a Service and installs its completion hook on the forms service, so that
// every customs verification can complete an immediate refund in the same transaction.
func New(d Deps) *Service {
	now := db.Clock(d.Now)
	s := &Service{pool: d.Pool, q: db.New(), ledger: d.Ledger, keys: d.Keys, params: d.Params, forms: d.Forms, now: now, log: d.Log}
	d.Forms.OnExport(s)
	return s
}

// PreAuth is the card pre-authorization: the acquirer's token, never a card number.
type PreAuth struct {
	Token      string
	Last4      string
	Expiry     time.Time // first day of the expiry month
	Authorized decimal.Decimal
}

// PayRequest is a refund point cashier's prepayment.
type PayRequest struct {
	Idem          idempotency.Key
	DeskCode      string
	Cashier       string
	Number        string
	Presented     refund.Document
	Agreement     string
	PreAuth       PreAuth
	DeparturePort string
	// CommittedDate is optional (zero: issue date + the region's committed period).
	CommittedDate time.Time
}

var (
	tokenPattern = regexp.MustCompile(`^[A-Za-z0-9_.:-]{8,128}$`)
	last4Pattern = regexp.MustCompile(`^[0-9]{4}$`)
)

// LooksLikeCardNumber reports whether s could be a card number: 12 to 19 digits once
// separators (space - . _ : /) are dropped. Such a value is never accepted or stored as a
// token. (Digits inside a longer token are not judged: acquirers' tokens may hold them.)
func LooksLikeCardNumber(s string) bool {
	stripped := separators.Replace(s)
	if len(stripped) < 12 || len(stripped) > 19 {
		return false
	}
	for i := 0; i < len(stripped); i++ {
		if stripped[i] < '0' || stripped[i] > '9' {
			return false
		}
	}
	return true
}

var separators = strings.NewReplacer(" ", "", "-", "", ".", "", "_", "", ":", "", "/", "")

// CheckPreAuth checks the shape of a pre-authorization.
func CheckPreAuth(p PreAuth, l *fault.List) {
	switch {
	case containsCardNumber(p.Token):
		l.Add("pre_authorization.acquirer_token", "contains a card number (a Luhn-valid run of 13 to 19 digits): send the acquirer's token, never the card number")
	case LooksLikeCardNumber(p.Token):
		l.Add("pre_authorization.acquirer_token", "looks like a card number: send the acquirer's token, never the card number")
	case !tokenPattern.MatchString(p.Token):
		l.Add("pre_authorization.acquirer_token", "must be the acquirer's token (8 to 128 letters, digits or _.:-)")
	}
	if !last4Pattern.MatchString(p.Last4) {
		l.Add("pre_authorization.card_last4", "must be the card's last 4 digits")
	}
}

// containsCardNumber reports whether s holds a card number anywhere (package pan): such
// free text is refused before anything is written, so that no table, outbox message or
// stored answer ever holds one.
func containsCardNumber(s string) bool {
	_, ok := pan.Find(s)
	return ok
}

// Pay pays the net refund of an ISSUED form at once. The form's store must be enabled for
// immediate refund, the desk a refund point of the form's block; the hold must cover N and
// the card stay valid until the capture date; the traveller's prepayments of the day stay
// within the region's cap; one prepayment per form.
func (s *Service) Pay(ctx context.Context, req PayRequest) (Prepayment, error) {
	l := fault.List{Kind: fault.Invalid, Reason: "INVALID_REQUEST", Message: "the request has invalid fields"}
	CheckPreAuth(req.PreAuth, &l)
	if !refund.ValidFormNumber(req.Number) {
		l.Add("form_number", "not a form number (check the barcode or the typing)")
	}
	if req.Agreement == "" || len(req.Agreement) > 64 {
		l.Add("agreement_reference", "is required: the signed agreement's reference (at most 64 characters)")
	} else if containsCardNumber(req.Agreement) {
		l.Add("agreement_reference", "contains a card number (a Luhn-valid run of 13 to 19 digits): the agreement's reference never carries one")
	}
	if err := l.Err(); err != nil {
		return Prepayment{}, err
	}
	desk, err := s.q.DeskByCode(ctx, s.pool, req.DeskCode)
	if errors.Is(err, pgx.ErrNoRows) {
		return Prepayment{}, fault.New(fault.Denied, "UNKNOWN_DESK", "this desk is not registered")
	}
	if err != nil {
		// The database, not the desk: unavailable in a failover, and retried.
		return Prepayment{}, err
	}
	if desk.Kind != "REFUND_POINT" || desk.BlockCode == nil {
		return Prepayment{}, fault.New(fault.Precondition, "NOT_A_REFUND_POINT", "immediate refunds are paid at a block refund point")
	}
	agency := desk.AgencyCode
	cash := ledger.Cash(agency, desk.Code)
	ids, err := s.ledger.Accounts(ctx, s.pool, ledger.Prepayments(agency), cash)
	if err != nil {
		return Prepayment{}, err
	}
	presented := s.keys.BlindIndex(string(req.Presented.Type), req.Presented.IssuingCountry, req.Presented.Number)
	table, err := s.params.Get(ctx) // before the transaction: a reload needs a connection
	if err != nil {
		return Prepayment{}, err
	}
	var out Prepayment
	err = db.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if err := idempotency.Begin(ctx, tx, req.Idem, "PayImmediateRefund"); err != nil {
			return err
		}
		locked, missing, err := s.forms.LockMany(ctx, tx, []string{req.Number})
		if err != nil {
			return err
		}
		if len(missing) > 0 {
			return fault.Field(fault.NotFound, "FORM_NOT_FOUND", "form_number", fmt.Sprintf("no form %s", req.Number))
		}
		f := locked[0]
		if !bytes.Equal(f.DocIndex, presented) {
			return fault.Field(fault.Precondition, "DOCUMENT_MISMATCH", "presented_document", "the presented document is not the one the form was issued to")
		}
		if err := refund.RequireState(f.Number, f.State, refund.Issued, "prepaid"); err != nil {
			return err
		}
		if existing, err := s.q.PrepaymentOfForm(ctx, tx, f.ID); err == nil {
			return fault.Field(fault.Precondition, "ALREADY_PREPAID", "form_number",
				fmt.Sprintf("form %s already has prepayment %s", f.Number, existing.ID)).With("prepayment_id", existing.ID.String())
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		store, err := s.q.StoreImmediate(ctx, tx, f.StoreCode)
		if err != nil {
			return err
		}
		if !store.ImmediateRefund {
			return fault.Field(fault.Precondition, "STORE_NOT_ENABLED", "form_number",
				fmt.Sprintf("store %s is not enabled for immediate refund", f.StoreCode))
		}
		var formBlock string
		if err := tx.QueryRow(ctx, `SELECT block_code FROM forms WHERE id = $1`, f.ID).Scan(&formBlock); err != nil {
			return err
		}
		if formBlock != *desk.BlockCode {
			return fault.New(fault.Precondition, "WRONG_BLOCK",
				fmt.Sprintf("form %s is from block %s; this refund point serves block %s", f.Number, formBlock, *desk.BlockCode))
		}
		now := s.now()
		today := refund.LocalDate(now)
		region := store.RegionCode
		period, err := table.Require(params.CommittedPeriodDays, region, today)
		if err != nil {
			return err
		}
		dayCap, err := table.Require(params.DailyPrepayCap, region, today)
		if err != nil {
			return err
		}
		feeRate, err := table.Require(params.AgencyFeeRate, agency, today)
		if err != nil {
			return err
		}
		latest := refund.AddDays(f.PurchaseDate, int(period.IntPart()))
		committed := req.CommittedDate
		if committed.IsZero() {
			committed = latest
		}
		if committed.Before(today) || committed.After(latest) || committed.After(f.ExportDeadline) {
			return fault.Field(fault.Precondition, "COMMITTED_DATE_OUT_OF_WINDOW", "committed_date",
				fmt.Sprintf("the committed date must be from today to %s (issue date + %s days)", refund.FormatDate(latest), period))
		}
		ports, err := s.q.DesignatedPorts(ctx, tx, db.DesignatedPortsParams{RegionCode: region, ValidFrom: today})
		if err != nil {
			return err
		}
		if !slices.Contains(ports, req.DeparturePort) {
			return fault.Field(fault.Precondition, "PORT_NOT_DESIGNATED", "departure_port",
				fmt.Sprintf("%q is not a designated port of the %s scheme (%s)", req.DeparturePort, region, strings.Join(ports, ", ")))
		}
		// Under the calendar's shared lock: a calendar change waits for this payment's
		// commit and then moves its capture date, or has committed before this reads the
		// calendar (migrations/00032). The insert's trigger computes the same date.
		if _, err := tx.Exec(ctx, `SELECT calendar_read_lock()`); err != nil {
			return err
		}
		captureDue, err := s.q.AddWorkingDays(ctx, tx, db.AddWorkingDaysParams{Day: committed, N: CaptureAfterWorkingDays})
		if err != nil {
			return err
		}
		// The card is valid to the end of its expiry month; it must outlive the capture date.
		if !req.PreAuth.Expiry.AddDate(0, 1, 0).After(captureDue) {
			return fault.Field(fault.Precondition, "CARD_EXPIRED", "pre_authorization.card_expiry",
				fmt.Sprintf("the card must be valid until the capture date %s", refund.FormatDate(captureDue)))
		}
		tot := refund.Compute(linesOf(f.Form), nil)
		fee := tot.Fee(feeRate)
		net := tot.Gross.Sub(fee)
		if req.PreAuth.Authorized.LessThan(net) {
			return fault.Field(fault.Precondition, "PREAUTH_TOO_LOW", "pre_authorization.authorized_amount",
				fmt.Sprintf("the hold of %s is below the net refund %s", money.Format(req.PreAuth.Authorized), money.Format(net)))
		}
		// The day's cap per traveller, checked under a lock per document and day.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1::text, 3))`,
			fmt.Sprintf("prepay:%x:%s", f.DocIndex, refund.FormatDate(today))); err != nil {
			return err
		}
		prepaid, err := s.q.PrepaidOnDay(ctx, tx, db.PrepaidOnDayParams{DocIndex: f.DocIndex, PaidDate: today})
		if err != nil {
			return err
		}
		if prepaid.Add(net).GreaterThan(dayCap) {
			return fault.Field(fault.Precondition, "DAILY_CAP_EXCEEDED", "form_number",
				fmt.Sprintf("immediate refunds today would total %s, above the daily cap of %s", money.Format(prepaid.Add(net)), money.Format(dayCap)))
		}
		p := Prepayment{FormNumber: f.Number, Prepayment: db.Prepayment{
			ID: ledger.NewID(), FormID: f.ID, DeskCode: desk.Code, AgencyCode: agency, RegionCode: region, Cashier: req.Cashier,
			State: Prepaid, AgreementReference: req.Agreement, CardToken: req.PreAuth.Token, CardLast4: req.PreAuth.Last4,
			CardExpiry: req.PreAuth.Expiry, AuthorizedAmount: req.PreAuth.Authorized, DocIndex: f.DocIndex, PaidAt: now.UTC(),
			PaidDate: today, FeeRate: feeRate, GrossRefund: tot.Gross, Fee: fee, NetRefund: net, CommittedDate: committed,
			DesignatedPorts: ports, CaptureDue: captureDue,
		}}
		txn := ledger.Txn{
			ID: ledger.NewID(), IdemKey: "prepayment:" + p.ID.String() + ":pay", Kind: "IMMEDIATE_REFUND_PAID", Ref: f.Number, EffectiveDate: today,
			Entries: []ledger.Entry{
				{Account: ledger.Prepayments(agency), Side: ledger.Debit, Amount: net},
				{Account: cash, Side: ledger.Credit, Amount: net},
			},
		}
		p.TxnID = txn.ID
		b := &pgx.Batch{}
		if err := s.ledger.Queue(b, txn, ids); err != nil {
			return err
		}
		b.Queue(`INSERT INTO prepayments (id, form_id, desk_code, agency_code, region_code, cashier, state, agreement_reference,
			card_token, card_last4, card_expiry, authorized_amount, doc_index, paid_at, paid_date, fee_rate, gross_refund, fee,
			net_refund, committed_date, designated_ports, capture_due, txn_id)
			VALUES ($1, $2, $3, $4, $5, $6, 'PREPAID', $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)`,
			p.ID, p.FormID, p.DeskCode, agency, region, p.Cashier, p.AgreementReference, p.CardToken, p.CardLast4, p.CardExpiry,
			p.AuthorizedAmount, p.DocIndex, p.PaidAt, p.PaidDate, feeRate, p.GrossRefund, p.Fee, p.NetRefund, committed, ports, captureDue, txn.ID)
		audit.Queue(b, req.Idem.Caller, "IMMEDIATE_REFUND_PAID", f.Number, req.Idem.RequestID,
			map[string]any{"prepayment": p.ID, "net": net, "committed_date": refund.FormatDate(committed), "port": req.DeparturePort, "card_last4": p.CardLast4})
		if err := idempotency.Finish(b, req.Idem, p); err != nil {
			return err
		}
		if err := db.SendBatch(ctx, tx, b); err != nil {
			if db.IsUniqueViolation(err, "prepayments_form_id_key") {
				return fault.Field(fault.Precondition, "ALREADY_PREPAID", "form_number", fmt.Sprintf("form %s was prepaid by another refund point", f.Number))
			}
			return err
		}
		out = p
		return nil
	})
	return idempotency.Result(ctx, s.pool, req.Idem, "PayImmediateRefund", err, out)
}

// ReturnRequest records a prepayment handed back before departure.
type ReturnRequest struct {
	Idem     idempotency.Key
	DeskCode string
	Number   string
}

// Return records that the traveller handed the prepayment back at the refund point that
// paid it: the cash comes back, the hold is released, and the store may then void the
// form.
func (s *Service) Return(ctx context.Context, req ReturnRequest) (Prepayment, error) {
	desk, err := s.q.DeskByCode(ctx, s.pool, req.DeskCode)
	if errors.Is(err, pgx.ErrNoRows) {
		return Prepayment{}, fault.New(fault.Denied, "UNKNOWN_DESK", "this desk is not registered")
	}
	if err != nil {
		// The database, not the desk: unavailable in a failover, and retried.
		return Prepayment{}, err
	}
	if desk.Kind != "REFUND_POINT" {
		return Prepayment{}, fault.New(fault.Precondition, "NOT_A_REFUND_POINT", "prepayments are handed back at a block refund point")
	}
	var out Prepayment
	err = db.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if err := idempotency.Begin(ctx, tx, req.Idem, "ReturnPrepayment"); err != nil {
			return err
		}
		locked, missing, err := s.forms.LockMany(ctx, tx, []string{req.Number})
		if err != nil {
			return err
		}
		if len(missing) > 0 {
			return fault.Field(fault.NotFound, "FORM_NOT_FOUND", "form_number", fmt.Sprintf("no form %s", req.Number))
		}
		p, err := s.q.PrepaymentOfFormForUpdate(ctx, tx, locked[0].ID)
		if errors.Is(err, pgx.ErrNoRows) {
			return fault.Field(fault.NotFound, "PREPAYMENT_NOT_FOUND", "form_number", fmt.Sprintf("form %s has no prepayment", req.Number))
		}
		if err != nil {
			return err
		}
		if p.AgencyCode != desk.AgencyCode {
			return fault.Field(fault.NotFound, "PREPAYMENT_NOT_FOUND", "form_number", fmt.Sprintf("form %s has no prepayment of this agency", req.Number))
		}
		if p.DeskCode != desk.Code {
			// The cash goes back into the drawer it came from: only the refund point that
			// paid records it handed back.
			return fault.Field(fault.Precondition, "WRONG_REFUND_POINT", "form_number",
				fmt.Sprintf("form %s was prepaid at refund point %s; it is handed back there, not at %s", req.Number, p.DeskCode, desk.Code)).
				With("paid_at", p.DeskCode).With("desk", desk.Code)
		}
		if p.State != Prepaid {
			return fault.Field(fault.Precondition, "PREPAYMENT_STATE", "form_number",
				fmt.Sprintf("the prepayment of form %s is %s; only a PREPAID one can be handed back", req.Number, p.State)).With("state", p.State)
		}
		cash := ledger.Cash(desk.AgencyCode, desk.Code)
		ids, err := s.ledger.Accounts(ctx, tx, ledger.Prepayments(p.AgencyCode), cash)
		if err != nil {
			return err
		}
		now := s.now()
		txn := ledger.Txn{
			ID: ledger.NewID(), IdemKey: "prepayment:" + p.ID.String() + ":return", Kind: "PREPAYMENT_RETURNED", Ref: req.Number,
			EffectiveDate: refund.LocalDate(now),
			Entries: []ledger.Entry{
				{Account: cash, Side: ledger.Debit, Amount: p.NetRefund},
				{Account: ledger.Prepayments(p.AgencyCode), Side: ledger.Credit, Amount: p.NetRefund},
			},
		}
		b := &pgx.Batch{}
		if err := s.ledger.Queue(b, txn, ids); err != nil {
			return err
		}
		at := now.UTC()
		p.State, p.ResolvedTxnID, p.ResolvedAt = Returned, &txn.ID, &at
		b.Queue(`UPDATE prepayments SET state = 'RETURNED', resolved_txn_id = $2, resolved_at = $3 WHERE id = $1`, p.ID, txn.ID, at)
		acquirer.Queue(b, "prepayment:"+p.ID.String()+":release", acquirer.Release, p.ID, p.CardToken, p.AuthorizedAmount)
		audit.Queue(b, req.Idem.Caller, "PREPAYMENT_RETURNED", req.Number, req.Idem.RequestID, map[string]any{"prepayment": p.ID, "net": p.NetRefund})
		out = Prepayment{Prepayment: p, FormNumber: req.Number}
		if err := idempotency.Finish(b, req.Idem, out); err != nil {
			return err
		}
		return db.SendBatch(ctx, tx, b)
	})
	return idempotency.Result(ctx, s.pool, req.Idem, "ReturnPrepayment", err, out)
}

func linesOf(f forms.Form) []refund.Line {
	out := make([]refund.Line, len(f.Lines))
	for i, l := range f.Lines {
		out[i] = l.Line
	}
	return out
}

var _ forms.ExportHook = (*Service)(nil)

// OnExport completes a PREPAID immediate refund when customs confirm the export at a
// designated port on or before the committed date: the pending transfer is already posted
// for G'; the prepayment becomes the refund (a payout of method PREPAYMENT, no payout at
// the desk), the hold is released — or partly captured when fewer units left than were
// prepaid. Any other verification leaves the prepayment to be captured when due.
func (s *Service) OnExport(ctx context.Context, tx pgx.Tx, b *pgx.Batch, e forms.Export) (*uuid.UUID, error) {
	p, err := s.q.PrepaymentOfFormForUpdate(ctx, tx, e.Form.ID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("prepayment of form: %w", err)
	}
	if p.State != Prepaid || !e.AnyUnits || !slices.Contains(p.DesignatedPorts, e.Port) || e.Today.After(p.CommittedDate) {
		return nil, nil // not completed: a breach, captured when due (or already resolved)
	}
	a := p.AgencyCode
	gross := e.Totals.Gross
	fee := e.Totals.Fee(p.FeeRate)
	net := gross.Sub(fee)
	if net.GreaterThan(p.NetRefund) {
		// Rounding can put N' a fen above the prepaid N when almost every unit left; the
		// traveller already has N, so the fee takes the fen.
		net = p.NetRefund
		fee = gross.Sub(net)
	}
	recover := p.NetRefund.Sub(net)
	ids, err := s.ledger.Accounts(ctx, tx, ledger.RefundPayable, ledger.AgencyPayable(a), ledger.Receivable(a),
		ledger.Prepayments(a), ledger.FeeIncome(a), ledger.CardCaptures(a))
	if err != nil {
		return nil, err
	}
	payoutID := ledger.NewID()
	entries := []ledger.Entry{
		{Account: ledger.RefundPayable, Side: ledger.Debit, Amount: gross},
		{Account: ledger.AgencyPayable(a), Side: ledger.Credit, Amount: gross},
		{Account: ledger.Receivable(a), Side: ledger.Debit, Amount: gross},
		{Account: ledger.Prepayments(a), Side: ledger.Credit, Amount: net},
		{Account: ledger.FeeIncome(a), Side: ledger.Credit, Amount: fee},
		{Account: ledger.CardCaptures(a), Side: ledger.Debit, Amount: recover},
		{Account: ledger.Prepayments(a), Side: ledger.Credit, Amount: recover},
	}
	txn := ledger.Txn{
		ID: ledger.NewID(), IdemKey: "prepayment:" + p.ID.String() + ":complete", Kind: "IMMEDIATE_REFUND_COMPLETED",
		Ref: e.Form.Number, EffectiveDate: e.Today, Entries: positiveEntries(entries),
	}
	if err := s.ledger.Queue(b, txn, ids); err != nil {
		return nil, err
	}
	var port any
	if e.Port != "" {
		port = e.Port
	}
	b.Queue(`INSERT INTO payouts (id, desk_code, agency_code, port_code, cashier, method, account_masked, receipt_reference,
		doc_index, doc_type, doc_country, doc_masked, paid_at, paid_date, fee_rate, gross_refund, fee, net_refund, txn_id)
		VALUES ($1, $2, $3, $4, $5, 'PREPAYMENT', $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)`,
		payoutID, p.DeskCode, a, port, p.Cashier, "card ****"+p.CardLast4, p.AgreementReference, p.DocIndex,
		string(e.Form.DocType), e.Form.DocCountry, e.Form.DocMasked, e.At, e.Today, p.FeeRate, gross, fee, net, txn.ID)
	b.Queue(`INSERT INTO payout_forms (payout_id, form_id, eligible_amount, gross_refund, fee, net_refund) VALUES ($1, $2, $3, $4, $5, $6)`,
		payoutID, e.Form.ID, e.Totals.Eligible, gross, fee, net)
	b.Queue(`UPDATE prepayments SET state = 'COMPLETED', resolved_txn_id = $2, resolved_at = $3 WHERE id = $1`, p.ID, txn.ID, e.At)
	if recover.IsPositive() {
		acquirer.Queue(b, "prepayment:"+p.ID.String()+":partial-capture", acquirer.PartialCapture, p.ID, p.CardToken, recover)
	} else {
		acquirer.Queue(b, "prepayment:"+p.ID.String()+":release", acquirer.Release, p.ID, p.CardToken, p.AuthorizedAmount)
	}
	audit.Queue(b, e.Caller, "IMMEDIATE_REFUND_COMPLETED", e.Form.Number, uuid.Nil,
		map[string]any{"prepayment": p.ID, "port": e.Port, "gross": gross, "net": net, "recovered": recover})
	return &payoutID, nil
}

func positiveEntries(entries []ledger.Entry) []ledger.Entry {
	out := entries[:0]
	for _, e := range entries {
		if e.Amount.IsPositive() {
			out = append(out, e)
		}
	}
	return out
}

// captureBatch is how many prepayments one capture transaction handles.
const captureBatch = 100

// Captures captures every PREPAID prepayment whose capture date has come: Dr card_captures
// / Cr prepayments for N, and a CAPTURE instruction to the acquirer. Safe to run on several
// servers at once. The capture date is the stored prepayments.capture_due, the one the
// traveller and the metrics are shown: the committed date + 3 working days, which the
// database recomputes in the transaction of any calendar change (migrations/00032).
// It is read through the partial index prepayments_capture_due.
func (s *Service) Captures(ctx context.Context, actor string) (int, error) {
	total := 0
	for {
		n := 0
		err := db.InTx(ctx, s.pool, func(tx pgx.Tx) error {
			now := s.now()
			today := refund.LocalDate(now)
			rows, err := tx.Query(ctx, `
				SELECT p.* FROM prepayments p
				 WHERE p.state = 'PREPAID' AND p.capture_due <= $1
				 ORDER BY p.capture_due, p.id
				 LIMIT $2 FOR UPDATE SKIP LOCKED`, today, captureBatch)
			if err != nil {
				return err
			}
			due, err := pgx.CollectRows(rows, pgx.RowToStructByPos[db.Prepayment])
			if err != nil {
				return err
			}
			n = len(due)
			b := &pgx.Batch{}
			for _, p := range due {
				ids, err := s.ledger.Accounts(ctx, tx, ledger.CardCaptures(p.AgencyCode), ledger.Prepayments(p.AgencyCode))
				if err != nil {
					return err
				}
				txn := ledger.Txn{
					ID: ledger.NewID(), IdemKey: "prepayment:" + p.ID.String() + ":capture", Kind: "PREAUTH_CAPTURED", Ref: p.ID.String(),
					EffectiveDate: today,
					Entries: []ledger.Entry{
						{Account: ledger.CardCaptures(p.AgencyCode), Side: ledger.Debit, Amount: p.NetRefund},
						{Account: ledger.Prepayments(p.AgencyCode), Side: ledger.Credit, Amount: p.NetRefund},
					},
				}
				if err := s.ledger.Queue(b, txn, ids); err != nil {
					return err
				}
				b.Queue(`UPDATE prepayments SET state = 'CAPTURED', resolved_txn_id = $2, resolved_at = $3 WHERE id = $1`, p.ID, txn.ID, now.UTC())
				acquirer.Queue(b, "prepayment:"+p.ID.String()+":capture", acquirer.Capture, p.ID, p.CardToken, p.NetRefund)
				audit.Queue(b, actor, "PREAUTH_CAPTURED", p.ID.String(), uuid.Nil, map[string]any{"net": p.NetRefund, "committed_date": refund.FormatDate(p.CommittedDate)})
			}
			if n == 0 {
				return nil
			}
			return db.SendBatch(ctx, tx, b)
		})
		if err != nil {
			return total, fmt.Errorf("captures: %w", err)
		}
		total += n
		if n < captureBatch {
			return total, nil
		}
	}
}

// SetCalendarDay marks a date working or not. In the same transaction the database moves
// the capture date of every PREPAID prepayment the change moves (migrations/00032); the
// audit event says how many.
func (s *Service) SetCalendarDay(ctx context.Context, key idempotency.Key, day time.Time, working bool, note string) error {
	err := db.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if err := idempotency.Begin(ctx, tx, key, "SetCalendarDay"); err != nil {
			return err
		}
		if err := s.q.SetCalendarDay(ctx, tx, db.SetCalendarDayParams{Day: day, Working: working, Note: note}); err != nil {
			return err
		}
		var moved int
		if err := tx.QueryRow(ctx, `SELECT coalesce(nullif(current_setting('taxrefund.capture_due_moved', true), ''), '0')::int`).Scan(&moved); err != nil {
			return err
		}
		return audit.Close(ctx, tx, key, "CALENDAR_DAY_SET", refund.FormatDate(day),
			map[string]any{"working": working, "note": note, "capture_due_moved": moved}, map[string]any{})
	})
	_, err = idempotency.Result(ctx, s.pool, key, "SetCalendarDay", err, struct{}{})
	return err
}
