package server_test

import (
	"context"
	"strings"
	"testing"

	authorityv1 "taxrefund/api/taxrefund/authority/v1"
	"taxrefund/internal/db"
)

// The database's second layer (migrations/00008_row_security.sql): whatever SQL the
// service's pool runs, row-level security limits forms and payouts to the caller's party.
// These tests run raw statements through the very path the service uses (the application
// role's pool, db.Scope, the party in the context), so they show what a handler with a
// missing Go check would get.

// rowsVisible is what party sees of forms (their store codes) and payouts (their desk
// codes), sorted; "-" for none.
func rowsVisible(t *testing.T, ctx context.Context, q db.Scoped) (forms, payouts string) {
	t.Helper()
	if err := q.QueryRow(ctx, `SELECT coalesce(string_agg(store_code, ',' ORDER BY store_code), '-') FROM forms`).Scan(&forms); err != nil {
		t.Fatalf("forms: %v", err)
	}
	if err := q.QueryRow(ctx, `SELECT coalesce(string_agg(desk_code, ',' ORDER BY desk_code), '-') FROM payouts`).Scan(&payouts); err != nil {
		t.Fatalf("payouts: %v", err)
	}
	return forms, payouts
}

// asParty is ctx acting as "role/code" ("" for no party at all).
func asParty(ctx context.Context, party string) context.Context {
	if party == "" {
		return ctx
	}
	role, code, _ := strings.Cut(party, "/")
	return db.WithParty(ctx, role, code)
}

// rowViews are the reads every party makes, after seededRun: forms A (S-JFB-1, confirmed
// at CKG, paid in cash at CKG-01 of AG-CQ), B (S-JFB-2, confirmed at TFU, paid by card at
// TFU-01 of AG-CD), C (S-JFB-1, voided), D (S-JFB-1, immediate refund, not yet exported).
var rowViews = []struct {
	party, forms, payouts string
}{
	{"", "-", "-"}, // no party: nothing
	{"store/S-JFB-1", "S-JFB-1,S-JFB-1,S-JFB-1", "-"},
	{"store/S-JFB-2", "S-JFB-2", "-"},
	{"store/S-CXL-1", "-", "-"},
	{"customs/CKG", "S-JFB-1,S-JFB-1,S-JFB-1,S-JFB-2", "-"},
	{"desk/CKG-01", "S-JFB-1,S-JFB-1,S-JFB-1,S-JFB-2", "CKG-01"},
	{"desk/CKG-02", "S-JFB-1,S-JFB-1,S-JFB-1,S-JFB-2", "CKG-01"}, // same agency
	{"desk/TFU-01", "S-JFB-1,S-JFB-1,S-JFB-1,S-JFB-2", "TFU-01"},
	{"agency/AG-CQ", "S-JFB-1", "CKG-01"},
	{"agency/AG-CD", "S-JFB-2", "TFU-01"},
	{"authority/CQ", "S-JFB-1,S-JFB-1,S-JFB-1,S-JFB-2", "CKG-01,TFU-01"},
	{"system/expiry", "S-JFB-1,S-JFB-1,S-JFB-1,S-JFB-2", "CKG-01,TFU-01"},
}

// rowWrites are writes a party must not make: refused by a policy (SQLSTATE 42501) or
// reaching no row (affected 0). A few are refused before any policy is asked, by the
// column grants (migrations/00011_least_privilege.sql): refusedBy names that refusal.
var rowWrites = []struct {
	name, party, sql string
	refused          bool // else: no row affected
	refusedBy        string
}{
	{"store voids another store's form", "store/S-JFB-1",
		`UPDATE forms SET state = 'VOIDED' WHERE store_code = 'S-JFB-2'`, false, ""},
	{"store hands its forms to another store", "store/S-JFB-1",
		`UPDATE forms SET store_code = 'S-JFB-2' WHERE store_code = 'S-JFB-1'`, true, "permission denied for table forms"},
	{"store issues a form as another store", "store/S-JFB-1",
		`INSERT INTO forms SELECT (jsonb_populate_record(f, '{"id": "00000000-0000-0000-0000-0000000000f1", "number": "TRX", "store_code": "S-JFB-2"}')).*
		   FROM forms f WHERE f.payout_id IS NULL LIMIT 1`, true, ""}, // unpaid: a copy naming a payout is refused before any policy (migrations/00033)
	{"customs at CKG touches a form confirmed at TFU", "customs/CKG",
		`UPDATE forms SET verified_officer = 'officer-1' WHERE verified_port = 'TFU'`, true, ""},
	{"customs at CKG moves a confirmation to TFU", "customs/CKG",
		`UPDATE forms SET verified_port = 'TFU' WHERE verified_port = 'CKG'`, true, ""},
	{"desk pays at another agency's desk", "desk/CKG-01",
		`INSERT INTO payouts SELECT (jsonb_populate_record(p, '{"id": "00000000-0000-0000-0000-0000000000a1", "desk_code": "TFU-01", "agency_code": "AG-CD", "txn_id": null}')).*
		   FROM payouts p`, true, ""},
	{"desk pays at another desk of its agency", "desk/CKG-01",
		`INSERT INTO payouts SELECT (jsonb_populate_record(p, '{"id": "00000000-0000-0000-0000-0000000000a2", "desk_code": "CKG-02", "txn_id": null}')).*
		   FROM payouts p`, true, ""},
	{"desk pays for another agency", "desk/CKG-01",
		`INSERT INTO payouts SELECT (jsonb_populate_record(p, '{"id": "00000000-0000-0000-0000-0000000000a3", "agency_code": "AG-CD", "txn_id": null}')).*
		   FROM payouts p`, true, ""},
	{"desk rewrites a paid form's copy of its payout", "desk/CKG-01",
		`UPDATE forms SET paid_fee = 0 WHERE payout_id IS NOT NULL`, true, "permission denied for table forms"},
	{"agency changes a form", "agency/AG-CQ",
		`UPDATE forms SET close_reason = 'x'`, false, ""},
	{"no party changes a form", "",
		`UPDATE forms SET close_reason = 'x'`, false, ""},
}

// TestRowSecurityKeysFormsAndPayoutsToTheParty walks every party through the reads and
// the writes above. Its broken control: with row-level security switched off on both
// tables (by their owner), the same reads show other parties' rows and a store's update
// reaches another store's form — so the checks above can see a leak.
func TestRowSecurityKeysFormsAndPayoutsToTheParty(t *testing.T) {
	t.Parallel()
	env := newSecEnv(t, secOptions{})
	seededRun(t, env)
	ctx := ctxTimeout(t)
	app := db.Scope(env.app)

	var owns int
	var bypass bool
	if err := env.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_class WHERE relowner = r.oid), r.rolbypassrls
		  FROM pg_roles r WHERE r.rolname = $1`, db.AppRole).Scan(&owns, &bypass); err != nil {
		t.Fatal(err)
	}
	if owns != 0 || bypass {
		t.Errorf("the application role owns %d relations and BYPASSRLS is %v; want none and false", owns, bypass)
	}
	var forced int
	if err := env.pool.QueryRow(ctx, `SELECT count(*) FROM pg_class WHERE relname IN ('forms', 'payouts') AND relrowsecurity AND relforcerowsecurity`).Scan(&forced); err != nil || forced != 2 {
		t.Errorf("forms and payouts with FORCE ROW LEVEL SECURITY: %d (%v), want 2", forced, err)
	}

	for _, v := range rowViews {
		forms, payouts := rowsVisible(t, asParty(ctx, v.party), app)
		if forms != v.forms || payouts != v.payouts {
			t.Errorf("%q sees forms of %s and payouts of %s; want %s and %s", v.party, forms, payouts, v.forms, v.payouts)
		}
	}

	before := env.tableCounts(t)
	for _, w := range rowWrites {
		tag, err := app.Exec(asParty(ctx, w.party), w.sql)
		code, msg := pgError(err)
		switch {
		case w.refused && code != "42501":
			t.Errorf("%s: %v (SQLSTATE %q), want refused by row-level security (42501)", w.name, err, code)
		case w.refused:
			want := "row-level security"
			if w.refusedBy != "" {
				want = w.refusedBy
			}
			if !strings.Contains(msg, want) {
				t.Errorf("%s: refused with %q, want %q", w.name, msg, want)
			}
		case err != nil || tag.RowsAffected() != 0:
			t.Errorf("%s: %d rows, %v; want no row reached", w.name, tag.RowsAffected(), err)
		}
	}
	if d := countDiff(before, env.tableCounts(t)); d != "" {
		t.Errorf("the refused writes changed the tables: %s", d)
	}
	var changed int
	if err := env.pool.QueryRow(ctx, `SELECT count(*) FROM forms WHERE close_reason = 'x' OR store_code = 'S-JFB-2' AND state = 'VOIDED'`).Scan(&changed); err != nil || changed != 0 {
		t.Errorf("forms changed by the refused writes: %d (%v)", changed, err)
	}

	// The cash cap still counts every agency's cash, through the one function a desk
	// may call: TFU-01 (AG-CD) sees none of AG-CQ's payouts, yet counts A's cash.
	var index []byte
	var paidDate, net string
	if err := env.pool.QueryRow(ctx, `SELECT doc_index, paid_date::text, net_refund::text FROM payouts WHERE desk_code = 'CKG-01' AND method = 'CASH'`).Scan(&index, &paidDate, &net); err != nil {
		t.Fatal(err)
	}
	var direct, viaFunction string
	tfu := asParty(ctx, "desk/TFU-01")
	if err := app.QueryRow(tfu, `SELECT coalesce(sum(net_refund), 0)::text FROM payouts WHERE doc_index = $1 AND method = 'CASH'`, index).Scan(&direct); err != nil {
		t.Fatal(err)
	}
	if err := app.QueryRow(tfu, `SELECT cash_paid_on_day($1, $2::date)::text`, index, paidDate).Scan(&viaFunction); err != nil {
		t.Fatal(err)
	}
	if direct != "0" || viaFunction != net {
		t.Errorf("TFU-01 reads %s of the traveller's cash directly and %s through cash_paid_on_day; want 0 and %s", direct, viaFunction, net)
	}

	// The authority's report runs in a transaction of its own (report.Monthly): it too must
	// carry the party, or it would count no form at all.
	r, err := env.authority(t, sat).MonthlyReport(ctx, &authorityv1.MonthlyReportRequest{Month: "2025-07"})
	if err != nil {
		t.Fatalf("MonthlyReport: %v", err)
	}
	issued := int64(0)
	for _, row := range r.GetRows() {
		if row.GetDimension() == "block" {
			issued += row.GetFormsIssued()
		}
	}
	if issued != 4 {
		t.Errorf("the authority's monthly report counts %d forms issued in 2025-07, want 4", issued)
	}

	// The broken control.
	if _, err := env.pool.Exec(ctx, `ALTER TABLE forms DISABLE ROW LEVEL SECURITY; ALTER TABLE payouts DISABLE ROW LEVEL SECURITY`); err != nil {
		t.Fatal(err)
	}
	leaks := 0
	for _, v := range rowViews {
		if forms, payouts := rowsVisible(t, asParty(ctx, v.party), app); forms != v.forms || payouts != v.payouts {
			leaks++
		}
	}
	if leaks == 0 {
		t.Errorf("broken control: with row-level security off, every party still sees exactly its rows; the test cannot see a leak")
	}
	tag, err := app.Exec(asParty(ctx, "store/S-JFB-1"), `UPDATE forms SET close_reason = close_reason WHERE store_code = 'S-JFB-2'`)
	if err != nil || tag.RowsAffected() == 0 {
		t.Errorf("broken control: with row-level security off, a store's update of another store's form reached %d rows (%v); want it to reach one", tag.RowsAffected(), err)
	}
	t.Logf("%d parties × 2 tables read, %d forbidden writes refused; with row-level security off, %d of the %d views leak", len(rowViews), len(rowWrites), leaks, len(rowViews))
}
