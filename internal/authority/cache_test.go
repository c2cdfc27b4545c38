package authority_test

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	authorityv1 "taxrefund/api/taxrefund/authority/v1"
	"taxrefund/internal/auth"
	"taxrefund/internal/db"
	"taxrefund/internal/fault"
)

// julyIssued is the forms issued in July by the report's block rows.
func julyIssued(r *authorityv1.MonthlyReportResponse) int64 {
	var n int64
	for _, row := range r.GetRows() {
		if row.GetDimension() == "block" {
			n += row.GetFormsIssued()
		}
	}
	return n
}

func issuedSide(r *authorityv1.ReconcileResponse) int64 {
	for _, s := range r.GetSummary() {
		if s.GetSide() == "ISSUED" {
			return s.GetForms()
		}
	}
	return -1
}

// TestReportsWithMaxAge: with max_age the monthly report and the reconciliation summary
// may come from the server's cache, saying so (read_source.cached) and when their figures
// were read (the first read's as_of); max_age 0 computes now, as before max_age existed
// (no read source from the primary); max_age out of 0..1h is refused naming the field.
func TestReportsWithMaxAge(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	party := auth.Party{Role: auth.RoleAuthority, Office: "sat", URI: "taxrefund://authority/sat"}
	official := db.WithParty(auth.NewContext(e.ctx, party), string(party.Role), party.Code())
	minute := durationpb.New(time.Minute)
	e.issue("P1000001")
	readAt := e.clock.Now()

	first, err := e.h.MonthlyReport(official, &authorityv1.MonthlyReportRequest{Month: "2026-07", MaxAge: minute})
	if err != nil {
		t.Fatal(err)
	}
	firstRec, err := e.h.Reconcile(official, &authorityv1.ReconcileRequest{Month: "2026-07", SummaryLimit: 5, MaxAge: minute})
	if err != nil {
		t.Fatal(err)
	}
	for what, src := range map[string]*authorityv1.ReadSource{"report": first.GetReadSource(), "reconciliation": firstRec.GetReadSource()} {
		if src.GetCached() || src.GetReplica() || !src.GetAsOf().AsTime().Equal(readAt) {
			t.Errorf("first %s: read source %v, want computed now from the primary, as of %v", what, src, readAt)
		}
	}
	if julyIssued(first) != 1 || issuedSide(firstRec) != 1 {
		t.Fatalf("first answers: %d and %d forms issued, want 1", julyIssued(first), issuedSide(firstRec))
	}

	e.clock.Set(readAt.Add(20 * time.Second))
	e.issue("P1000002")
	second, err := e.h.MonthlyReport(official, &authorityv1.MonthlyReportRequest{Month: "2026-07", MaxAge: minute})
	if err != nil {
		t.Fatal(err)
	}
	secondRec, err := e.h.Reconcile(official, &authorityv1.ReconcileRequest{Month: "2026-07", SummaryLimit: 5, MaxAge: minute})
	if err != nil {
		t.Fatal(err)
	}
	if julyIssued(second) != 1 || issuedSide(secondRec) != 1 {
		t.Errorf("cached answers: %d and %d forms issued, want the first answers' 1", julyIssued(second), issuedSide(secondRec))
	}
	for what, src := range map[string]*authorityv1.ReadSource{"report": second.GetReadSource(), "reconciliation": secondRec.GetReadSource()} {
		if !src.GetCached() || !src.GetAsOf().AsTime().Equal(readAt) {
			t.Errorf("second %s: read source %v, want cached, as of %v", what, src, readAt)
		}
	}
	second.ReadSource, first.ReadSource = nil, nil
	if !proto.Equal(first, second) {
		t.Errorf("the cached report differs from the first beyond its read source")
	}
	// Another summary_limit is another answer.
	other, err := e.h.Reconcile(official, &authorityv1.ReconcileRequest{Month: "2026-07", SummaryLimit: 6, MaxAge: minute})
	if err != nil {
		t.Fatal(err)
	}
	if issuedSide(other) != 2 || other.GetReadSource().GetCached() {
		t.Errorf("summary_limit 6: %d forms issued, cached %v; want 2 computed now", issuedSide(other), other.GetReadSource().GetCached())
	}

	now, err := e.h.MonthlyReport(official, &authorityv1.MonthlyReportRequest{Month: "2026-07"})
	if err != nil {
		t.Fatal(err)
	}
	zero, err := e.h.MonthlyReport(official, &authorityv1.MonthlyReportRequest{Month: "2026-07", MaxAge: durationpb.New(0)})
	if err != nil {
		t.Fatal(err)
	}
	nowRec, err := e.h.Reconcile(official, &authorityv1.ReconcileRequest{Month: "2026-07", SummaryLimit: 5, MaxAge: durationpb.New(0)})
	if err != nil {
		t.Fatal(err)
	}
	if julyIssued(now) != 2 || julyIssued(zero) != 2 || issuedSide(nowRec) != 2 {
		t.Errorf("computed now: %d, %d and %d forms issued, want 2", julyIssued(now), julyIssued(zero), issuedSide(nowRec))
	}
	if now.GetReadSource() != nil || zero.GetReadSource() != nil || nowRec.GetReadSource() != nil {
		t.Errorf("computed now from the primary: read sources %v, %v, %v; want none, as before max_age", now.GetReadSource(), zero.GetReadSource(), nowRec.GetReadSource())
	}
	// A fresh computation serves the callers who accept older figures.
	third, err := e.h.MonthlyReport(official, &authorityv1.MonthlyReportRequest{Month: "2026-07", MaxAge: minute})
	if err != nil {
		t.Fatal(err)
	}
	if julyIssued(third) != 2 || !third.GetReadSource().GetCached() || !third.GetReadSource().GetAsOf().AsTime().Equal(e.clock.Now()) {
		t.Errorf("after max_age 0: %d forms issued, read source %v; want 2, cached as of %v", julyIssued(third), third.GetReadSource(), e.clock.Now())
	}
	// Past max_age: computed again.
	e.issue("P1000003")
	e.clock.Set(e.clock.Now().Add(61 * time.Second))
	fourth, err := e.h.MonthlyReport(official, &authorityv1.MonthlyReportRequest{Month: "2026-07", MaxAge: minute})
	if err != nil {
		t.Fatal(err)
	}
	if julyIssued(fourth) != 3 || fourth.GetReadSource().GetCached() || !fourth.GetReadSource().GetAsOf().AsTime().Equal(e.clock.Now()) {
		t.Errorf("61 s later: %d forms issued, read source %v; want 3 computed now", julyIssued(fourth), fourth.GetReadSource())
	}
	// A full reconciliation is always computed now: max_age does not apply.
	full, err := e.h.Reconcile(official, &authorityv1.ReconcileRequest{Month: "2026-07", MaxAge: minute})
	if err != nil {
		t.Fatal(err)
	}
	if issuedSide(full) != 3 || full.GetReadSource() != nil || full.GetSummaryOnly() {
		t.Errorf("full reconciliation with max_age: %d issued, read source %v; want 3 computed now", issuedSide(full), full.GetReadSource())
	}

	for _, bad := range []time.Duration{-time.Second, 2 * time.Hour} {
		_, err := e.h.MonthlyReport(official, &authorityv1.MonthlyReportRequest{Month: "2026-07", MaxAge: durationpb.New(bad)})
		wantFault(t, "report max_age "+bad.String(), err, fault.Invalid, "INVALID_REQUEST")
		if fe, _ := fault.As(err); fe == nil || len(fe.Violations) != 1 || fe.Violations[0].Field != "max_age" {
			t.Errorf("report max_age %s: %v, want the field named", bad, err)
		}
		_, err = e.h.Reconcile(official, &authorityv1.ReconcileRequest{Month: "2026-07", SummaryLimit: 5, MaxAge: durationpb.New(bad)})
		if fe, _ := fault.As(err); fe == nil || fe.Kind != fault.Invalid || len(fe.Violations) != 1 || fe.Violations[0].Field != "max_age" {
			t.Errorf("reconcile max_age %s: %v, want INVALID_ARGUMENT naming max_age", bad, err)
		}
	}
}
