// Package registry is the tax authority's register of stores and its effective-dated
// parameters (DOMAIN.md §1, §3): every change is idempotent and leaves an audit event
// naming the official.
package registry

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"taxrefund/internal/audit"
	"taxrefund/internal/db"
	"taxrefund/internal/fault"
	"taxrefund/internal/idempotency"
	"taxrefund/internal/params"
	"taxrefund/internal/refund"
	"taxrefund/internal/risk"
)

// Store statuses.
const (
	Active    = "ACTIVE"
	Suspended = "SUSPENDED"
	Exited    = "EXITED"
)

// Store is a registered tax refund store.
type Store = db.Store

// Service changes and reads the registry.
type Service struct {
	pool *pgxpool.Pool
	q    *db.Queries
	now  func() time.Time
}

// New returns a Service; now nil means time.Now.
func New(pool *pgxpool.Pool, now func() time.Time) *Service {
	now = db.Clock(now)
	return &Service{pool: pool, q: db.New(), now: now}
}

var (
	// A code: ASCII letters and digits in groups joined by one '.', '_' or '-' ("CQ-JFB-001"),
	// at most 64 characters. No leading, trailing or doubled separator (no "..", which a
	// path or URI segment would read as the parent), and nothing outside ASCII, so no
	// look-alike letter (Cyrillic А, fullwidth Ａ) can name a second store that prints the same.
	codePattern  = regexp.MustCompile(`^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$`)
	gradePattern = regexp.MustCompile(`^[ABM]$`)
	namePattern  = regexp.MustCompile(`^[a-z_]{1,40}$`)
	// A VAT rate scope in canonical form: "0.13", not "0.130".
	vatPattern = regexp.MustCompile(`^0\.[0-9]{0,3}[1-9]$`)
)

// NewStore is a registration request.
type NewStore struct {
	Code, CreditCode, Name, BlockCode, CreditGrade string
	ImmediateRefund                                bool
}

// RegisterStore registers a store, ACTIVE.
func (s *Service) RegisterStore(ctx context.Context, key idempotency.Key, in NewStore) (Store, error) {
	l := fault.List{Kind: fault.Invalid, Reason: "INVALID_REQUEST", Message: "the request has invalid fields"}
	if !codePattern.MatchString(in.Code) || len(in.Code) > 64 {
		l.Add("code", "must be 1 to 64 ASCII letters and digits, in groups joined by one '.', '_' or '-' (it becomes the certificate identity)")
	}
	if !ValidCreditCode(in.CreditCode) {
		l.Add("credit_code", "is not a unified social credit code: 18 characters of 0-9 and A-Y without I, O, S, V, Z, with a valid check character")
	}
	if in.Name == "" || len([]rune(in.Name)) > 200 {
		l.Add("name", "is required, at most 200 characters")
	}
	if !IsGrade(in.CreditGrade) {
		l.Add("credit_grade", "must be A, B or M")
	}
	if !codePattern.MatchString(in.BlockCode) {
		l.Add("block_code", "must be a block code")
	}
	if err := l.Err(); err != nil {
		return Store{}, err
	}
	var out Store
	err := db.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if err := idempotency.Begin(ctx, tx, key, "RegisterStore"); err != nil {
			return err
		}
		ok, err := s.q.BlockExists(ctx, tx, in.BlockCode)
		if err != nil {
			return err
		}
		if !ok {
			return fault.Field(fault.Precondition, "UNKNOWN_BLOCK", "block_code", fmt.Sprintf("no refund block %q", in.BlockCode))
		}
		st, err := s.q.InsertStore(ctx, tx, db.InsertStoreParams{
			Code: in.Code, CreditCode: in.CreditCode, Name: in.Name, BlockCode: in.BlockCode,
			CreditGrade: in.CreditGrade, ImmediateRefund: in.ImmediateRefund, CreatedAt: s.now(),
		})
		switch {
		case db.IsUniqueViolation(err, "stores_pkey"):
			return fault.Field(fault.Precondition, "STORE_EXISTS", "code", fmt.Sprintf("store %s is already registered", in.Code))
		case db.IsUniqueViolation(err, "stores_credit_code_key"):
			return fault.Field(fault.Precondition, "CREDIT_CODE_TAKEN", "credit_code", "another store has this credit code")
		case err != nil:
			return err
		}
		out = st
		return audit.Close(ctx, tx, key, "STORE_REGISTERED", st.Code, map[string]any{"block": st.BlockCode, "grade": st.CreditGrade}, st)
	})
	return idempotency.Result(ctx, s.pool, key, "RegisterStore", err, out)
}

// SetStatus moves a store to status: SUSPENDED from ACTIVE, ACTIVE from SUSPENDED, EXITED
// from either. An exited store's certificate identity stops working.
func (s *Service) SetStatus(ctx context.Context, key idempotency.Key, code, status, reason string) (Store, error) {
	method := map[string]string{Suspended: "SuspendStore", Active: "ReinstateStore", Exited: "ExitStore"}[status]
	from := map[string][]string{Suspended: {Active}, Active: {Suspended}, Exited: {Active, Suspended}}[status]
	var out Store
	err := db.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if err := idempotency.Begin(ctx, tx, key, method); err != nil {
			return err
		}
		st, err := s.q.GetStoreForUpdate(ctx, tx, code)
		if errors.Is(err, pgx.ErrNoRows) {
			return fault.Field(fault.NotFound, "STORE_NOT_FOUND", "code", fmt.Sprintf("no store %q", code))
		}
		if err != nil {
			return err
		}
		allowed := false
		for _, f := range from {
			allowed = allowed || st.Status == f
		}
		if !allowed {
			return fault.Field(fault.Precondition, "STORE_STATUS", "code",
				fmt.Sprintf("store %s is %s; it cannot become %s", code, st.Status, status)).With("status", st.Status)
		}
		st, err = s.q.SetStoreStatus(ctx, tx, db.SetStoreStatusParams{Code: code, Status: status})
		if err != nil {
			return err
		}
		out = st
		return audit.Close(ctx, tx, key, "STORE_"+status, code, map[string]any{"reason": reason}, st)
	})
	return idempotency.Result(ctx, s.pool, key, method, err, out)
}

// IsGrade says whether g is a tax credit grade: A, B or M.
func IsGrade(g string) bool { return gradePattern.MatchString(g) }

// SetGrade changes a store's tax credit grade (A, B or M), with a reason. It takes
// effect at once, on the day it is made (effective, the local date returned): no rule of
// the refund depends on the grade (DOMAIN.md), so there is no later date to wait for.
// The audit event keeps the grade before, the grade after, the reason and that date. An
// exited store's grade no longer changes (STORE_STATUS); setting the grade a store
// already has changes nothing but is audited all the same, as SetReview is.
func (s *Service) SetGrade(ctx context.Context, key idempotency.Key, code, grade, reason string) (out Store, effective time.Time, err error) {
	if !IsGrade(grade) {
		return Store{}, time.Time{}, fault.Field(fault.Invalid, "INVALID_REQUEST", "credit_grade", "must be A, B or M")
	}
	if strings.TrimSpace(reason) == "" {
		return Store{}, time.Time{}, fault.Field(fault.Invalid, "INVALID_REQUEST", "reason", "is required: why the grade changes")
	}
	type result struct {
		Store     Store
		Effective string
	}
	var res result
	err = db.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if err := idempotency.Begin(ctx, tx, key, "SetStoreGrade"); err != nil {
			return err
		}
		st, err := s.q.GetStoreForUpdate(ctx, tx, code)
		if errors.Is(err, pgx.ErrNoRows) {
			return fault.Field(fault.NotFound, "STORE_NOT_FOUND", "code", fmt.Sprintf("no store %q", code))
		}
		if err != nil {
			return err
		}
		if st.Status == Exited {
			return fault.Field(fault.Precondition, "STORE_STATUS", "code",
				fmt.Sprintf("store %s has exited; its grade no longer changes", code)).With("status", st.Status)
		}
		before := st.CreditGrade
		if st, err = s.q.SetStoreGrade(ctx, tx, db.SetStoreGradeParams{Code: code, CreditGrade: grade}); err != nil {
			return err
		}
		res = result{Store: st, Effective: refund.FormatDate(refund.LocalDate(s.now()))}
		return audit.Close(ctx, tx, key, "STORE_GRADE_SET", code,
			map[string]any{"reason": reason, "from": before, "to": grade, "effective_date": res.Effective}, res)
	})
	res, err = idempotency.Result(ctx, s.pool, key, "SetStoreGrade", err, res)
	if err != nil {
		return Store{}, time.Time{}, err
	}
	effective, err = time.ParseInLocation(time.DateOnly, res.Effective, time.UTC)
	return res.Store, effective, err
}

// SetReview puts a store under review (its forms are RED for customs, internal/risk) or
// ends the review. Setting the flag it already has changes nothing but is audited all the
// same: the official's decision is on record.
func (s *Service) SetReview(ctx context.Context, key idempotency.Key, code string, review bool, reason string) (Store, error) {
	var out Store
	err := db.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if err := idempotency.Begin(ctx, tx, key, "SetStoreReview"); err != nil {
			return err
		}
		st, err := s.q.SetStoreReview(ctx, tx, db.SetStoreReviewParams{Code: code, UnderReview: review})
		if errors.Is(err, pgx.ErrNoRows) {
			return fault.Field(fault.NotFound, "STORE_NOT_FOUND", "code", fmt.Sprintf("no store %q", code))
		}
		if err != nil {
			return err
		}
		out = st
		action := "STORE_REVIEW_ENDED"
		if review {
			action = "STORE_UNDER_REVIEW"
		}
		return audit.Close(ctx, tx, key, action, code, map[string]any{"reason": reason}, st)
	})
	return idempotency.Result(ctx, s.pool, key, "SetStoreReview", err, out)
}

// GetStore returns a store.
func (s *Service) GetStore(ctx context.Context, code string) (Store, error) {
	st, err := s.q.GetStore(ctx, s.pool, code)
	if errors.Is(err, pgx.ErrNoRows) {
		return Store{}, fault.Field(fault.NotFound, "STORE_NOT_FOUND", "code", fmt.Sprintf("no store %q", code))
	}
	return st, err
}

// ListStores lists stores, optionally of one block and status.
func (s *Service) ListStores(ctx context.Context, block, status string) ([]Store, error) {
	var b, st *string
	if block != "" {
		b = &block
	}
	if status != "" {
		st = &status
	}
	return s.q.ListStores(ctx, s.pool, db.ListStoresParams{BlockCode: b, Status: st})
}

// Registry is the reference data.
type Registry struct {
	Blocks   []db.Block
	Ports    []db.Port
	Agencies []db.Agency
	Desks    []db.Desk
}

// Reference returns the blocks, ports, agencies and desks.
func (s *Service) Reference(ctx context.Context) (Registry, error) {
	var r Registry
	var err error
	if r.Blocks, err = s.q.ListBlocks(ctx, s.pool); err != nil {
		return r, err
	}
	if r.Ports, err = s.q.ListPorts(ctx, s.pool); err != nil {
		return r, err
	}
	if r.Agencies, err = s.q.ListAgencies(ctx, s.pool); err != nil {
		return r, err
	}
	r.Desks, err = s.q.ListDesks(ctx, s.pool)
	return r, err
}

// Parameter is one effective-dated value.
type Parameter = db.Parameter

// NewParameter is a request to set a value from a date.
type NewParameter struct {
	Name, Scope string
	ValidFrom   time.Time
	Value       decimal.Decimal
	Note        string
}

// SetParameter sets a value from a future date. The past is never rewritten: valid_from
// must be after today (Asia/Shanghai) and after the parameter's latest period.
func (s *Service) SetParameter(ctx context.Context, key idempotency.Key, in NewParameter) (Parameter, error) {
	if err := checkParameter(in); err != nil {
		return Parameter{}, err
	}
	var out Parameter
	err := db.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		// The record first: a retry after midnight gets its first answer, not a refusal.
		if err := idempotency.Begin(ctx, tx, key, "SetParameter"); err != nil {
			return err
		}
		today := refund.LocalDate(s.now())
		if !in.ValidFrom.After(today) {
			return fault.Field(fault.Precondition, "PAST_NOT_REWRITTEN", "parameter.valid_from",
				fmt.Sprintf("a new value must start after today (%s): the past is never rewritten", refund.FormatDate(today)))
		}
		if err := s.checkScope(ctx, tx, in); err != nil {
			return err
		}
		// Serialize changes of one parameter so two officials cannot both pass the check.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1::text, 2))`, in.Name+"|"+in.Scope); err != nil {
			return err
		}
		latest, err := s.q.LatestParameterFrom(ctx, tx, db.LatestParameterFromParams{Name: in.Name, Scope: in.Scope})
		if err != nil {
			return err
		}
		if !in.ValidFrom.After(latest) {
			return fault.Field(fault.Precondition, "OVERLAPPING_PERIOD", "parameter.valid_from",
				fmt.Sprintf("%s (%s) already has a value from %s; a new period must start after it", in.Name, in.Scope, refund.FormatDate(latest)))
		}
		p, err := s.q.InsertParameter(ctx, tx, db.InsertParameterParams{Name: in.Name, Scope: in.Scope, ValidFrom: in.ValidFrom, Value: in.Value, Note: in.Note})
		if err != nil {
			return err
		}
		out = p
		b := &pgx.Batch{}
		audit.Queue(b, key.Caller, "PARAMETER_SET", in.Name+"/"+in.Scope, key.RequestID,
			map[string]any{"valid_from": refund.FormatDate(in.ValidFrom), "value": in.Value, "note": in.Note})
		if err := idempotency.Finish(b, key, p); err != nil {
			return err
		}
		return db.SendBatch(ctx, tx, b)
	})
	return idempotency.Result(ctx, s.pool, key, "SetParameter", err, out)
}

// ListParameters lists parameters, optionally of one name.
func (s *Service) ListParameters(ctx context.Context, name string) ([]Parameter, error) {
	var n *string
	if name != "" {
		n = &name
	}
	return s.q.ListParameters(ctx, s.pool, n)
}

// checkParameter checks a value's range for its parameter.
func checkParameter(in NewParameter) error {
	if !namePattern.MatchString(in.Name) {
		return fault.Field(fault.Invalid, "INVALID_PARAMETER", "parameter.name", "not a parameter name")
	}
	if !codePattern.MatchString(in.Scope) && in.Scope != "" {
		return fault.Field(fault.Invalid, "INVALID_SCOPE", "parameter.scope", "not a scope (a VAT rate, an agency or a region code)")
	}
	one := decimal.NewFromInt(1)
	field := "parameter.value"
	bad := func(why string) error { return fault.Field(fault.Invalid, "INVALID_PARAMETER", field, why) }
	switch in.Name {
	case params.MinPurchase, params.CashCap, params.DailyPrepayCap:
		if !in.Value.IsPositive() || !in.Value.Equal(in.Value.Round(2)) {
			return bad("must be a positive amount with at most 2 fraction digits")
		}
	case params.RefundRate, params.AgencyFeeRate:
		if in.Value.IsNegative() || !in.Value.LessThan(one) || in.Value.Exponent() < -4 {
			return bad("must be a rate from 0 to below 1, at most 4 fraction digits")
		}
	case params.ExportWindowDays, params.CommittedPeriodDays:
		if !in.Value.IsInteger() || in.Value.LessThan(one) || in.Value.GreaterThan(decimal.NewFromInt(365)) {
			return bad("must be a whole number of days from 1 to 365")
		}
	case params.RiskVelocityAmount, params.RiskSerialThreshold:
		if !in.Value.IsPositive() || !in.Value.Equal(in.Value.Round(2)) {
			return bad("must be a positive amount with at most 2 fraction digits")
		}
	case params.RiskSplitMargin:
		if in.Value.IsNegative() || !in.Value.Equal(in.Value.Round(2)) {
			return bad("must be an amount of 0 or more with at most 2 fraction digits")
		}
	case params.RiskVelocityDays:
		if !in.Value.IsInteger() || in.Value.LessThan(one) || in.Value.GreaterThan(decimal.NewFromInt(risk.MaxVelocityDays)) {
			return bad(fmt.Sprintf("must be a whole number of days from 1 to %d", risk.MaxVelocityDays))
		}
	case params.RiskVelocityForms:
		if !in.Value.IsInteger() || in.Value.LessThan(one) || in.Value.GreaterThan(decimal.NewFromInt(1000)) {
			return bad("must be a whole number of forms from 1 to 1000")
		}
	case params.RiskSplitForms:
		if !in.Value.IsInteger() || in.Value.LessThan(decimal.NewFromInt(2)) || in.Value.GreaterThan(decimal.NewFromInt(100)) {
			return bad("must be a whole number of forms from 2 to 100")
		}
	case params.RiskStayMarginDays:
		if !in.Value.IsInteger() || in.Value.IsNegative() || in.Value.GreaterThan(decimal.NewFromInt(refund.StayLimitDays)) {
			return bad(fmt.Sprintf("must be a whole number of days from 0 to %d", refund.StayLimitDays))
		}
	case params.RiskMinAgeMinutes:
		if !in.Value.IsInteger() || in.Value.IsNegative() || in.Value.GreaterThan(decimal.NewFromInt(1440)) {
			return bad("must be a whole number of minutes from 0 to 1440")
		}
	default:
		return fault.Field(fault.Invalid, "INVALID_PARAMETER", "parameter.name", fmt.Sprintf("unknown parameter %q", in.Name))
	}
	return nil
}

// checkScope checks that the scope fits the parameter: ” for national values, a VAT
// rate for refund rates, an agency for fees, a region for regional values.
func (s *Service) checkScope(ctx context.Context, tx pgx.Tx, in NewParameter) error {
	field := "parameter.scope"
	var ok bool
	var err error
	switch in.Name {
	case params.RefundRate:
		ok = vatPattern.MatchString(in.Scope)
	case params.AgencyFeeRate:
		ok, err = s.q.AgencyExists(ctx, tx, in.Scope)
	case params.CommittedPeriodDays, params.DailyPrepayCap:
		ok, err = s.q.RegionExists(ctx, tx, in.Scope)
	default:
		ok = in.Scope == ""
	}
	if err != nil {
		return err
	}
	if !ok {
		return fault.Field(fault.Invalid, "INVALID_SCOPE", field,
			fmt.Sprintf("scope %q does not fit %s (a VAT rate for refund_rate, an agency for agency_fee_rate, a region for regional values, empty otherwise)", in.Scope, in.Name))
	}
	return nil
}

var serialPattern = regexp.MustCompile(`^[0-9a-f]{1,64}$`)

// Revocation is a revoked certificate.
type Revocation struct {
	Serial    string
	RevokedAt time.Time
}

// RevokeCertificate adds a certificate's serial (lower-case hex) to the revocation list;
// revoking a revoked certificate is a no-op.
func (s *Service) RevokeCertificate(ctx context.Context, key idempotency.Key, serial, reason string) (Revocation, error) {
	serial = strings.TrimLeft(strings.ToLower(strings.ReplaceAll(serial, ":", "")), "0")
	if !serialPattern.MatchString(serial) {
		return Revocation{}, fault.Field(fault.Invalid, "INVALID_REQUEST", "serial", "must be the certificate's serial number in hex")
	}
	var out Revocation
	err := db.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if err := idempotency.Begin(ctx, tx, key, "RevokeCertificate"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO revoked_certificates (serial, revoked_at, revoked_by, reason) VALUES ($1, $2, $3, $4)
			ON CONFLICT (serial) DO NOTHING`, serial, s.now(), key.Caller, reason); err != nil {
			return err
		}
		out.Serial = serial
		if err := tx.QueryRow(ctx, `SELECT revoked_at FROM revoked_certificates WHERE serial = $1`, serial).Scan(&out.RevokedAt); err != nil {
			return err
		}
		return audit.Close(ctx, tx, key, "CERTIFICATE_REVOKED", serial, map[string]any{"reason": reason}, out)
	})
	return idempotency.Result(ctx, s.pool, key, "RevokeCertificate", err, out)
}
