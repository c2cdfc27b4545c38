package risk_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	authorityv1 "taxrefund/api/taxrefund/authority/v1"
	deskv1 "taxrefund/api/taxrefund/desk/v1"
	formv1 "taxrefund/api/taxrefund/form/v1"
	storev1 "taxrefund/api/taxrefund/store/v1"
	"taxrefund/internal/auth"
	"taxrefund/internal/authority"
	"taxrefund/internal/dbtest"
	"taxrefund/internal/desk"
	"taxrefund/internal/fault"
	"taxrefund/internal/forms"
	"taxrefund/internal/ledger"
	"taxrefund/internal/params"
	"taxrefund/internal/registry"
	"taxrefund/internal/risk"
	"taxrefund/internal/store"
)

// The rules end to end through the gRPC handlers on PostgreSQL: a store issues, customs
// find, inspect and confirm, the authority reviews stores and reads the month's figures.

// t0 is 2026-03-10 10:00 in Shanghai.
var t0 = time.Date(2026, 3, 10, 2, 0, 0, 0, time.UTC)

type env struct {
	t         testing.TB
	ctx       context.Context
	pool      *pgxpool.Pool
	clock     *dbtest.Clock
	store     *store.Handler
	desk      *desk.Handler
	authority *authority.Handler
	seq       atomic.Int64
}

func newEnv(t *testing.T) *env { return newEnvB(t) }

func newEnvB(t testing.TB) *env {
	t.Helper()
	pool := dbtest.NewPool(t)
	dbtest.Registry(t, pool)
	// The seeded defaults (seeds/demo.sql), and from 2026-03-11 no minimum age.
	if _, err := pool.Exec(context.Background(), `INSERT INTO parameters (name, scope, valid_from, value) VALUES
		('risk_velocity_days', '', '2015-01-01', 7), ('risk_velocity_forms', '', '2015-01-01', 3),
		('risk_velocity_amount', '', '2015-01-01', 50000.00), ('risk_split_margin', '', '2015-01-01', 50.00),
		('risk_split_forms', '', '2015-01-01', 2), ('risk_serial_threshold', '', '2015-01-01', 50000.00),
		('risk_stay_margin_days', '', '2015-01-01', 7), ('risk_min_age_minutes', '', '2015-01-01', 60),
		('risk_min_age_minutes', '', '2026-03-11', 0)`); err != nil {
		t.Fatal(err)
	}
	clock := dbtest.NewClock(t0)
	par := params.NewCache(pool, 0)
	f := forms.New(forms.Deps{Pool: pool, Ledger: ledger.NewStore(), Keys: dbtest.Keyring(t), Params: par, Now: clock.Now, Log: slog.New(slog.DiscardHandler)})
	return &env{
		t: t, ctx: context.Background(), pool: pool, clock: clock,
		store:     store.New(f),
		desk:      desk.New(f, nil, nil).WithRisk(risk.New(pool, par, clock.Now)),
		authority: authority.New(authority.Deps{Expirer: f, Pool: pool, Registry: registry.New(pool, clock.Now), Now: clock.Now}),
	}
}

func (e *env) as(p auth.Party) context.Context { return auth.NewContext(e.ctx, p) }

func (e *env) customs() context.Context {
	return e.as(auth.Party{Role: auth.RoleCustoms, Port: "CKG", Officer: "officer-7", URI: "taxrefund://customs/CKG/officer-7"})
}

func (e *env) official() context.Context {
	return e.as(auth.Party{Role: auth.RoleAuthority, Office: "CQ", URI: "taxrefund://authority/CQ"})
}

func passportOf(n string) *formv1.Document {
	return &formv1.Document{Type: formv1.DocumentType_DOCUMENT_TYPE_PASSPORT, Number: n, IssuingCountry: "FR"}
}

type line struct{ amount, serial string }

// tryIssue issues a form at storeCode to document doc, one general line per amount, the
// traveller having entered entryDays before today.
func (e *env) tryIssue(storeCode, doc string, entryDays int, lines ...line) (*formv1.Form, error) {
	today := e.clock.Now().In(time.FixedZone("CST", 8*3600))
	inv := fmt.Sprintf("INV-%06d", e.seq.Add(1))
	req := &storev1.IssueFormRequest{
		RequestId: uuid.NewString(),
		Traveller: &storev1.Traveller{Document: passportOf(doc), DocumentExpiryDate: "2031-01-01", Nationality: "FR",
			LastEntryDate: today.AddDate(0, 0, -entryDays).Format(time.DateOnly)},
		Invoices: []*formv1.Invoice{{Number: inv, Date: today.Format(time.DateOnly)}},
	}
	for _, l := range lines {
		req.Lines = append(req.Lines, &storev1.LineInput{Description: "goods", Category: formv1.GoodsCategory_GOODS_CATEGORY_GENERAL,
			VatRate: "0.13", Quantity: 1, Amount: l.amount, InvoiceNumber: inv, SerialNumber: l.serial})
	}
	p := auth.Party{Role: auth.RoleStore, Store: storeCode, URI: "taxrefund://store/" + storeCode}
	resp, err := e.store.IssueForm(e.as(p), req)
	if err != nil {
		return nil, err
	}
	return resp.GetForm(), nil
}

func (e *env) issue(storeCode, doc string, lines ...line) *formv1.Form {
	e.t.Helper()
	if len(lines) == 0 {
		lines = []line{{amount: "1000.00"}}
	}
	f, err := e.tryIssue(storeCode, doc, 10, lines...)
	if err != nil {
		e.t.Fatalf("issue: %v", err)
	}
	return f
}

func (e *env) find(number string) *deskv1.RiskAssessment {
	e.t.Helper()
	resp, err := e.desk.FindForms(e.customs(), &deskv1.FindFormsRequest{Query: &deskv1.FindFormsRequest_FormNumber{FormNumber: number}})
	if err != nil {
		e.t.Fatalf("find %s: %v", number, err)
	}
	if len(resp.GetRisks()) != 1 {
		e.t.Fatalf("find %s: %d assessments, want 1", number, len(resp.GetRisks()))
	}
	return resp.GetRisks()[0]
}

// verify confirms every line of f (units each, serials by line number).
func (e *env) verify(f *formv1.Form, units int32, serials map[int32]string) (*deskv1.VerifyExportResponse, error) {
	req := &deskv1.VerifyExportRequest{RequestId: uuid.NewString(), FormNumber: f.GetNumber(), PresentedDocument: passportOf(docOf[f.GetNumber()])}
	for _, l := range f.GetLines() {
		req.Lines = append(req.Lines, &deskv1.LineConfirmation{LineNo: l.GetLineNo(), ConfirmedQuantity: units, SerialNumber: serials[l.GetLineNo()]})
	}
	return e.desk.VerifyExport(e.customs(), req)
}

var docOf = map[string]string{}

func (e *env) issueDoc(storeCode, doc string, lines ...line) *formv1.Form {
	e.t.Helper()
	f := e.issue(storeCode, doc, lines...)
	docOf[f.GetNumber()] = doc
	return f
}

func (e *env) inspect(number string, result deskv1.InspectionResult, rid string) (*deskv1.Inspection, error) {
	resp, err := e.desk.RecordInspection(e.customs(), &deskv1.RecordInspectionRequest{RequestId: rid, FormNumber: number, Result: result, Note: "goods seen"})
	return resp.GetInspection(), err
}

func (e *env) count(sql string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(e.ctx, sql, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func codes(a *deskv1.RiskAssessment) string {
	var out []string
	for _, r := range a.GetReasons() {
		out = append(out, r.GetCode())
	}
	return strings.Join(out, ",")
}

// A form with no rule against it flows as before the rules: GREEN, confirmed without an
// inspection, and nothing recorded of risk.
func TestGreenFormFlowsAsBefore(t *testing.T) {
	e := newEnv(t)
	f := e.issueDoc("S-JFB-1", "G1000001")
	e.clock.Set(t0.Add(time.Hour))
	a := e.find(f.GetNumber())
	if a.GetLevel() != deskv1.RiskLevel_RISK_LEVEL_GREEN || len(a.GetReasons()) != 0 {
		t.Fatalf("assessment %v, want GREEN without reasons", a)
	}
	resp, err := e.verify(f, 1, nil)
	if err != nil {
		t.Fatalf("verify a GREEN form: %v", err)
	}
	if resp.GetForm().GetState() != formv1.FormState_FORM_STATE_VERIFIED || resp.GetRisk().GetLevel() != deskv1.RiskLevel_RISK_LEVEL_GREEN {
		t.Fatalf("verify: %v %v, want VERIFIED and GREEN", resp.GetForm().GetState(), resp.GetRisk())
	}
	if n := e.count(`SELECT (SELECT count(*) FROM inspections) + (SELECT count(*) FROM risk_flags)`); n != 0 {
		t.Fatalf("%d inspection or flag rows for a GREEN form, want 0", n)
	}
}

// A RED form (confirmed 59m59s after issuance) is refused until inspected; the inspection
// is idempotent, audited and flags the form once; then the export is confirmed.
func TestRedFormWaitsForAPassedInspection(t *testing.T) {
	e := newEnv(t)
	f := e.issueDoc("S-JFB-1", "R1000001")
	e.clock.Set(t0.Add(time.Hour - time.Second))
	if a := e.find(f.GetNumber()); a.GetLevel() != deskv1.RiskLevel_RISK_LEVEL_RED || codes(a) != risk.RuleRecent {
		t.Fatalf("assessment %v, want RED issued_recently", a)
	}
	_, err := e.verify(f, 1, nil)
	fe := dbtest.WantFault(t, err, fault.Precondition, "INSPECTION_REQUIRED")
	if !strings.Contains(fe.Message, "inspection required: issued recently: 59m59s") {
		t.Fatalf("refusal %q does not give the reason with its figures", fe.Message)
	}
	if n := e.count(`SELECT count(*) FROM forms WHERE number = $1 AND state = 'ISSUED'`, f.GetNumber()); n != 1 {
		t.Fatal("the refused form is no longer ISSUED")
	}
	if n := e.count(`SELECT count(*) FROM risk_flags WHERE rule = 'issued_recently'`); n != 1 {
		t.Fatalf("%d flags after the refusal, want 1", n)
	}

	rid := uuid.NewString()
	first, err := e.inspect(f.GetNumber(), deskv1.InspectionResult_INSPECTION_RESULT_PASSED, rid)
	if err != nil {
		t.Fatalf("inspect: %v", err)
	}
	again, err := e.inspect(f.GetNumber(), deskv1.InspectionResult_INSPECTION_RESULT_PASSED, rid)
	if err != nil || again.GetInspectionId() != first.GetInspectionId() {
		t.Fatalf("retry: %v %v, want the first inspection %s", again, err, first.GetInspectionId())
	}
	if first.GetPort() != "CKG" || first.GetOfficer() != "officer-7" || strings.Join(first.GetRules(), ",") != risk.RuleRecent {
		t.Fatalf("inspection %v, want at CKG by officer-7 for issued_recently", first)
	}
	if n := e.count(`SELECT count(*) FROM inspections`); n != 1 {
		t.Fatalf("%d inspections after a retry, want 1", n)
	}
	if n := e.count(`SELECT count(*) FROM audit_events WHERE action = 'FORM_INSPECTED' AND object = $1`, f.GetNumber()); n != 1 {
		t.Fatalf("%d FORM_INSPECTED audit events, want 1", n)
	}
	if n := e.count(`SELECT count(*) FROM risk_flags`); n != 1 {
		t.Fatalf("%d flags after the inspection, want still 1", n)
	}
	if a := e.find(f.GetNumber()); a.GetInspection() != deskv1.InspectionResult_INSPECTION_RESULT_PASSED {
		t.Fatalf("assessment %v, want the passed inspection shown", a)
	}
	resp, err := e.verify(f, 1, nil)
	if err != nil || resp.GetForm().GetState() != formv1.FormState_FORM_STATE_VERIFIED {
		t.Fatalf("verify after a passed inspection: %v %v", resp, err)
	}
	if resp.GetRisk().GetLevel() != deskv1.RiskLevel_RISK_LEVEL_RED {
		t.Fatalf("the confirmation's assessment %v, want the RED it was checked against", resp.GetRisk())
	}
}

// A failed inspection refuses the export for good; rejecting it (0 units) is allowed.
func TestFailedInspectionRefusesExport(t *testing.T) {
	e := newEnv(t)
	f := e.issueDoc("S-JFB-1", "F1000001")
	e.clock.Set(t0.Add(time.Minute))
	if _, err := e.inspect(f.GetNumber(), deskv1.InspectionResult_INSPECTION_RESULT_FAILED, uuid.NewString()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.inspect(f.GetNumber(), deskv1.InspectionResult_INSPECTION_RESULT_PASSED, uuid.NewString()); err != nil {
		t.Fatal(err)
	}
	_, err := e.verify(f, 1, nil)
	dbtest.WantFault(t, err, fault.Precondition, "INSPECTION_FAILED")
	resp, err := e.verify(f, 0, nil)
	if err != nil || resp.GetForm().GetState() != formv1.FormState_FORM_STATE_REJECTED {
		t.Fatalf("rejecting a failed form: %v %v, want REJECTED", resp, err)
	}
	_, err = e.inspect(f.GetNumber(), deskv1.InspectionResult_INSPECTION_RESULT_PASSED, uuid.NewString())
	dbtest.WantFault(t, err, fault.Precondition, "FORM_STATE")
}

// High value: a line of 50,000.00 or more needs its serial number at issuance, and customs
// confirm it.
func TestSerialNumberFromIssuanceToExport(t *testing.T) {
	e := newEnv(t)
	_, err := e.tryIssue("S-JFB-1", "H1000001", 10, line{amount: "100.00"}, line{amount: "50000.00"})
	dbtest.WantFault(t, err, fault.Invalid, "SERIAL_NUMBER_REQUIRED", "lines[1].serial_number")
	_, err = e.tryIssue("S-JFB-1", "H1000001", 10, line{amount: "50000.00", serial: "-bad"})
	dbtest.WantFault(t, err, fault.Invalid, "INVALID_REQUEST", "lines[0].serial_number")
	below := e.issueDoc("S-JFB-2", "H1000002", line{amount: "49999.99"})
	f := e.issueDoc("S-JFB-1", "H1000001", line{amount: "0.01"}, line{amount: "49999.99"}, line{amount: "50000.00", serial: "C02XK1ABJG5H"})
	if n := e.count(`SELECT count(*) FROM form_lines l JOIN forms f ON f.id = l.form_id
		WHERE f.number = $1 AND l.line_no = 3 AND l.serial_number = 'C02XK1ABJG5H'`, f.GetNumber()); n != 1 {
		t.Fatal("the serial number is not stored on line 3")
	}

	e.clock.Set(t0.Add(2 * time.Hour))
	if a := e.find(below.GetNumber()); a.GetLevel() != deskv1.RiskLevel_RISK_LEVEL_GREEN {
		t.Fatalf("49999.99: %v, want GREEN", a)
	}
	a := e.find(f.GetNumber())
	// 100,000.00 on one form is above the velocity amount too.
	if codes(a) != risk.RuleVelocity+","+risk.RuleHighValue || fmt.Sprint(a.GetSerialLines()) != "[3]" {
		t.Fatalf("50000.00: %v, want RED velocity, high_value with serial line 3 (not line 2 of 49999.99)", a)
	}
	if _, err := e.inspect(f.GetNumber(), deskv1.InspectionResult_INSPECTION_RESULT_PASSED, uuid.NewString()); err != nil {
		t.Fatal(err)
	}
	_, err = e.verify(f, 1, nil)
	dbtest.WantFault(t, err, fault.Precondition, "SERIAL_NOT_CONFIRMED", "lines[line_no=3].serial_number")
	_, err = e.verify(f, 1, map[int32]string{3: "C02XK1ABJG5X"})
	dbtest.WantFault(t, err, fault.Precondition, "SERIAL_NOT_CONFIRMED", "lines[line_no=3].serial_number")
	resp, err := e.verify(f, 1, map[int32]string{3: "c02xk1abjg5h"})
	if err != nil || resp.GetForm().GetState() != formv1.FormState_FORM_STATE_VERIFIED {
		t.Fatalf("verify with the serial: %v %v", resp, err)
	}
}

// Velocity, split purchases and the stay at their boundaries, on the database's facts.
func TestDocumentRulesOnTheDatabase(t *testing.T) {
	e := newEnv(t)
	var three []*formv1.Form
	for _, s := range []string{"S-JFB-1", "S-JFB-2", "S-CXL-1"} {
		three = append(three, e.issueDoc(s, "V1000001"))
	}
	e.clock.Set(t0.Add(2 * time.Hour))
	for _, f := range three {
		if a := e.find(f.GetNumber()); a.GetLevel() != deskv1.RiskLevel_RISK_LEVEL_GREEN {
			t.Fatalf("3 forms within 7 days: %v, want GREEN", a)
		}
	}
	e.clock.Set(t0)
	fourth := e.issueDoc("S-JFB-1", "V1000001")
	e.clock.Set(t0.Add(2 * time.Hour))
	for _, f := range append(three, fourth) {
		a := e.find(f.GetNumber())
		if codes(a) != risk.RuleVelocity || a.GetReasons()[0].GetText() != "velocity: 4 forms within 7 days (limit 3)" {
			t.Fatalf("4 forms within 7 days: %v, want RED velocity", a)
		}
	}
	// A voided form does not count.
	p := auth.Party{Role: auth.RoleStore, Store: "S-JFB-1", URI: "taxrefund://store/S-JFB-1"}
	if _, err := e.store.VoidForm(e.as(p), &storev1.VoidFormRequest{RequestId: uuid.NewString(), FormNumber: fourth.GetNumber(), Reason: "goods returned"}); err != nil {
		t.Fatal(err)
	}
	if a := e.find(three[0].GetNumber()); a.GetLevel() != deskv1.RiskLevel_RISK_LEVEL_GREEN {
		t.Fatalf("after a void: %v, want GREEN", a)
	}

	e.clock.Set(t0)
	a1 := e.issueDoc("S-JFB-2", "P1000001", line{amount: "250.00"})
	a2 := e.issueDoc("S-JFB-2", "P1000001", line{amount: "210.00"})
	b1 := e.issueDoc("S-JFB-1", "P1000002", line{amount: "250.01"})
	b2 := e.issueDoc("S-JFB-1", "P1000002", line{amount: "210.00"})
	e.clock.Set(t0.Add(2 * time.Hour))
	for _, f := range []*formv1.Form{a1, a2} {
		if a := e.find(f.GetNumber()); codes(a) != risk.RuleSplit {
			t.Fatalf("250.00 and 210.00 at one store: %v, want RED split_purchase", a)
		}
	}
	if a := e.find(b1.GetNumber()); a.GetLevel() != deskv1.RiskLevel_RISK_LEVEL_GREEN {
		t.Fatalf("250.01: %v, want GREEN", a)
	}
	if a := e.find(b2.GetNumber()); a.GetLevel() != deskv1.RiskLevel_RISK_LEVEL_GREEN {
		t.Fatalf("210.00 beside 250.01: %v, want GREEN (one form near the minimum)", a)
	}

	e.clock.Set(t0)
	near, err := e.tryIssue("S-JFB-1", "S1000001", 176, line{amount: "1000.00"})
	if err != nil {
		t.Fatal(err)
	}
	far, err := e.tryIssue("S-JFB-1", "S1000002", 175, line{amount: "1000.00"})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Set(t0.Add(2 * time.Hour))
	if a := e.find(near.GetNumber()); codes(a) != risk.RuleStay {
		t.Fatalf("176 days after entry: %v, want RED stay_limit", a)
	}
	if a := e.find(far.GetNumber()); a.GetLevel() != deskv1.RiskLevel_RISK_LEVEL_GREEN {
		t.Fatalf("175 days after entry: %v, want GREEN", a)
	}
}

// The parameter in force on the form's purchase date applies: from 2026-03-11 the
// minimum age is 0.
func TestParameterEffectiveDate(t *testing.T) {
	e := newEnv(t)
	before := e.issueDoc("S-JFB-1", "D1000001")
	e.clock.Set(t0.Add(time.Minute))
	if a := e.find(before.GetNumber()); codes(a) != risk.RuleRecent {
		t.Fatalf("issued 2026-03-10, a minute old: %v, want RED issued_recently", a)
	}
	next := t0.Add(24 * time.Hour)
	e.clock.Set(next)
	after := e.issueDoc("S-JFB-1", "D1000002")
	e.clock.Set(next.Add(time.Minute))
	if a := e.find(after.GetNumber()); a.GetLevel() != deskv1.RiskLevel_RISK_LEVEL_GREEN {
		t.Fatalf("issued 2026-03-11, a minute old: %v, want GREEN", a)
	}
}

// The authority puts a store under review (audited), its forms turn RED, the review
// ends; the month's figures equal the rows.
func TestStoreReviewAndMonthlyFigures(t *testing.T) {
	e := newEnv(t)
	f := e.issueDoc("S-JFB-2", "W1000001")
	g := e.issueDoc("S-JFB-1", "W1000002")
	e.clock.Set(t0.Add(2 * time.Hour))
	review := func(on bool) {
		t.Helper()
		resp, err := e.authority.SetStoreReview(e.official(), &authorityv1.SetStoreReviewRequest{
			RequestId: uuid.NewString(), Code: "S-JFB-2", UnderReview: on, Reason: "complaints about invoices"})
		if err != nil || resp.GetStore().GetUnderReview() != on {
			t.Fatalf("set review %v: %v %v", on, resp, err)
		}
	}
	review(true)
	a := e.find(f.GetNumber())
	if codes(a) != risk.RuleStoreReview || a.GetReasons()[0].GetText() != "store under review: S-JFB-2" {
		t.Fatalf("store under review: %v", a)
	}
	if n := e.count(`SELECT count(*) FROM audit_events WHERE action = 'STORE_UNDER_REVIEW' AND object = 'S-JFB-2'`); n != 1 {
		t.Fatalf("%d audit events of the review, want 1", n)
	}
	_, err := e.verify(f, 1, nil)
	dbtest.WantFault(t, err, fault.Precondition, "INSPECTION_REQUIRED")
	if _, err := e.inspect(f.GetNumber(), deskv1.InspectionResult_INSPECTION_RESULT_FAILED, uuid.NewString()); err != nil {
		t.Fatal(err)
	}
	review(false)
	if a := e.find(f.GetNumber()); a.GetLevel() != deskv1.RiskLevel_RISK_LEVEL_GREEN {
		t.Fatalf("review ended: %v, want GREEN", a)
	}
	// A second rule at another store, inspected and passed.
	e.clock.Set(t0.Add(3 * time.Hour))
	h := e.issueDoc("S-JFB-1", "W1000003")
	if _, err := e.inspect(h.GetNumber(), deskv1.InspectionResult_INSPECTION_RESULT_PASSED, uuid.NewString()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.verify(g, 1, nil); err != nil {
		t.Fatalf("GREEN form at the other store: %v", err)
	}

	resp, err := e.authority.RiskReport(e.official(), &authorityv1.RiskReportRequest{Month: "2026-03"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range resp.GetRows() {
		got = append(got, fmt.Sprintf("%s %s %d %d %d", r.GetStoreCode(), r.GetRule(), r.GetFormsFlagged(), r.GetInspections(), r.GetFailed()))
		want := e.count(`SELECT count(*) FROM risk_flags WHERE store_code = $1 AND rule = $2`, r.GetStoreCode(), r.GetRule())
		if int64(want) != r.GetFormsFlagged() {
			t.Errorf("%s %s: %d flagged, the rows say %d", r.GetStoreCode(), r.GetRule(), r.GetFormsFlagged(), want)
		}
	}
	if strings.Join(got, "; ") != "S-JFB-1 issued_recently 1 1 0; S-JFB-2 store_under_review 1 1 1" {
		t.Fatalf("report %q", got)
	}
	empty, err := e.authority.RiskReport(e.official(), &authorityv1.RiskReportRequest{Month: "2026-04"})
	if err != nil || len(empty.GetRows()) != 0 {
		t.Fatalf("April: %v %v, want no rows", empty, err)
	}
}

// SetParameter takes the rules' names with their bounds.
func TestSetRiskParameters(t *testing.T) {
	e := newEnv(t)
	set := func(name, value string) error {
		_, err := e.authority.SetParameter(e.official(), &authorityv1.SetParameterRequest{RequestId: uuid.NewString(),
			Parameter: &authorityv1.Parameter{Name: name, ValidFrom: "2026-04-01", Value: value, Note: "risk review"}})
		return err
	}
	for name, value := range map[string]string{
		"risk_velocity_days": "14", "risk_velocity_forms": "5", "risk_velocity_amount": "80000.00", "risk_split_margin": "0",
		"risk_split_forms": "3", "risk_serial_threshold": "30000.00", "risk_stay_margin_days": "10", "risk_min_age_minutes": "90",
	} {
		if err := set(name, value); err != nil {
			t.Errorf("%s = %s: %v", name, value, err)
		}
	}
	for name, value := range map[string]string{
		"risk_velocity_days": "91", "risk_velocity_forms": "0", "risk_velocity_amount": "0", "risk_split_margin": "1.001",
		"risk_split_forms": "1", "risk_serial_threshold": "0", "risk_stay_margin_days": "184", "risk_min_age_minutes": "1.5",
	} {
		dbtest.WantFault(t, set(name, value), fault.Invalid, "INVALID_PARAMETER", "parameter.value")
	}
}
