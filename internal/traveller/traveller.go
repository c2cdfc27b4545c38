// Package traveller answers a traveller's "where is my refund?" (DOMAIN.md §8a): by form
// number, the last four characters of the document and the nationality, the form's status
// in words and its amount, and nothing else personal. It must not become a way to find
// forms: "no such form" and "wrong document" get the same answer after the same work and
// at least the same time, and look-ups are limited per client address and per form
// number, with a lock-out of a number after repeated wrong answers (limits.go).
package traveller

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"

	"taxrefund/internal/db"
	"taxrefund/internal/fault"
	"taxrefund/internal/refund"
)

// Status is where a refund stands.
type Status string

// The statuses a traveller sees.
const (
	Issued             Status = "ISSUED"
	ExportConfirmed    Status = "EXPORT_CONFIRMED"
	Paid               Status = "PAID"
	ImmediatePaid      Status = "IMMEDIATE_PAID"
	ImmediateCompleted Status = "IMMEDIATE_COMPLETED"
	ImmediateCaptured  Status = "IMMEDIATE_CAPTURED"
	Voided             Status = "VOIDED"
	Expired            Status = "EXPIRED"
	Rejected           Status = "REJECTED"
)

// Answer is what the traveller is told.
type Answer struct {
	Status Status
	// Text is the status in words.
	Text   string
	Amount decimal.Decimal
	// ClaimBy and Ports: where and by when to claim an issued form.
	ClaimBy time.Time
	Ports   []string
	// PaidMethod and PaidDate of a paid refund.
	PaidMethod string
	PaidDate   time.Time
	// CaptureDate of an immediate refund's card pre-authorization: when it will be
	// captured unless the export is confirmed first, or when it was.
	CaptureDate time.Time
}

// Service looks refunds up.
type Service struct {
	pool   *pgxpool.Pool
	limits Limits
	now    func() time.Time
	log    *slog.Logger

	addresses *buckets
	numbers   *buckets
	locks     *lockouts
	inFlight  chan struct{}
	refusals  *prometheus.CounterVec
	lookups   *prometheus.CounterVec
}

// New returns a Service whose counters are registered with reg (nil: not registered).
func New(pool *pgxpool.Pool, l Limits, reg prometheus.Registerer, log *slog.Logger) *Service {
	s := &Service{
		pool: pool, limits: l, now: time.Now, log: log,
		addresses: newBuckets(l.PerAddress, l.AddressBurst, l.MaxKeys),
		numbers:   newBuckets(l.PerForm, l.FormBurst, l.MaxKeys),
		locks:     newLockouts(pool, l.LockAfter, l.LockFor),
		inFlight:  make(chan struct{}, max(l.InFlight, 1)),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "taxrefund", Name: "traveller_refusals_total",
			Help: "Refund status look-ups refused, by reason: address_limit, form_limit, locked (the form number is locked out), busy, invalid (malformed input), no_match (no such form, or a document or nationality that does not match it: one answer)."},
			[]string{"reason"}),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "taxrefund", Name: "traveller_lookups_total",
			Help: "Refund status look-ups answered with a status, and lock-outs started (outcome found or locked_out)."},
			[]string{"outcome"}),
	}
	for _, r := range []string{"address_limit", "form_limit", "locked", "busy", "invalid", "no_match"} {
		s.refusals.WithLabelValues(r)
	}
	s.lookups.WithLabelValues("found")
	s.lookups.WithLabelValues("locked_out")
	if reg != nil {
		reg.MustRegister(s.refusals, s.lookups)
	}
	return s
}

// WithClock returns s reading time from now (tests).
func (s *Service) WithClock(now func() time.Time) *Service {
	s.now = now
	return s
}

// Query is what the traveller types.
type Query struct {
	Number      string
	Last4       string
	Nationality string
}

var (
	last4Pattern       = regexp.MustCompile(`^[A-Z0-9]{4}$`)
	nationalityPattern = regexp.MustCompile(`^[A-Z]{2}$`)
)

// normalize upper-cases what was typed and drops spaces and dashes from the number.
func normalize(q Query) Query {
	clean := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r == ' ' || r == '-' {
				return -1
			}
			return r
		}, strings.ToUpper(strings.TrimSpace(s)))
	}
	return Query{Number: clean(q.Number), Last4: clean(q.Last4), Nationality: clean(q.Nationality)}
}

// errNoMatch is the one answer to a form that does not exist and to a document or
// nationality that does not match it.
var errNoMatch = fault.New(fault.NotFound, "NO_MATCHING_FORM",
	"No refund matches this form number, document and nationality: check the number under the barcode and the last four characters of the document the form was issued for")

// Lookup answers the query from the client at addr.
func (s *Service) Lookup(ctx context.Context, addr netip.Addr, q Query) (Answer, error) {
	start := s.now()
	if !s.addresses.allow(addressKey(addr), start) {
		s.refusals.WithLabelValues("address_limit").Inc()
		return Answer{}, fault.New(fault.Exhausted, "TOO_MANY_LOOKUPS", "too many look-ups from this address; try again in a minute")
	}
	q = normalize(q)
	var bad []fault.Violation
	if !refund.ValidFormNumber(q.Number) {
		bad = append(bad, fault.Violation{Field: "form_number", Description: "not a form number (check the number under the barcode)"})
	}
	if !last4Pattern.MatchString(q.Last4) {
		bad = append(bad, fault.Violation{Field: "document_last4", Description: "must be the last 4 letters or digits of the document"})
	}
	if !nationalityPattern.MatchString(q.Nationality) {
		bad = append(bad, fault.Violation{Field: "nationality", Description: "must be a 2-letter country code, e.g. FR"})
	}
	if len(bad) > 0 {
		s.refusals.WithLabelValues("invalid").Inc()
		return Answer{}, &fault.Error{Kind: fault.Invalid, Reason: "INVALID_LOOKUP", Message: "the look-up is not well formed", Violations: bad}
	}
	until, locked, err := s.locks.locked(ctx, q.Number, start)
	if err != nil {
		return Answer{}, err
	}
	if locked {
		s.refusals.WithLabelValues("locked").Inc()
		return Answer{}, lockedOut(until)
	}
	if !s.numbers.allow(q.Number, start) {
		s.refusals.WithLabelValues("form_limit").Inc()
		return Answer{}, fault.New(fault.Exhausted, "TOO_MANY_LOOKUPS", "too many look-ups of this form number; try again in a few minutes")
	}
	select {
	case s.inFlight <- struct{}{}:
		defer func() { <-s.inFlight }()
	default:
		s.refusals.WithLabelValues("busy").Inc()
		return Answer{}, fault.New(fault.Exhausted, "BUSY", "too many look-ups at once; try again in a moment")
	}
	// From here on, found or not, the work and the least time are the same.
	defer s.pad(ctx, start)
	row, found, err := s.read(ctx, q.Number)
	if err != nil {
		return Answer{}, err
	}
	typed := q.Last4 + "|" + q.Nationality
	want := decoy
	if found {
		want = last4(row.docMasked) + "|" + row.nationality
	}
	match := subtle.ConstantTimeCompare([]byte(typed), []byte(want)) == 1
	if !found || !match {
		s.refusals.WithLabelValues("no_match").Inc()
		lockedNow, err := s.locks.wrong(ctx, q.Number, s.now())
		if err != nil {
			return Answer{}, err
		}
		if lockedNow {
			s.lookups.WithLabelValues("locked_out").Inc()
		}
		return Answer{}, errNoMatch
	}
	if err := s.locks.right(ctx, q.Number, s.now()); err != nil {
		return Answer{}, err
	}
	s.lookups.WithLabelValues("found").Inc()
	return row.answer(), nil
}

// decoy is compared with when there is no form: it matches nothing typed (a lower-case
// letter cannot pass the pattern).
const decoy = "----|--"

func lockedOut(until time.Time) error {
	return fault.New(fault.Exhausted, "LOCKED_OUT",
		fmt.Sprintf("too many wrong answers for this form number: look-ups are locked until %s UTC", until.UTC().Format("15:04")))
}

// pad waits until MinLatency has passed since start.
func (s *Service) pad(ctx context.Context, start time.Time) {
	wait := s.limits.MinLatency - s.now().Sub(start)
	if wait <= 0 {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func last4(masked string) string {
	r := []rune(masked)
	if len(r) > 4 {
		r = r[len(r)-4:]
	}
	return strings.ToUpper(string(r))
}

type formRow struct {
	state          string
	docMasked      string
	nationality    string
	exportDeadline time.Time
	gross          decimal.Decimal
	confirmedGross decimal.NullDecimal
	payMethod      *string
	paidDate       *time.Time
	payNet         decimal.NullDecimal
	ppState        *string
	ppNet          decimal.NullDecimal
	ppCaptureDue   *time.Time
	ppResolvedAt   *time.Time
	ppPorts        []string
	ports          []string
}

// read reads the form, its payout and its prepayment in one statement, as the service's
// own party: the traveller has none.
func (s *Service) read(ctx context.Context, number string) (formRow, bool, error) {
	ctx = db.WithParty(ctx, "system", "traveller")
	var r formRow
	err := db.Scope(s.pool).QueryRow(ctx, `
		SELECT f.state, f.doc_masked, f.nationality, f.export_deadline, f.gross_refund, f.confirmed_gross,
		       p.method, p.paid_date, pf.net_refund,
		       pp.state, pp.net_refund, pp.capture_due, pp.resolved_at, pp.designated_ports,
		       ARRAY(SELECT code FROM ports ORDER BY code)
		  FROM forms f
		  LEFT JOIN payout_forms pf ON pf.form_id = f.id
		  LEFT JOIN payouts p ON p.id = pf.payout_id
		  LEFT JOIN prepayments pp ON pp.form_id = f.id
		 WHERE f.number = $1`, number).Scan(
		&r.state, &r.docMasked, &r.nationality, &r.exportDeadline, &r.gross, &r.confirmedGross,
		&r.payMethod, &r.paidDate, &r.payNet,
		&r.ppState, &r.ppNet, &r.ppCaptureDue, &r.ppResolvedAt, &r.ppPorts, &r.ports)
	if errors.Is(err, pgx.ErrNoRows) {
		return formRow{}, false, nil
	}
	if err != nil {
		return formRow{}, false, fmt.Errorf("refund status: %w", err)
	}
	return r, true, nil
}

func (r formRow) answer() Answer {
	date := func(t time.Time) string { return t.Format(time.DateOnly) }
	pp := ""
	if r.ppState != nil {
		pp = *r.ppState
	}
	paidAtDesk := r.payMethod != nil && *r.payMethod != "PREPAYMENT"
	switch {
	case paidAtDesk:
		a := Answer{Status: Paid, Amount: r.payNet.Decimal, PaidMethod: *r.payMethod, PaidDate: *r.paidDate}
		a.Text = fmt.Sprintf("Paid: %s CNY by %s on %s.", a.Amount.StringFixed(2), methodWords(a.PaidMethod), date(a.PaidDate))
		return a
	case pp == "PREPAID":
		a := Answer{Status: ImmediatePaid, Amount: r.ppNet.Decimal, CaptureDate: *r.ppCaptureDue, Ports: r.ppPorts}
		a.Text = fmt.Sprintf("Immediate refund of %s CNY paid. Your card pre-authorization is released once customs confirms the export at %s; otherwise it is captured on %s.",
			a.Amount.StringFixed(2), strings.Join(a.Ports, " or "), date(a.CaptureDate))
		return a
	case pp == "COMPLETED":
		a := Answer{Status: ImmediateCompleted, Amount: r.ppNet.Decimal}
		a.Text = fmt.Sprintf("Immediate refund of %s CNY completed: export confirmed, your card pre-authorization released.", a.Amount.StringFixed(2))
		return a
	case pp == "CAPTURED" && r.state != string(refund.Verified):
		a := Answer{Status: ImmediateCaptured, Amount: r.ppNet.Decimal}
		if r.ppResolvedAt != nil {
			a.CaptureDate = refund.LocalDate(*r.ppResolvedAt)
		}
		a.Text = fmt.Sprintf("Immediate refund: export not confirmed in time, so your card pre-authorization of %s CNY was captured on %s.",
			a.Amount.StringFixed(2), date(a.CaptureDate))
		return a
	}
	switch refund.State(r.state) {
	case refund.Issued:
		a := Answer{Status: Issued, Amount: r.gross, ClaimBy: r.exportDeadline, Ports: r.ports}
		a.Text = fmt.Sprintf("Issued: take the goods out of the country and have customs confirm the export at %s by %s. Refund %s CNY before the agency's fee.",
			strings.Join(a.Ports, ", "), date(a.ClaimBy), a.Amount.StringFixed(2))
		return a
	case refund.Verified:
		a := Answer{Status: ExportConfirmed, Amount: r.confirmedGross.Decimal}
		a.Text = fmt.Sprintf("Export confirmed by customs: the refund counter at the port pays %s CNY less the agency's fee.", a.Amount.StringFixed(2))
		return a
	case refund.Voided:
		return Answer{Status: Voided, Amount: r.gross, Text: "Voided by the store (goods returned): no refund."}
	case refund.Expired:
		return Answer{Status: Expired, Amount: r.gross, Text: "Expired: the export was not confirmed within 90 days of the purchase."}
	case refund.Rejected:
		return Answer{Status: Rejected, Amount: decimal.Zero, Text: "Customs did not confirm the export: no refund."}
	}
	// REFUNDED or SETTLED with a prepayment payout is completed above; nothing else is left.
	return Answer{Status: Paid, Amount: r.payNet.Decimal, Text: "Paid."}
}

func methodWords(m string) string {
	switch m {
	case "CASH":
		return "cash"
	case "BANK_CARD":
		return "bank card"
	case "MOBILE":
		return "mobile payment"
	}
	return strings.ToLower(m)
}
