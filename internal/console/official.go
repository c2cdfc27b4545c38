package console

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"
	"google.golang.org/protobuf/types/known/durationpb"

	authorityv1 "taxrefund/api/taxrefund/authority/v1"
	settlementv1 "taxrefund/api/taxrefund/settlement/v1"
	"taxrefund/internal/refund"
)

const (
	mReport    = "/taxrefund.authority.v1.AuthorityService/MonthlyReport"
	mReconcile = "/taxrefund.authority.v1.AuthorityService/Reconcile"
	mListDecl  = "/taxrefund.authority.v1.AuthorityService/ListDeclarations"
	mApprove   = "/taxrefund.authority.v1.AuthorityService/ApproveDeclaration"
	mReturn    = "/taxrefund.authority.v1.AuthorityService/ReturnDeclaration"
	mStores    = "/taxrefund.authority.v1.AuthorityService/ListStores"
	mTrend     = "/taxrefund.authority.v1.AuthorityService/MonthlyTrend"
	mTrail     = "/taxrefund.authority.v1.AuthorityService/GetFormTrail"
)

// monthExceptions is how many exceptions of each kind the month's page lists (the
// reconciliation's summary: each kind is counted in full).
const monthExceptions = 5

// opens says where an exception of each kind opens, by its subject: a form's trail, a
// payout's trail or the declaration. The subject is posted, never put in a URL.
var opens = map[string]opening{
	"CONFIRMED_UNPAID":          formTrail,
	"PAID_NOT_CONFIRMED":        formTrail,
	"VOIDED_AFTER_CONFIRMATION": formTrail,
	"AMOUNT_MISMATCH":           formTrail,
	"PAYOUT_TOTAL_MISMATCH":     payoutTrail,
	"UNDECLARED_PAYOUT":         payoutTrail,
	"DECLARATION_MISMATCH":      declarationView,
}

// opening is a page an exception's subject opens: the form's action and the field the
// subject is posted in.
type opening struct{ Action, Field string }

var (
	formTrail       = opening{Action: "/official/trail", Field: "form_number"}
	payoutTrail     = opening{Action: "/official/payout-trail", Field: "payout_id"}
	declarationView = opening{Action: "/official/declaration", Field: "declaration_id"}
)

// exceptionKind is one kind of exception of the month: its count and the first few.
type exceptionKind struct {
	Kind  string
	Count int64
	// Shown is how many of Count are listed.
	Shown int
	Rows  []exceptionRow
}

type exceptionRow struct {
	Subject, Reason string
	// Opens is where the subject opens (POST, the subject in the body); nil: nowhere.
	Opens *opening
}

// monthTotals are a month's figures over every form.
type monthTotals struct {
	Issued, Verified, Refunded, Voided, Expired int64
	IssuedGross, PaidGross, PaidNet             decimal.Decimal
}

// dimTable is one dimension of the month.
type dimTable struct {
	Key  string // text key of the title
	Rows []*authorityv1.ReportRow
}

type officialContent struct {
	Month      string
	Prev, Next string
	Totals     monthTotals
	Dims       []dimTable
	Trend      template.HTML
	Exceptions int64
	// Kinds are the kinds of exception the month has (none: an empty list).
	Kinds     []exceptionKind
	ChainSeq  int64
	ChainHash string
	// AsOf is when the figures were read, "15:04:05" in Shanghai, when they are not of
	// this view: from the report cache or a replica ("" otherwise).
	AsOf string
}

// totals sums the block rows: every form belongs to exactly one block.
func totals(rows []*authorityv1.ReportRow) monthTotals {
	var t monthTotals
	for _, r := range rows {
		if r.GetDimension() != "block" {
			continue
		}
		t.Issued += r.GetFormsIssued()
		t.Voided += r.GetFormsVoided()
		t.Expired += r.GetFormsExpired()
		t.Refunded += r.GetFormsPaid()
		t.IssuedGross = t.IssuedGross.Add(dec(r.GetGrossRefund()))
		t.PaidGross = t.PaidGross.Add(dec(r.GetPaidGross()))
		t.PaidNet = t.PaidNet.Add(dec(r.GetPaidNet()))
	}
	return t
}

func dec(s string) decimal.Decimal {
	d, err := decimal.NewFromString(s)
	if err != nil {
		return decimal.Zero
	}
	return d
}

func currentMonth(now time.Time) string { return now.In(refund.Shanghai).Format("2006-01") }

func (c *Console) officialPage(w http.ResponseWriter, r *http.Request, s *session) {
	p := c.pageFor(s, "/official", "nav.official")
	// ?fresh=1 (the page's "recompute now") asks for figures computed now.
	maxAge := c.d.ReportMaxAge
	if r.URL.Query().Get("fresh") == "1" {
		maxAge = 0
	}
	content, code, errText := c.monthContent(r.Context(), s, r.URL.Query().Get("month"), maxAge)
	p.Content, p.Error = content, errText
	c.render(w, r, code, "official", p)
}

// monthContent gathers the month's figures (month "YYYY-MM"; otherwise the current one),
// at most maxAge old (0: computed now): the page's status and the text of a refused call,
// if any.
func (c *Console) monthContent(ctx context.Context, s *session, month string, maxAge time.Duration) (officialContent, int, string) {
	m, err := time.ParseInLocation("2006-01", month, refund.Shanghai)
	if err != nil {
		month = currentMonth(c.d.Now())
		m, _ = time.ParseInLocation("2006-01", month, refund.Shanghai)
	}
	content := officialContent{Month: month, Prev: m.AddDate(0, -1, 0).Format("2006-01"), Next: m.AddDate(0, 1, 0).Format("2006-01")}
	var age *durationpb.Duration
	if maxAge > 0 {
		age = durationpb.New(maxAge)
	}
	rep, err := call(ctx, c, s, mReport, &authorityv1.MonthlyReportRequest{Month: month, MaxAge: age}, c.d.Authority.MonthlyReport)
	if err != nil {
		return content, http.StatusUnprocessableEntity, errText(err)
	}
	problem := ""
	var asOf time.Time
	stated := func(src *authorityv1.ReadSource) {
		if (src.GetCached() || src.GetReplica()) && (asOf.IsZero() || src.GetAsOf().AsTime().Before(asOf)) {
			asOf = src.GetAsOf().AsTime()
		}
	}
	stated(rep.GetReadSource())
	content.Totals = totals(rep.GetRows())
	content.ChainSeq, content.ChainHash = rep.GetJournalHead().GetSeq(), rep.GetJournalHead().GetHash()
	for _, dim := range []string{"block", "port", "agency", "nationality"} {
		t := dimTable{Key: "dim." + dim}
		for _, row := range rep.GetRows() {
			if row.GetDimension() == dim {
				t.Rows = append(t.Rows, row)
			}
		}
		sort.SliceStable(t.Rows, func(i, j int) bool { return t.Rows[i].GetFormsIssued() > t.Rows[j].GetFormsIssued() })
		if dim == "nationality" && len(t.Rows) > 10 {
			t.Rows = t.Rows[:10]
		}
		content.Dims = append(content.Dims, t)
	}
	// The summary only: the whole ledger's trial balance and invariants are not this page's
	// (BENCH.md, "Console").
	rec, err := call(ctx, c, s, mReconcile, &authorityv1.ReconcileRequest{Month: month, SummaryLimit: monthExceptions, MaxAge: age}, c.d.Authority.Reconcile)
	if err != nil {
		problem = errText(err)
	} else {
		stated(rec.GetReadSource())
		for _, sm := range rec.GetSummary() {
			if sm.GetSide() == "CONFIRMED" {
				content.Totals.Verified = sm.GetForms()
			}
		}
		content.Exceptions, content.Kinds = exceptionKinds(rec)
	}
	trend, err := c.trend(ctx, s, m)
	if err != nil && problem == "" {
		problem = errText(err)
	}
	content.Trend = trend
	if !asOf.IsZero() {
		// The older of the two answers' figures: the page is at least that recent.
		content.AsOf = asOf.In(refund.Shanghai).Format(time.TimeOnly)
	}
	return content, http.StatusOK, problem
}

// exceptionKinds groups the reconciliation's exceptions by kind, with each kind's count.
func exceptionKinds(rec *authorityv1.ReconcileResponse) (int64, []exceptionKind) {
	var total int64
	var kinds []exceptionKind
	for _, kc := range rec.GetExceptionCounts() {
		total += kc.GetCount()
		if kc.GetCount() == 0 {
			continue
		}
		k := exceptionKind{Kind: kc.GetKind(), Count: kc.GetCount()}
		for _, e := range rec.GetExceptions() {
			if e.GetKind() == k.Kind {
				row := exceptionRow{Subject: e.GetSubject(), Reason: e.GetReason()}
				if o, ok := opens[k.Kind]; ok {
					row.Opens = &o
				}
				k.Rows = append(k.Rows, row)
			}
		}
		k.Shown = len(k.Rows)
		kinds = append(kinds, k)
	}
	return total, kinds
}

// trend draws the refunds paid (G') of the twelve months ending with m as an SVG bar chart.
func (c *Console) trend(ctx context.Context, s *session, m time.Time) (template.HTML, error) {
	type bar struct {
		month string
		paid  decimal.Decimal
	}
	// One call, one read of the year's payouts (not twelve monthly reports).
	resp, err := call(ctx, c, s, mTrend, &authorityv1.MonthlyTrendRequest{FromMonth: m.AddDate(0, -11, 0).Format("2006-01"), ToMonth: m.Format("2006-01")},
		c.d.Authority.MonthlyTrend)
	if err != nil {
		return "", err
	}
	bars := make([]bar, 0, 12)
	highest := decimal.Zero
	for _, mt := range resp.GetMonths() {
		bars = append(bars, bar{month: mt.GetMonth(), paid: dec(mt.GetPaidGross())})
		highest = decimal.Max(highest, bars[len(bars)-1].paid)
	}
	const width, height, top, bottom, left = 720, 240, 24, 40, 8
	// Drawing coordinates in decimals too, printed to a tenth of a pixel: the package holds
	// no float anywhere near an amount.
	n := decimal.NewFromInt
	slot := n(width - 2*left).Div(n(12))
	base := n(height - bottom)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="trend" xmlns="http://www.w3.org/2000/svg">`, width, height)
	fmt.Fprintf(&b, `<line class="axis" x1="%d" y1="%d" x2="%d" y2="%d"/>`, left, height-bottom, width-left, height-bottom)
	for i, br := range bars {
		h := decimal.Zero
		if highest.IsPositive() {
			h = br.paid.Mul(n(height - top - bottom)).Div(highest)
		}
		x := n(left).Add(n(int64(i)).Mul(slot)).Add(slot.Mul(decimal.RequireFromString("0.15")))
		mid := x.Add(slot.Mul(decimal.RequireFromString("0.35")))
		fmt.Fprintf(&b, `<rect class="bar" x="%s" y="%s" width="%s" height="%s"><title>%s: %s</title></rect>`,
			x.StringFixed(1), base.Sub(h).StringFixed(1), slot.Mul(decimal.RequireFromString("0.7")).StringFixed(1), h.StringFixed(1), br.month, cnyDec(br.paid))
		fmt.Fprintf(&b, `<text class="label" x="%s" y="%d">%s</text>`, mid.StringFixed(1), height-bottom+16, br.month[2:])
		if br.paid.IsPositive() {
			fmt.Fprintf(&b, `<text class="value" x="%s" y="%s">%s</text>`, mid.StringFixed(1), base.Sub(h).Sub(n(4)).StringFixed(1), cnyDec(br.paid.Round(0)))
		}
	}
	b.WriteString(`</svg>`)
	// Every interpolated value above is a number or a formatted amount or month: no text
	// from a request reaches the markup.
	return template.HTML(b.String()), nil
}

type declView struct {
	*settlementv1.Declaration
	Status string
	// RequestID is the approval's, ReturnRequestID the return's: two decisions, two ids.
	RequestID, ReturnRequestID string
}

type declContent struct {
	Declarations []declView
}

func (c *Console) declarationsPage(w http.ResponseWriter, r *http.Request, s *session) {
	c.showDeclarations(w, r, s, c.pageFor(s, "/official/declarations", "nav.declaration"), http.StatusOK)
}

func (c *Console) showDeclarations(w http.ResponseWriter, r *http.Request, s *session, p page, code int) {
	resp, err := call(r.Context(), c, s, mListDecl, &authorityv1.ListDeclarationsRequest{}, c.d.Authority.ListDeclarations)
	if err != nil {
		p.Error, code = errText(err), http.StatusUnprocessableEntity
	}
	var content declContent
	for _, d := range resp.GetDeclarations() {
		content.Declarations = append(content.Declarations, declView{Declaration: d,
			Status: strings.TrimPrefix(d.GetStatus().String(), "DECLARATION_STATUS_"), RequestID: uuid.NewString(), ReturnRequestID: uuid.NewString()})
	}
	p.Content = content
	c.render(w, r, code, "declarations", p)
}

func (c *Console) declarationsPost(w http.ResponseWriter, r *http.Request, s *session) {
	p := c.pageFor(s, "/official/declarations", "nav.declaration")
	code := http.StatusOK
	id, rid := r.PostFormValue("declaration_id"), r.PostFormValue("request_id")
	var err error
	switch r.PostFormValue("action") {
	case "approve":
		_, err = call(r.Context(), c, s, mApprove, &authorityv1.ApproveDeclarationRequest{RequestId: rid, DeclarationId: id}, c.d.Authority.ApproveDeclaration)
		p.Notice = "decl.approved"
	case "return":
		var reasons []string
		if reason := strings.TrimSpace(r.PostFormValue("reason")); reason != "" {
			reasons = []string{reason}
		}
		_, err = call(r.Context(), c, s, mReturn, &authorityv1.ReturnDeclarationRequest{RequestId: rid, DeclarationId: id, Reasons: reasons}, c.d.Authority.ReturnDeclaration)
		p.Notice = "decl.returned"
	default:
		err = fmt.Errorf("unknown action")
	}
	if err != nil {
		p.Notice, p.Error, code = "", errText(err), http.StatusUnprocessableEntity
	}
	c.showDeclarations(w, r, s, p, code)
}

type storesContent struct {
	Query  string
	Stores []storeView
	// RequestID is the register form's.
	RequestID string
}

type storeView struct {
	*authorityv1.Store
	Status string
	// RequestID is the status change's, GradeRequestID the grade change's.
	RequestID, GradeRequestID string
}

func (c *Console) storesPage(w http.ResponseWriter, r *http.Request, s *session) {
	c.showStores(w, r, s, c.pageFor(s, "/official/stores", "nav.stores"), http.StatusOK, strings.TrimSpace(r.URL.Query().Get("q")))
}

func (c *Console) showStores(w http.ResponseWriter, r *http.Request, s *session, p page, code int, q string) {
	resp, err := call(r.Context(), c, s, mStores, &authorityv1.ListStoresRequest{}, c.d.Authority.ListStores)
	if err != nil {
		p.Error, code = errText(err), http.StatusUnprocessableEntity
	}
	content := storesContent{Query: q, RequestID: uuid.NewString()}
	for _, st := range resp.GetStores() {
		if q == "" || strings.Contains(strings.ToLower(st.GetCode()+" "+st.GetName()+" "+st.GetCreditCode()), strings.ToLower(q)) {
			content.Stores = append(content.Stores, storeView{Store: st, Status: trimStore(st.GetStatus().String()), RequestID: uuid.NewString(), GradeRequestID: uuid.NewString()})
		}
	}
	p.Content = content
	c.render(w, r, code, "stores", p)
}
