package immediate_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"taxrefund/internal/immediate"
)

// TestCaptureDueFollowsCalendar: the stored capture date is the one source. A calendar
// change moves the capture_due of the PREPAID prepayments whose window it touches, in its
// own transaction; the refund point's list and the capture job read that date; a CAPTURED
// or RETURNED prepayment's date stays as it was.
//
// Today Monday 2026-03-09. C committed Tuesday 2026-03-10: Wed 11, Thu 12, Fri 13. A and R
// committed Thursday 2026-03-12: Fri 13, Mon 16, Tue 17.
func TestCaptureDueFollowsCalendar(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.clock.Set(localNoon(t, "2026-03-09"))
	doc := passport("P5100051", "GB")
	payOn := func(committed string) immediate.Prepayment {
		t.Helper()
		f := e.issue("S-CXL-1", doc)
		r := payReq("IFS-RP", f.Number, doc)
		r.CommittedDate = date(t, committed)
		rehash(&r)
		return e.mustPay(r)
	}
	c := payOn("2026-03-10")
	a := payOn("2026-03-12")
	r := payOn("2026-03-12")
	if _, err := e.returnPrepayment("IFS-RP", r.FormNumber); err != nil {
		t.Fatalf("return %s: %v", r.FormNumber, err)
	}
	stored := func(p immediate.Prepayment) string {
		t.Helper()
		return e.prepaymentOf(p.FormID).CaptureDue.Format(time.DateOnly)
	}
	wantDue := func(what string, want map[string]string) {
		t.Helper()
		for name, p := range map[string]immediate.Prepayment{"C": c, "A": a, "R": r} {
			if got := stored(p); got != want[name] {
				t.Errorf("%s: %s's capture_due %s, want %s", what, name, got, want[name])
			}
		}
	}
	// The refund point's list: A alone once C is captured, due as stored.
	wantList := func(what, due string) {
		t.Helper()
		list, err := e.imm.DueCaptures(e.ctx, "IFS-RP")
		if err != nil {
			t.Fatalf("%s: due captures: %v", what, err)
		}
		if len(list) != 1 || list[0].ID != a.ID || list[0].Due.Format(time.DateOnly) != due {
			t.Errorf("%s: due captures %+v, want A alone due %s", what, list, due)
		}
	}
	moved := func(day string) int {
		t.Helper()
		return e.count(`SELECT (detail->>'capture_due_moved')::int FROM audit_events
			WHERE action = 'CALENDAR_DAY_SET' AND object = $1 ORDER BY id DESC LIMIT 1`, day)
	}
	captureAt := func(at time.Time, want ...uuid.UUID) {
		t.Helper()
		e.clock.Set(at)
		if n := e.captures(); n != len(want) {
			t.Errorf("at %s: captured %d, want %d", at.Format(time.RFC3339), n, len(want))
		}
		for _, id := range want {
			if e.count(`SELECT count(*) FROM prepayments WHERE id = $1 AND state = 'CAPTURED'`, id) != 1 {
				t.Errorf("at %s: prepayment %s not captured", at.Format(time.RFC3339), id)
			}
		}
	}
	wantDue("at payment", map[string]string{"C": "2026-03-13", "A": "2026-03-17", "R": "2026-03-17"})

	captureAt(localMidnight(t, "2026-03-13"), c.ID)
	wantList("C captured", "2026-03-17")

	// Later: Friday 2026-03-13 a holiday. A: Mon 16, Tue 17, Wed 18. C (captured) and R
	// (returned) keep theirs, though the day is in their windows.
	e.setDay("2026-03-13", false, "public holiday")
	wantDue("Friday a holiday", map[string]string{"C": "2026-03-13", "A": "2026-03-18", "R": "2026-03-17"})
	if n := moved("2026-03-13"); n != 1 {
		t.Errorf("Friday a holiday: the audit event says %d prepayments moved, want 1", n)
	}
	wantList("Friday a holiday", "2026-03-18")
	captureAt(time.Date(2026, 3, 17, 15, 59, 59, 0, time.UTC)) // 23:59:59 on Tue 17, the old date: not yet

	// Earlier: Saturday 2026-03-14 an adjusted working day (调休). A: Sat 14, Mon 16, Tue 17.
	e.setDay("2026-03-14", true, "调休 adjusted working day")
	wantDue("Saturday working", map[string]string{"C": "2026-03-13", "A": "2026-03-17", "R": "2026-03-17"})
	if n := moved("2026-03-14"); n != 1 {
		t.Errorf("Saturday working: the audit event says %d prepayments moved, want 1", n)
	}
	wantList("Saturday working", "2026-03-17")
	captureAt(time.Date(2026, 3, 16, 15, 59, 59, 0, time.UTC)) // 23:59:59 on Mon 16: the day before
	captureAt(localMidnight(t, "2026-03-17"), a.ID)

	// A change after the capture moves nothing: Saturday back to a weekend would make A's
	// date Wednesday 18 again, but A is captured.
	e.setDay("2026-03-14", false, "weekend after all")
	wantDue("after the captures", map[string]string{"C": "2026-03-13", "A": "2026-03-17", "R": "2026-03-17"})
	if n := moved("2026-03-14"); n != 0 {
		t.Errorf("after the captures: the audit event says %d prepayments moved, want 0", n)
	}
	// A note only changes no date and moves nothing either.
	e.setDay("2026-03-13", false, "public holiday (renamed)")
	if n := moved("2026-03-13"); n != 0 {
		t.Errorf("a note: the audit event says %d prepayments moved, want 0", n)
	}
	e.checkInvariants("capture due follows the calendar")
}

// TestCaptureDueSetOnInsert: a writer that inserts a prepayment with a capture date of its
// own gets the calendar's: the database computes it. (The row is put back, with a date 30
// days out, in a transaction rolled back.)
func TestCaptureDueSetOnInsert(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.clock.Set(localNoon(t, "2026-03-09"))
	_, p := e.prepaid(passport("P5200052", "GB"))
	tx, err := e.pool.Begin(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(e.ctx)
	for _, q := range []string{
		`CREATE TEMP TABLE pp ON COMMIT DROP AS SELECT * FROM prepayments WHERE id = $1`,
		`UPDATE pp SET capture_due = committed_date + 30 WHERE id = $1`,
		`DELETE FROM prepayments WHERE id = $1`,
	} {
		if _, err := tx.Exec(e.ctx, q, p.ID); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var got time.Time
	if err := tx.QueryRow(e.ctx, `INSERT INTO prepayments SELECT * FROM pp RETURNING capture_due`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got.Format(time.DateOnly) != "2026-03-31" || !got.Equal(p.CaptureDue) {
		t.Errorf("inserted with committed_date + 30: capture_due %s, want the calendar's %s (2026-03-31)",
			got.Format(time.DateOnly), p.CaptureDue.Format(time.DateOnly))
	}
}
