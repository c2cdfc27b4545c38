package registry_test

import (
	"encoding/json"
	"testing"
	"time"

	"taxrefund/internal/fault"
	"taxrefund/internal/registry"
)

// TestSetStoreGrade: a grade change takes effect at once and is audited with the grades
// before and after, the reason and the day; a retry of the same request changes nothing
// more and leaves one audit event; a bad grade, an empty reason, an unknown store and an
// exited store are refused without a write.
func TestSetStoreGrade(t *testing.T) {
	t.Parallel()
	e := newEnv(t, octNoon)
	k := key("grade S-JFB-1 B")
	st, effective, err := e.svc.SetGrade(e.ctx, k, "S-JFB-1", "B", "late VAT filings")
	if err != nil {
		t.Fatal(err)
	}
	if st.Code != "S-JFB-1" || st.CreditGrade != "B" || st.Status != registry.Active || !effective.Equal(date(t, "2026-10-10")) {
		t.Fatalf("SetGrade: %+v from %s", st, effective)
	}
	got, err := e.svc.GetStore(e.ctx, "S-JFB-1")
	if err != nil || got.CreditGrade != "B" {
		t.Fatalf("stored grade %q (%v), want B", got.CreditGrade, err)
	}
	// The retry, a day later (the first answer, its date included), writes nothing.
	e.clock.Set(octNoon.Add(24 * time.Hour))
	before := e.counts()
	again, effAgain, err := e.svc.SetGrade(e.ctx, k, "S-JFB-1", "B", "late VAT filings")
	if err != nil || again.CreditGrade != "B" || !effAgain.Equal(effective) {
		t.Fatalf("retry: %+v from %s, %v", again, effAgain, err)
	}
	sameCounts(t, "the retry", before, e.counts())
	ev := e.audit("S-JFB-1")
	if len(ev) != 1 {
		t.Fatalf("audit events of S-JFB-1: %+v, want 1", ev)
	}
	var detail map[string]string
	if err := json.Unmarshal([]byte(ev[0].Detail), &detail); err != nil {
		t.Fatal(err)
	}
	if ev[0].Action != "STORE_GRADE_SET" || ev[0].Actor != official || ev[0].RequestID == nil || *ev[0].RequestID != k.RequestID ||
		detail["from"] != "A" || detail["to"] != "B" || detail["reason"] != "late VAT filings" || detail["effective_date"] != "2026-10-10" {
		t.Errorf("audit event %+v, detail %v", ev[0], detail)
	}

	// A suspended store's grade changes too; an exited one's does not.
	if st, _, err := e.svc.SetGrade(e.ctx, key("grade S-SUSP"), "S-SUSP", "M", "new rating"); err != nil || st.CreditGrade != "M" || st.Status != registry.Suspended {
		t.Errorf("grade of the suspended store: %+v, %v", st, err)
	}
	refusals := []struct {
		name, code, grade, reason string
		kind                      fault.Kind
		why, field                string
	}{
		{"exited store", "S-EXIT", "A", "rating restored", fault.Precondition, "STORE_STATUS", "code"},
		{"grade C", "S-JFB-2", "C", "rating", fault.Invalid, "INVALID_REQUEST", "credit_grade"},
		{"grade lowercase", "S-JFB-2", "a", "rating", fault.Invalid, "INVALID_REQUEST", "credit_grade"},
		{"no reason", "S-JFB-2", "B", "  ", fault.Invalid, "INVALID_REQUEST", "reason"},
		{"unknown store", "S-NOPE", "B", "rating", fault.NotFound, "STORE_NOT_FOUND", "code"},
	}
	for _, r := range refusals {
		before := e.counts()
		_, _, err := e.svc.SetGrade(e.ctx, key(r.name), r.code, r.grade, r.reason)
		fe := wantFault(t, err, r.kind, r.why, r.field)
		if r.code == "S-EXIT" && fe != nil && fe.Metadata["status"] != registry.Exited {
			t.Errorf("%s: refusal names status %q", r.name, fe.Metadata["status"])
		}
		sameCounts(t, r.name, before, e.counts())
	}
	if got, _ := e.svc.GetStore(e.ctx, "S-EXIT"); got.CreditGrade != "B" {
		t.Errorf("the exited store's grade: %q, want B unchanged", got.CreditGrade)
	}
}
