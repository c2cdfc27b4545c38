// Package authority serves taxrefund.authority.v1.AuthorityService for tax officials:
// the store registry and parameters, settlement review, month closing, reconciliation,
// reports and exports, expiry on demand and the invariant check.
package authority

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	authorityv1 "taxrefund/api/taxrefund/authority/v1"
	settlementv1 "taxrefund/api/taxrefund/settlement/v1"
	"taxrefund/internal/acquirer"
	"taxrefund/internal/auth"
	"taxrefund/internal/db"
	"taxrefund/internal/fault"
	"taxrefund/internal/idempotency"
	"taxrefund/internal/immediate"
	"taxrefund/internal/invariants"
	"taxrefund/internal/money"
	"taxrefund/internal/registry"
	"taxrefund/internal/report"
	"taxrefund/internal/risk"
	"taxrefund/internal/seal"
	"taxrefund/internal/settlement"
	"taxrefund/internal/wire"
)

// Expirer runs the expiry of overdue forms.
type Expirer interface {
	Expire(ctx context.Context, actor string) (int, error)
}

// Handler implements AuthorityService.
type Handler struct {
	authorityv1.UnimplementedAuthorityServiceServer
	expirer    Expirer
	pool       *pgxpool.Pool
	registry   *registry.Service
	settlement *settlement.Service
	immediate  *immediate.Service
	reads      *pgxpool.Pool
	now        func() time.Time
	// reports are the recent monthly reports and reconciliation summaries, for the
	// callers who accept figures of a bounded age (max_age).
	reports *report.Cache[proto.Message]
}

// Deps are what the handler needs.
type Deps struct {
	Expirer    Expirer
	Pool       *pgxpool.Pool
	Registry   *registry.Service
	Settlement *settlement.Service
	Immediate  *immediate.Service
	// Reads is the pool of reads that may lag (a replica: serve -read-database-url), acting
	// as the same role as Pool; nil: they read Pool. Only the monthly report, the
	// reconciliation and the exports use it.
	Reads *pgxpool.Pool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Log receives the report cache's failed background refreshes; nil: discarded.
	Log *slog.Logger
}

// New returns a Handler.
func New(d Deps) *Handler {
	now := d.Now
	if now == nil {
		now = time.Now
	}
	return &Handler{expirer: d.Expirer, pool: d.Pool, registry: d.Registry, settlement: d.Settlement, immediate: d.Immediate, reads: d.Reads, now: now,
		reports: report.NewCache[proto.Message](report.CacheOptions{Now: now, Log: d.Log})}
}

func caller(ctx context.Context) (auth.Party, error) {
	p, ok := auth.FromContext(ctx)
	if !ok || p.Role != auth.RoleAuthority {
		return auth.Party{}, fault.New(fault.Denied, "NOT_THE_AUTHORITY", "only the tax authority may call this")
	}
	return p, nil
}

// key parses the request_id of a mutating request and names the caller.
type hashed interface {
	GetRequestId() string
}

func keyOf(ctx context.Context, f *wire.Fields, req interface {
	hashed
	wire.Message
}) (idempotency.Key, error) {
	p, err := caller(ctx)
	if err != nil {
		return idempotency.Key{}, err
	}
	rid := f.RequestID("request_id", req.GetRequestId())
	return idempotency.Key{Caller: p.String(), RequestID: rid, Hash: wire.CanonicalHash(req)}, nil
}

// RunExpiry expires overdue forms now.
func (h *Handler) RunExpiry(ctx context.Context, _ *authorityv1.RunExpiryRequest) (*authorityv1.RunExpiryResponse, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	n, err := h.expirer.Expire(ctx, p.String())
	if err != nil {
		return nil, err
	}
	return &authorityv1.RunExpiryResponse{Expired: int64(n)}, nil
}

// CheckInvariants checks DOMAIN.md §8's invariants over the whole database.
func (h *Handler) CheckInvariants(ctx context.Context, _ *authorityv1.CheckInvariantsRequest) (*authorityv1.CheckInvariantsResponse, error) {
	if _, err := caller(ctx); err != nil {
		return nil, err
	}
	found, err := invariants.Check(ctx, db.Scope(h.pool))
	if err != nil {
		return nil, err
	}
	resp := &authorityv1.CheckInvariantsResponse{Ok: len(found) == 0}
	for _, v := range found {
		resp.Violations = append(resp.Violations, &authorityv1.Violation{Invariant: v.Invariant, Detail: v.Detail})
	}
	return resp, nil
}

// RegisterStore registers a store.
func (h *Handler) RegisterStore(ctx context.Context, req *authorityv1.RegisterStoreRequest) (*authorityv1.RegisterStoreResponse, error) {
	f := wire.NewFields()
	key, err := keyOf(ctx, f, req)
	if err != nil {
		return nil, err
	}
	name := f.Text("name", req.GetName(), 200, false)
	if err := f.Err(); err != nil {
		return nil, err
	}
	st, err := h.registry.RegisterStore(ctx, key, registry.NewStore{
		Code: req.GetCode(), CreditCode: req.GetCreditCode(), Name: name, BlockCode: req.GetBlockCode(),
		CreditGrade: req.GetCreditGrade(), ImmediateRefund: req.GetImmediateRefund(),
	})
	if err != nil {
		return nil, err
	}
	return &authorityv1.RegisterStoreResponse{Store: wire.Store(st)}, nil
}

type statusRequest interface {
	hashed
	wire.Message
	GetCode() string
	GetReason() string
}

func (h *Handler) setStatus(ctx context.Context, req statusRequest, status string) (*authorityv1.Store, error) {
	f := wire.NewFields()
	key, err := keyOf(ctx, f, req)
	if err != nil {
		return nil, err
	}
	reason := f.Reason("reason", req.GetReason())
	if err := f.Err(); err != nil {
		return nil, err
	}
	st, err := h.registry.SetStatus(ctx, key, req.GetCode(), status, reason)
	if err != nil {
		return nil, err
	}
	return wire.Store(st), nil
}

// SuspendStore suspends a store.
func (h *Handler) SuspendStore(ctx context.Context, req *authorityv1.SuspendStoreRequest) (*authorityv1.SuspendStoreResponse, error) {
	st, err := h.setStatus(ctx, req, registry.Suspended)
	if err != nil {
		return nil, err
	}
	return &authorityv1.SuspendStoreResponse{Store: st}, nil
}

// ReinstateStore reinstates a suspended store.
func (h *Handler) ReinstateStore(ctx context.Context, req *authorityv1.ReinstateStoreRequest) (*authorityv1.ReinstateStoreResponse, error) {
	st, err := h.setStatus(ctx, req, registry.Active)
	if err != nil {
		return nil, err
	}
	return &authorityv1.ReinstateStoreResponse{Store: st}, nil
}

// ExitStore removes a store for good.
func (h *Handler) ExitStore(ctx context.Context, req *authorityv1.ExitStoreRequest) (*authorityv1.ExitStoreResponse, error) {
	st, err := h.setStatus(ctx, req, registry.Exited)
	if err != nil {
		return nil, err
	}
	return &authorityv1.ExitStoreResponse{Store: st}, nil
}

// GetStore returns a store.
func (h *Handler) GetStore(ctx context.Context, req *authorityv1.GetStoreRequest) (*authorityv1.GetStoreResponse, error) {
	if _, err := caller(ctx); err != nil {
		return nil, err
	}
	st, err := h.registry.GetStore(ctx, req.GetCode())
	if err != nil {
		return nil, err
	}
	return &authorityv1.GetStoreResponse{Store: wire.Store(st)}, nil
}

// ListStores lists stores.
func (h *Handler) ListStores(ctx context.Context, req *authorityv1.ListStoresRequest) (*authorityv1.ListStoresResponse, error) {
	if _, err := caller(ctx); err != nil {
		return nil, err
	}
	status, ok := wire.StoreStatus(req.GetStatus())
	if !ok {
		return nil, fault.Field(fault.Invalid, "INVALID_REQUEST", "status", "not a store status")
	}
	list, err := h.registry.ListStores(ctx, req.GetBlockCode(), status)
	if err != nil {
		return nil, err
	}
	resp := &authorityv1.ListStoresResponse{}
	for _, st := range list {
		resp.Stores = append(resp.Stores, wire.Store(st))
	}
	return resp, nil
}

// GetRegistry lists blocks, ports, agencies and desks.
func (h *Handler) GetRegistry(ctx context.Context, _ *authorityv1.GetRegistryRequest) (*authorityv1.GetRegistryResponse, error) {
	if _, err := caller(ctx); err != nil {
		return nil, err
	}
	r, err := h.registry.Reference(ctx)
	if err != nil {
		return nil, err
	}
	resp := &authorityv1.GetRegistryResponse{}
	for _, b := range r.Blocks {
		resp.Blocks = append(resp.Blocks, &authorityv1.Block{Code: b.Code, Name: b.Name, City: b.City, RegionCode: b.RegionCode})
	}
	for _, p := range r.Ports {
		resp.Ports = append(resp.Ports, &authorityv1.Port{Code: p.Code, Name: p.Name, City: p.City, RegionCode: p.RegionCode})
	}
	for _, a := range r.Agencies {
		resp.Agencies = append(resp.Agencies, &authorityv1.Agency{Code: a.Code, Name: a.Name})
	}
	for _, d := range r.Desks {
		desk := &authorityv1.Desk{Code: d.Code, AgencyCode: d.AgencyCode, Kind: d.Kind, Name: d.Name}
		if d.PortCode != nil {
			desk.PortCode = *d.PortCode
		}
		if d.BlockCode != nil {
			desk.BlockCode = *d.BlockCode
		}
		resp.Desks = append(resp.Desks, desk)
	}
	return resp, nil
}

// SetParameter sets a parameter from a future date.
func (h *Handler) SetParameter(ctx context.Context, req *authorityv1.SetParameterRequest) (*authorityv1.SetParameterResponse, error) {
	f := wire.NewFields()
	key, err := keyOf(ctx, f, req)
	if err != nil {
		return nil, err
	}
	p := req.GetParameter()
	var in registry.NewParameter
	if p == nil {
		f.Add("parameter", "is required")
	} else {
		in = registry.NewParameter{Name: p.GetName(), Scope: p.GetScope(), ValidFrom: f.Date("parameter.valid_from", p.GetValidFrom()),
			Note: f.Reason("parameter.note", p.GetNote())}
		if wire.PlainDecimal(p.GetValue()) {
			in.Value = decimal.RequireFromString(p.GetValue())
		} else {
			f.Add("parameter.value", `must be a plain decimal, e.g. "200.00" or "0.11"`)
		}
	}
	if err := f.Err(); err != nil {
		return nil, err
	}
	out, err := h.registry.SetParameter(ctx, key, in)
	if err != nil {
		return nil, err
	}
	return &authorityv1.SetParameterResponse{Parameter: wire.Parameter(out)}, nil
}

// ListParameters lists parameters.
func (h *Handler) ListParameters(ctx context.Context, req *authorityv1.ListParametersRequest) (*authorityv1.ListParametersResponse, error) {
	if _, err := caller(ctx); err != nil {
		return nil, err
	}
	list, err := h.registry.ListParameters(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	resp := &authorityv1.ListParametersResponse{}
	for _, p := range list {
		resp.Parameters = append(resp.Parameters, wire.Parameter(p))
	}
	return resp, nil
}

// ListDeclarations lists declarations.
func (h *Handler) ListDeclarations(ctx context.Context, req *authorityv1.ListDeclarationsRequest) (*authorityv1.ListDeclarationsResponse, error) {
	if _, err := caller(ctx); err != nil {
		return nil, err
	}
	f := wire.NewFields()
	var month *time.Time
	if req.GetMonth() != "" {
		m := f.Month("month", req.GetMonth())
		month = &m
	}
	status, ok := wire.DeclarationStatus(req.GetStatus())
	if !ok {
		f.Add("status", "not a declaration status")
	}
	if err := f.Err(); err != nil {
		return nil, err
	}
	list, err := h.settlement.List(ctx, req.GetAgencyCode(), month, status)
	if err != nil {
		return nil, err
	}
	resp := &authorityv1.ListDeclarationsResponse{Declarations: make([]*settlementv1.Declaration, len(list))}
	for i, d := range list {
		resp.Declarations[i] = wire.Declaration(d)
	}
	return resp, nil
}

// GetDeclaration returns a declaration with its lines.
func (h *Handler) GetDeclaration(ctx context.Context, req *authorityv1.GetDeclarationRequest) (*authorityv1.GetDeclarationResponse, error) {
	if _, err := caller(ctx); err != nil {
		return nil, err
	}
	f := wire.NewFields()
	id := f.UUID("declaration_id", req.GetDeclarationId())
	if err := f.Err(); err != nil {
		return nil, err
	}
	d, err := h.settlement.Get(ctx, id, "")
	if err != nil {
		return nil, err
	}
	return &authorityv1.GetDeclarationResponse{Declaration: wire.Declaration(d)}, nil
}

// ApproveDeclaration approves a declaration and posts the reimbursement.
func (h *Handler) ApproveDeclaration(ctx context.Context, req *authorityv1.ApproveDeclarationRequest) (*authorityv1.ApproveDeclarationResponse, error) {
	f := wire.NewFields()
	key, err := keyOf(ctx, f, req)
	if err != nil {
		return nil, err
	}
	id := f.UUID("declaration_id", req.GetDeclarationId())
	if err := f.Err(); err != nil {
		return nil, err
	}
	d, err := h.settlement.Approve(ctx, key, id)
	if err != nil {
		return nil, err
	}
	return &authorityv1.ApproveDeclarationResponse{Declaration: wire.Declaration(d)}, nil
}

// ReturnDeclaration returns a declaration with reasons.
func (h *Handler) ReturnDeclaration(ctx context.Context, req *authorityv1.ReturnDeclarationRequest) (*authorityv1.ReturnDeclarationResponse, error) {
	f := wire.NewFields()
	key, err := keyOf(ctx, f, req)
	if err != nil {
		return nil, err
	}
	id := f.UUID("declaration_id", req.GetDeclarationId())
	if len(req.GetReasons()) > 20 {
		f.Add("reasons", "at most 20 reasons")
	}
	for i, r := range req.GetReasons() {
		f.Text(fmt.Sprintf("reasons[%d]", i), r, 500, false)
	}
	if err := f.Err(); err != nil {
		return nil, err
	}
	d, err := h.settlement.Return(ctx, key, id, req.GetReasons())
	if err != nil {
		return nil, err
	}
	return &authorityv1.ReturnDeclarationResponse{Declaration: wire.Declaration(d)}, nil
}

// CloseMonth freezes a past month.
func (h *Handler) CloseMonth(ctx context.Context, req *authorityv1.CloseMonthRequest) (*authorityv1.CloseMonthResponse, error) {
	f := wire.NewFields()
	key, err := keyOf(ctx, f, req)
	if err != nil {
		return nil, err
	}
	month := f.Month("month", req.GetMonth())
	if err := f.Err(); err != nil {
		return nil, err
	}
	cm, err := h.settlement.CloseMonth(ctx, key, month)
	if err != nil {
		return nil, err
	}
	return &authorityv1.CloseMonthResponse{Month: settlement.FormatMonth(cm.Month), ClosedAt: timestamppb.New(cm.ClosedAt)}, nil
}

// Reconcile matches a month's issuance, confirmations and payouts.
func (h *Handler) Reconcile(ctx context.Context, req *authorityv1.ReconcileRequest) (*authorityv1.ReconcileResponse, error) {
	if _, err := caller(ctx); err != nil {
		return nil, err
	}
	f := wire.NewFields()
	month := f.Month("month", req.GetMonth())
	days := int(req.GetUnpaidAfterDays())
	if days == 0 {
		days = 30
	}
	if days < 0 || days > 3650 {
		f.Add("unpaid_after_days", "must be 1 to 3650")
	}
	limit := int(req.GetSummaryLimit())
	if limit < 0 || limit > 100 {
		f.Add("summary_limit", "must be 0 (everything) or 1 to 100")
	}
	age := maxAge(f, req.GetMaxAge())
	if err := f.Err(); err != nil {
		return nil, err
	}
	if limit == 0 {
		// A full reconciliation (trial balance, invariants) is always computed now.
		resp, _, err := h.reconcile(ctx, month, days, 0)
		return resp, err
	}
	key := fmt.Sprintf("reconcile %s limit=%d days=%d", settlement.FormatMonth(month), limit, days)
	resp, err := cachedAnswer(ctx, h, key, age, func(ctx context.Context) (*authorityv1.ReconcileResponse, time.Time, error) {
		return h.reconcile(ctx, month, days, limit)
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// reconcile computes a month's reconciliation (the summary: limit > 0) now, and when its
// figures were read.
func (h *Handler) reconcile(ctx context.Context, month time.Time, days, limit int) (*authorityv1.ReconcileResponse, time.Time, error) {
	pool, src, asOf, err := h.lagging(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	var r report.Reconciliation
	if limit > 0 {
		r, err = report.ReconcileSummary(ctx, db.Scope(pool), month, days, h.now(), limit)
	} else {
		r, err = report.Reconcile(ctx, db.Scope(pool), month, days, h.now())
	}
	if err != nil {
		return nil, time.Time{}, err
	}
	resp := &authorityv1.ReconcileResponse{Month: settlement.FormatMonth(month), ReadSource: src, SummaryOnly: r.Summary}
	for _, c := range r.Counts {
		resp.ExceptionCounts = append(resp.ExceptionCounts, &authorityv1.ExceptionCount{Kind: c.Kind, Count: c.Count})
	}
	for _, s := range r.Sides {
		resp.Summary = append(resp.Summary, &authorityv1.MatchSummary{Side: s.Name, Forms: s.Forms, Amount: money.Format(s.Amount)})
	}
	for _, e := range r.Exceptions {
		resp.Exceptions = append(resp.Exceptions, &authorityv1.ReconciliationException{Kind: e.Kind, Subject: e.Subject, Reason: e.Reason})
	}
	for _, b := range r.TrialBalance {
		resp.TrialBalance = append(resp.TrialBalance, &authorityv1.TrialBalanceLine{
			Account: b.Account, Debits: money.Format(b.Debits), Credits: money.Format(b.Credits), Balance: money.Format(b.Debits.Sub(b.Credits)),
		})
	}
	for _, v := range r.Violations {
		resp.InvariantViolations = append(resp.InvariantViolations, &authorityv1.Violation{Invariant: v.Invariant, Detail: v.Detail})
	}
	return resp, asOf, nil
}

// MonthlyReport returns a month's figures.
func (h *Handler) MonthlyReport(ctx context.Context, req *authorityv1.MonthlyReportRequest) (*authorityv1.MonthlyReportResponse, error) {
	if _, err := caller(ctx); err != nil {
		return nil, err
	}
	f := wire.NewFields()
	month := f.Month("month", req.GetMonth())
	age := maxAge(f, req.GetMaxAge())
	if err := f.Err(); err != nil {
		return nil, err
	}
	return cachedAnswer(ctx, h, "monthly "+settlement.FormatMonth(month), age, func(ctx context.Context) (*authorityv1.MonthlyReportResponse, time.Time, error) {
		return h.monthlyReport(ctx, month)
	})
}

// monthlyReport computes a month's report now, and when its figures were read.
func (h *Handler) monthlyReport(ctx context.Context, month time.Time) (*authorityv1.MonthlyReportResponse, time.Time, error) {
	pool, src, asOf, err := h.lagging(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	rows, err := report.Monthly(ctx, db.Scope(pool), month)
	if err != nil {
		return nil, time.Time{}, err
	}
	seq, head, err := seal.Head(ctx, pool, seal.Journal)
	if err != nil {
		return nil, time.Time{}, err
	}
	cps, err := h.settlement.Checkpoints(month)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("checkpoints of %s: %w", settlement.FormatMonth(month), err)
	}
	resp := &authorityv1.MonthlyReportResponse{Month: settlement.FormatMonth(month), JournalHead: &authorityv1.ChainHead{Seq: seq, Hash: head},
		Checkpoints: wire.Checkpoints(cps), ReadSource: src}
	for _, r := range rows {
		resp.Rows = append(resp.Rows, wire.ReportRow(r))
	}
	return resp, asOf, nil
}

// MaxReportAge is the oldest answer a caller may accept from the report cache (max_age).
const MaxReportAge = time.Hour

// maxAge reads a request's max_age: 0 (computed now) to maxReportAge.
func maxAge(f *wire.Fields, d *durationpb.Duration) time.Duration {
	if d == nil {
		return 0
	}
	if err := d.CheckValid(); err != nil {
		f.Add("max_age", "must be a valid duration")
		return 0
	}
	age := d.AsDuration()
	if age < 0 || age > MaxReportAge {
		f.Add("max_age", "must be 0 (computed now) to %s", MaxReportAge)
	}
	return age
}

// answer is a response with a read source: a monthly report or a reconciliation.
type answer interface {
	proto.Message
	GetReadSource() *authorityv1.ReadSource
}

// cachedAnswer answers from h's report cache an answer at most age old, computing it
// when there is none (age 0: computed now, and kept for the callers who accept an older
// one). With age 0 the answer is exactly compute's; otherwise its read_source says when
// the figures were read and whether they came from the cache. The cache keeps its own
// copy, and each caller gets one: answers are never shared.
func cachedAnswer[R answer](ctx context.Context, h *Handler, key string, age time.Duration, compute func(context.Context) (R, time.Time, error)) (R, error) {
	res, err := h.reports.Get(ctx, key, age, func(ctx context.Context) (proto.Message, time.Time, error) {
		return compute(ctx)
	})
	if err != nil {
		var zero R
		return zero, err
	}
	out := proto.Clone(res.Value).(R)
	if age == 0 {
		return out, nil
	}
	src := out.GetReadSource()
	if src == nil {
		// Read from the primary: no replica, no lag.
		src = &authorityv1.ReadSource{}
	}
	src.AsOf, src.Cached = timestamppb.New(res.AsOf), res.Cached
	setReadSource(out, src)
	return out, nil
}

func setReadSource(m proto.Message, src *authorityv1.ReadSource) {
	switch r := m.(type) {
	case *authorityv1.MonthlyReportResponse:
		r.ReadSource = src
	case *authorityv1.ReconcileResponse:
		r.ReadSource = src
	}
}

// lagging returns the pool of reads that may lag and, when that is a read pool, where it
// reads and how far behind (nil: the primary, as without -read-database-url), and the
// time of the figures read from it now: the replica's as_of, or the clock for the
// primary. A read pool that cannot be reached leaves the read to the primary.
func (h *Handler) lagging(ctx context.Context) (*pgxpool.Pool, *authorityv1.ReadSource, time.Time, error) {
	if h.reads == nil {
		return h.pool, nil, h.now(), nil
	}
	rs, err := db.ReadFrom(ctx, h.reads)
	if err != nil {
		if db.IsUnavailable(err) && ctx.Err() == nil {
			return h.pool, nil, h.now(), nil
		}
		return nil, nil, time.Time{}, err
	}
	return h.reads, &authorityv1.ReadSource{Replica: rs.Replica, Lag: durationpb.New(rs.Lag), AsOf: timestamppb.New(rs.AsOf)}, rs.AsOf, nil
}

func readSource(s *authorityv1.ReadSource) db.ReadSource {
	return db.ReadSource{Replica: s.GetReplica(), Lag: s.GetLag().AsDuration(), AsOf: s.GetAsOf().AsTime()}
}

// MonthlyTrend returns the refunds paid in each month of a span, in one read of the
// span's payouts.
func (h *Handler) MonthlyTrend(ctx context.Context, req *authorityv1.MonthlyTrendRequest) (*authorityv1.MonthlyTrendResponse, error) {
	if _, err := caller(ctx); err != nil {
		return nil, err
	}
	f := wire.NewFields()
	from := f.Month("from_month", req.GetFromMonth())
	to := f.Month("to_month", req.GetToMonth())
	if f.Err() == nil && (to.Before(from) || !to.Before(from.AddDate(0, report.MaxTrendMonths, 0))) {
		f.Add("to_month", "must be from_month or up to %d months after it", report.MaxTrendMonths-1)
	}
	if err := f.Err(); err != nil {
		return nil, err
	}
	months, err := report.Trend(ctx, db.Scope(h.pool), from, to.AddDate(0, 1, 0))
	if err != nil {
		return nil, err
	}
	resp := &authorityv1.MonthlyTrendResponse{}
	for _, m := range months {
		resp.Months = append(resp.Months, &authorityv1.MonthTotal{Month: settlement.FormatMonth(m.Month), Payouts: m.Payouts,
			PaidGross: money.Format(m.PaidGross), PaidFee: money.Format(m.PaidFee), PaidNet: money.Format(m.PaidNet)})
	}
	return resp, nil
}

// exportChunk is the size of each streamed piece of an export.
const exportChunk = 64 << 10

// ExportReport streams the month's report as CSV or XLSX: a header, then the file.
func (h *Handler) ExportReport(req *authorityv1.ExportReportRequest, stream authorityv1.AuthorityService_ExportReportServer) error {
	ctx := stream.Context()
	p, err := caller(ctx)
	if err != nil {
		return err
	}
	f := wire.NewFields()
	month := f.Month("month", req.GetMonth())
	switch req.GetFormat() {
	case authorityv1.ExportFormat_EXPORT_FORMAT_CSV, authorityv1.ExportFormat_EXPORT_FORMAT_XLSX:
	default:
		f.Add("format", "must be EXPORT_FORMAT_CSV or EXPORT_FORMAT_XLSX")
	}
	if err := f.Err(); err != nil {
		return err
	}
	pool, src, _, err := h.lagging(ctx)
	if err != nil {
		return err
	}
	rows, err := report.Monthly(ctx, db.Scope(pool), month)
	if err != nil {
		return err
	}
	var data []byte
	header := &authorityv1.ExportHeader{Rows: int64(len(rows)), ReadSource: src}
	note := ""
	if src != nil {
		note = db.ReplicaNote(readSource(src))
	}
	if req.GetFormat() == authorityv1.ExportFormat_EXPORT_FORMAT_CSV {
		data, err = report.CSV(rows)
		if err == nil && note != "" {
			data, err = report.AppendNote(data, note)
		}
		header.FileName, header.ContentType = report.FileName(month, "csv"), "text/csv"
	} else {
		// The workbook commits to the journal's chain head, as MonthlyReport does.
		seq, head, herr := seal.Head(ctx, pool, seal.Journal)
		if herr != nil {
			return herr
		}
		data, err = report.XLSX(month, rows, report.Sheet{Office: p.Office, Generated: h.now(), ChainSeq: seq, ChainHash: head, Note: note})
		header.FileName, header.ContentType = report.FileName(month, "xlsx"), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
	}
	if err != nil {
		return fmt.Errorf("render export: %w", err)
	}
	header.Size = int64(len(data))
	if err := stream.Send(&authorityv1.ExportReportResponse{Part: &authorityv1.ExportReportResponse_Header{Header: header}}); err != nil {
		return err
	}
	for len(data) > 0 {
		n := min(exportChunk, len(data))
		if err := stream.Send(&authorityv1.ExportReportResponse{Part: &authorityv1.ExportReportResponse_Chunk{Chunk: data[:n]}}); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// SetCalendarDay marks a date working or not.
func (h *Handler) SetCalendarDay(ctx context.Context, req *authorityv1.SetCalendarDayRequest) (*authorityv1.SetCalendarDayResponse, error) {
	f := wire.NewFields()
	key, err := keyOf(ctx, f, req)
	if err != nil {
		return nil, err
	}
	day := f.Date("date", req.GetDate())
	note := f.Reason("note", req.GetNote())
	if err := f.Err(); err != nil {
		return nil, err
	}
	if err := h.immediate.SetCalendarDay(ctx, key, day, req.GetWorking(), note); err != nil {
		return nil, err
	}
	return &authorityv1.SetCalendarDayResponse{Date: req.GetDate(), Working: req.GetWorking(), Note: note}, nil
}

// RunCaptures captures the pre-authorizations due now.
func (h *Handler) RunCaptures(ctx context.Context, _ *authorityv1.RunCapturesRequest) (*authorityv1.RunCapturesResponse, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	n, err := h.immediate.Captures(ctx, p.String())
	if err != nil {
		return nil, err
	}
	return &authorityv1.RunCapturesResponse{Captured: int64(n)}, nil
}

// ListAcquirerInstructions lists undelivered acquirer instructions, stuck ones first.
func (h *Handler) ListAcquirerInstructions(ctx context.Context, _ *authorityv1.ListAcquirerInstructionsRequest) (*authorityv1.ListAcquirerInstructionsResponse, error) {
	if _, err := caller(ctx); err != nil {
		return nil, err
	}
	list, err := acquirer.Pending(ctx, h.pool)
	if err != nil {
		return nil, err
	}
	resp := &authorityv1.ListAcquirerInstructionsResponse{}
	for _, in := range list {
		resp.Instructions = append(resp.Instructions, &authorityv1.AcquirerInstruction{
			Id: in.ID, Kind: string(in.Kind), PrepaymentId: in.PrepaymentID.String(), Amount: money.Format(in.Amount),
			Attempts: in.Attempts, LastError: in.LastError, CreatedAt: timestamppb.New(in.CreatedAt),
			NextAttemptAt: timestamppb.New(in.NextAttempt), Stuck: in.Attempts >= acquirer.StuckAfter,
		})
	}
	return resp, nil
}

// VerifyChains recomputes the journal's and the audit log's hash chains.
func (h *Handler) VerifyChains(ctx context.Context, _ *authorityv1.VerifyChainsRequest) (*authorityv1.VerifyChainsResponse, error) {
	if _, err := caller(ctx); err != nil {
		return nil, err
	}
	resp := &authorityv1.VerifyChainsResponse{}
	for _, chain := range seal.Chains {
		r, err := seal.Verify(ctx, h.pool, chain)
		if err != nil {
			return nil, err
		}
		v := &authorityv1.ChainVerification{Chain: chain, Verified: r.Verified, Head: &authorityv1.ChainHead{Seq: r.Seq, Hash: r.Head}, Ok: r.Broken == nil}
		if b := r.Broken; b != nil {
			v.BrokenSeq, v.BrokenRow, v.BrokenReason = b.Seq, b.RowID, b.Reason
		}
		resp.Chains = append(resp.Chains, v)
	}
	return resp, nil
}

// ChainHeads returns each hash chain's last seal: a read of one row per chain.
func (h *Handler) ChainHeads(ctx context.Context, _ *authorityv1.ChainHeadsRequest) (*authorityv1.ChainHeadsResponse, error) {
	if _, err := caller(ctx); err != nil {
		return nil, err
	}
	resp := &authorityv1.ChainHeadsResponse{}
	for _, chain := range seal.Chains {
		seq, head, err := seal.Head(ctx, h.pool, chain)
		if err != nil {
			return nil, err
		}
		resp.Chains = append(resp.Chains, &authorityv1.ChainVerification{Chain: chain, Head: &authorityv1.ChainHead{Seq: seq, Hash: head}})
	}
	return resp, nil
}

// RevokeCertificate revokes a client certificate.
func (h *Handler) RevokeCertificate(ctx context.Context, req *authorityv1.RevokeCertificateRequest) (*authorityv1.RevokeCertificateResponse, error) {
	f := wire.NewFields()
	key, err := keyOf(ctx, f, req)
	if err != nil {
		return nil, err
	}
	reason := f.Reason("reason", req.GetReason())
	if err := f.Err(); err != nil {
		return nil, err
	}
	r, err := h.registry.RevokeCertificate(ctx, key, req.GetSerial(), reason)
	if err != nil {
		return nil, err
	}
	return &authorityv1.RevokeCertificateResponse{Serial: r.Serial, RevokedAt: timestamppb.New(r.RevokedAt)}, nil
}

// SetStoreReview puts a store under review or ends the review.
func (h *Handler) SetStoreReview(ctx context.Context, req *authorityv1.SetStoreReviewRequest) (*authorityv1.SetStoreReviewResponse, error) {
	f := wire.NewFields()
	key, err := keyOf(ctx, f, req)
	if err != nil {
		return nil, err
	}
	reason := f.Reason("reason", req.GetReason())
	if err := f.Err(); err != nil {
		return nil, err
	}
	st, err := h.registry.SetReview(ctx, key, req.GetCode(), req.GetUnderReview(), reason)
	if err != nil {
		return nil, err
	}
	return &authorityv1.SetStoreReviewResponse{Store: wire.Store(st)}, nil
}

// RiskReport returns a month's risk flags per store and rule.
func (h *Handler) RiskReport(ctx context.Context, req *authorityv1.RiskReportRequest) (*authorityv1.RiskReportResponse, error) {
	if _, err := caller(ctx); err != nil {
		return nil, err
	}
	f := wire.NewFields()
	month := f.Month("month", req.GetMonth())
	if err := f.Err(); err != nil {
		return nil, err
	}
	rows, err := risk.Report(ctx, db.Scope(h.pool), month)
	if err != nil {
		return nil, err
	}
	resp := &authorityv1.RiskReportResponse{Month: settlement.FormatMonth(month)}
	for _, r := range rows {
		resp.Rows = append(resp.Rows, wire.RiskReportRow(r))
	}
	return resp, nil
}

// GetFormTrail returns a form, its lines, its journal entries and its payout: the
// drill-down of a reconciliation exception. Read from the primary: an official opens it
// to act on what it says now.
func (h *Handler) GetFormTrail(ctx context.Context, req *authorityv1.GetFormTrailRequest) (*authorityv1.GetFormTrailResponse, error) {
	if _, err := caller(ctx); err != nil {
		return nil, err
	}
	f := wire.NewFields()
	number := f.Text("form_number", req.GetFormNumber(), 32, false)
	if err := f.Err(); err != nil {
		return nil, err
	}
	t, err := report.FormTrail(ctx, db.Scope(h.pool), number)
	if errors.Is(err, report.ErrNoForm) {
		return nil, fault.New(fault.NotFound, "NO_SUCH_FORM", "no form has this number")
	}
	if err != nil {
		return nil, err
	}
	resp := &authorityv1.GetFormTrailResponse{Number: t.Number, StoreCode: t.Store, State: t.State, Nationality: t.Nationality,
		DocumentMasked: t.DocMasked, PurchaseDate: t.PurchaseDate.Format(time.DateOnly), IssuedAt: timestamppb.New(t.IssuedAt),
		EligibleAmount: money.Format(t.Eligible), GrossRefund: money.Format(t.Gross)}
	if t.VerifiedPort != nil {
		resp.VerifiedPort = *t.VerifiedPort
	}
	if t.VerifiedAt != nil {
		resp.VerifiedAt = timestamppb.New(*t.VerifiedAt)
	}
	if t.ConfirmedGross != nil {
		resp.ConfirmedGrossRefund = money.Format(*t.ConfirmedGross)
	}
	for _, l := range t.Lines {
		resp.Lines = append(resp.Lines, &authorityv1.TrailLine{LineNo: l.LineNo, Description: l.Description, Quantity: l.Quantity,
			ConfirmedQuantity: l.ConfirmedQty, Amount: money.Format(l.Amount), VatRate: l.VATRate.String(), RefundRate: l.RefundRate.String(),
			InvoiceNumber: l.InvoiceNumber})
	}
	for _, e := range t.Entries {
		resp.Entries = append(resp.Entries, &authorityv1.TrailEntry{TxnId: e.TxnID, Kind: e.Kind, EffectiveDate: e.EffectiveDate.Format(time.DateOnly),
			Account: e.Account, Side: e.Side, Amount: money.Format(e.Amount), Pending: e.Pending, Seq: e.Seq})
	}
	if p := t.Payout; p != nil {
		resp.Payout = &authorityv1.TrailPayout{PayoutId: p.ID, DeskCode: p.Desk, AgencyCode: p.Agency, Method: p.Method,
			PaidDate: p.PaidDate.Format(time.DateOnly), GrossRefund: money.Format(p.Gross), Fee: money.Format(p.Fee), NetRefund: money.Format(p.Net),
			FormGrossRefund: money.Format(p.FormGross), FormFee: money.Format(p.FormFee), FormNetRefund: money.Format(p.FormNet)}
	}
	return resp, nil
}

// GetPayoutTrail returns a payout, its forms and their rows in it, the entries of its
// journal transaction and the declarations it is in: the drill-down of a payout's
// reconciliation exception. Read from the primary, as GetFormTrail is.
func (h *Handler) GetPayoutTrail(ctx context.Context, req *authorityv1.GetPayoutTrailRequest) (*authorityv1.GetPayoutTrailResponse, error) {
	if _, err := caller(ctx); err != nil {
		return nil, err
	}
	f := wire.NewFields()
	id := f.UUID("payout_id", req.GetPayoutId())
	if err := f.Err(); err != nil {
		return nil, err
	}
	t, err := report.PayoutTrailOf(ctx, db.Scope(h.pool), id)
	if errors.Is(err, report.ErrNoPayout) {
		return nil, fault.Field(fault.NotFound, "NO_SUCH_PAYOUT", "payout_id", "no payout has this id")
	}
	if err != nil {
		return nil, err
	}
	resp := &authorityv1.GetPayoutTrailResponse{PayoutId: t.ID, DeskCode: t.Desk, AgencyCode: t.Agency, Cashier: t.Cashier, Method: t.Method,
		PaidAt: timestamppb.New(t.PaidAt), PaidDate: t.PaidDate.Format(time.DateOnly), FeeRate: t.FeeRate.String(),
		GrossRefund: money.Format(t.Gross), Fee: money.Format(t.Fee), NetRefund: money.Format(t.Net),
		FormsGrossRefund: money.Format(t.FormsGross), FormsFee: money.Format(t.FormsFee), FormsNetRefund: money.Format(t.FormsNet)}
	if t.Port != nil {
		resp.PortCode = *t.Port
	}
	for _, pf := range t.Forms {
		out := &authorityv1.PayoutTrailForm{Number: pf.Number, StoreCode: pf.Store, State: pf.State, EligibleAmount: money.Format(pf.Eligible),
			GrossRefund: money.Format(pf.Gross), Fee: money.Format(pf.Fee), NetRefund: money.Format(pf.Net)}
		if pf.ConfirmedGross != nil {
			out.ConfirmedGrossRefund = money.Format(*pf.ConfirmedGross)
		}
		resp.Forms = append(resp.Forms, out)
	}
	for _, e := range t.Entries {
		resp.Entries = append(resp.Entries, &authorityv1.TrailEntry{TxnId: e.TxnID, Kind: e.Kind, EffectiveDate: e.EffectiveDate.Format(time.DateOnly),
			Account: e.Account, Side: e.Side, Amount: money.Format(e.Amount), Pending: e.Pending, Seq: e.Seq})
	}
	for _, d := range t.Declarations {
		st, _ := wire.DeclarationStatusOf(d.Status)
		resp.Declarations = append(resp.Declarations, &authorityv1.PayoutTrailDeclaration{DeclarationId: d.ID, AgencyCode: d.Agency,
			Month: settlement.FormatMonth(d.Month), Status: st})
	}
	return resp, nil
}

// SetStoreGrade changes a store's tax credit grade, with a reason; it takes effect at
// once (registry.SetGrade).
func (h *Handler) SetStoreGrade(ctx context.Context, req *authorityv1.SetStoreGradeRequest) (*authorityv1.SetStoreGradeResponse, error) {
	f := wire.NewFields()
	key, err := keyOf(ctx, f, req)
	if err != nil {
		return nil, err
	}
	if !registry.IsGrade(req.GetCreditGrade()) {
		f.Add("credit_grade", "must be A, B or M")
	}
	reason := f.Reason("reason", req.GetReason())
	if strings.TrimSpace(reason) == "" {
		f.Add("reason", "is required: why the grade changes")
	}
	if err := f.Err(); err != nil {
		return nil, err
	}
	st, effective, err := h.registry.SetGrade(ctx, key, req.GetCode(), req.GetCreditGrade(), reason)
	if err != nil {
		return nil, err
	}
	return &authorityv1.SetStoreGradeResponse{Store: wire.Store(st), EffectiveDate: effective.Format(time.DateOnly)}, nil
}
