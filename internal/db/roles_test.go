package db_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"taxrefund/internal/db"
	"taxrefund/internal/dbtest"
	"taxrefund/internal/forms"
	"taxrefund/internal/ledger"
	"taxrefund/internal/params"
	"taxrefund/internal/refund"
)

// rolesFixture issues a form at S-JFB-1 and one at S-JFB-2, confirms the second's export
// at CKG, and inserts a declaration of AG-CQ, through the owner's pool. It returns the
// forms' ids.
func rolesFixture(t *testing.T, pool *pgxpool.Pool) (mine, theirs uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	dbtest.Registry(t, pool)
	now := time.Date(2026, 3, 10, 4, 0, 0, 0, time.UTC)
	fs := forms.New(forms.Deps{Pool: pool, Ledger: ledger.NewStore(), Keys: dbtest.Keyring(t), Params: params.NewCache(pool, 0),
		Now: func() time.Time { return now }, Log: slog.New(slog.DiscardHandler)})
	doc := refund.Document{Type: refund.Passport, Number: "E7000001", IssuingCountry: "GB"}
	issue := func(store, inv string) forms.Form {
		today := refund.LocalDate(now)
		f, err := fs.Issue(ctx, forms.IssueRequest{
			Idem:      forms.Idempotency{Caller: "store/" + store, RequestID: uuid.New(), Hash: forms.HashOf([]byte(inv))},
			StoreCode: store,
			Application: refund.Application{
				Traveller: refund.Traveller{Document: doc, Expiry: time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC), Nationality: "GB",
					LastEntry: refund.AddDays(today, -5)},
				Invoices: []refund.Invoice{{Number: inv, Date: today}},
				Lines: []refund.Line{{Description: "goods", Category: refund.General, VATRate: decimal.RequireFromString("0.13"),
					Quantity: 1, Amount: decimal.RequireFromString("1000.00"), InvoiceNumber: inv}},
			},
		})
		if err != nil {
			t.Fatalf("issue at %s: %v", store, err)
		}
		return f
	}
	a, b := issue("S-JFB-1", "INV-1"), issue("S-JFB-2", "INV-2")
	if _, err := fs.Verify(ctx, forms.VerifyRequest{
		Idem: forms.Idempotency{Caller: "customs/CKG/officer-3", RequestID: uuid.New(), Hash: forms.HashOf([]byte(b.Number))},
		Port: "CKG", Officer: "officer-3", Number: b.Number, Presented: doc, Confirmed: map[int]int32{1: 1},
	}); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO declarations (id, agency_code, month, status, declared_by, declared_at, forms, gross_refund, fee, net_refund)
		VALUES ($1, 'AG-CQ', '2026-02-01', 'DECLARED', 'agency/AG-CQ/clerk', now(), 0, 0, 0, 0)`, uuid.New()); err != nil {
		t.Fatal(err)
	}
	return a.ID, b.ID
}

// TestDatabaseRolesRefuse connects as the URL's user, switches to each service's role and
// tries what that role must not do: PostgreSQL refuses each (insufficient_privilege, from
// a grant, row-level security's check, party_role() or a trigger), and the allowed
// statement next to it works.
func TestDatabaseRolesRefuse(t *testing.T) {
	url := dbtest.NewURL(t)
	owner := dbtest.OpenPool(t, url, "")
	mine, theirs := rolesFixture(t, owner)
	ctx := context.Background()

	type try struct {
		name, role, party, sql string
		args                   []any
		// refused: the statement must fail with SQLSTATE 42501. Otherwise it must work
		// and affect (or return) rows rows.
		refused bool
		rows    int64
	}
	m, o := mine.String(), theirs.String()
	const (
		store, desk, authority, jobs = db.StoreRole, db.DeskRole, db.AuthorityRole, db.JobsRole
		app                          = db.AppRole
	)
	tries := []try{
		// Parties of another audience.
		{name: "store reads its forms", role: store, party: "store/S-JFB-1", sql: `SELECT id FROM forms`, rows: 1},
		{name: "store sets the authority's party", role: store, party: "authority/CQ", sql: `SELECT count(*) FROM forms`, refused: true},
		{name: "store sets a desk's party", role: store, party: "desk/CKG-01", sql: `SELECT count(*) FROM forms`, refused: true},
		{name: "store sets the system's party", role: store, party: "system/expiry", sql: `SELECT count(*) FROM forms`, refused: true},
		{name: "desk as customs reads every form", role: desk, party: "customs/CKG", sql: `SELECT id FROM forms`, rows: 2},
		{name: "desk sets a store's party", role: desk, party: "store/S-JFB-1", sql: `SELECT count(*) FROM forms`, refused: true},
		{name: "desk sets the authority's party", role: desk, party: "authority/CQ", sql: `SELECT count(*) FROM forms`, refused: true},
		{name: "authority sets a desk's party", role: authority, party: "desk/CKG-01", sql: `SELECT count(*) FROM forms`, refused: true},
		{name: "jobs set a store's party", role: jobs, party: "store/S-JFB-1", sql: `SELECT count(*) FROM forms`, refused: true},
		{name: "an unknown kind of party", role: app, party: "root/x", sql: `SELECT count(*) FROM forms`, refused: true},

		// Another store's form: row-level security leaves it out of the update.
		{name: "store voids its form", role: store, party: "store/S-JFB-1", sql: `UPDATE forms SET close_reason = 'test' WHERE id = $1`, args: []any{m}, rows: 1},
		{name: "store updates another store's form", role: store, party: "store/S-JFB-1", sql: `UPDATE forms SET close_reason = 'test' WHERE id = $1`, args: []any{o}, rows: 0},
		{name: "store moves its form to another store", role: store, party: "store/S-JFB-1", sql: `UPDATE forms SET store_code = 'S-JFB-2' WHERE id = $1`, args: []any{m}, refused: true},

		// Money columns.
		{name: "store multiplies its form's gross", role: store, party: "store/S-JFB-1", sql: `UPDATE forms SET gross_refund = gross_refund * 100 WHERE id = $1`, args: []any{m}, refused: true},
		{name: "store changes a line's amount", role: store, party: "store/S-JFB-1", sql: `UPDATE form_lines SET amount = amount * 100 WHERE form_id = $1`, args: []any{m}, refused: true},
		{name: "desk changes a form's eligible amount", role: desk, party: "desk/CKG-01", sql: `UPDATE forms SET eligible_amount = 1 WHERE id = $1`, args: []any{o}, refused: true},
		{name: "desk changes a confirmed gross", role: desk, party: "customs/CKG", sql: `UPDATE forms SET confirmed_gross = confirmed_gross - 1 WHERE id = $1`, args: []any{o}, refused: true},
		{name: "desk changes a confirmed quantity", role: desk, party: "customs/CKG", sql: `UPDATE form_lines SET confirmed_qty = 0 WHERE form_id = $1`, args: []any{o}, refused: true},
		{name: "desk changes a line's refund rate", role: desk, party: "customs/CKG", sql: `UPDATE form_lines SET refund_rate = 0.13 WHERE form_id = $1`, args: []any{o}, refused: true},
		{name: "authority changes a declaration's amount", role: authority, party: "authority/CQ", sql: `UPDATE declarations SET gross_refund = 100, net_refund = 100`, refused: true},
		{name: "jobs change a form's gross", role: jobs, party: "system/expiry", sql: `UPDATE forms SET gross_refund = 1 WHERE id = $1`, args: []any{m}, refused: true},
		{name: "the union role changes a form's gross", role: app, party: "authority/CQ", sql: `UPDATE forms SET gross_refund = 1 WHERE id = $1`, args: []any{m}, refused: true},

		// Approving, paying, issuing, the registry: each service only its own.
		{name: "authority approves a declaration", role: authority, party: "authority/CQ", sql: `UPDATE declarations SET status = 'APPROVED' WHERE gross_refund = 0`, rows: 1},
		{name: "desk approves a declaration", role: desk, party: "agency/AG-CQ", sql: `UPDATE declarations SET status = 'APPROVED'`, refused: true},
		{name: "store approves a declaration", role: store, party: "store/S-JFB-1", sql: `UPDATE declarations SET status = 'APPROVED'`, refused: true},
		{name: "jobs approve a declaration", role: jobs, party: "system/expiry", sql: `UPDATE declarations SET status = 'APPROVED'`, refused: true},
		{name: "desk issues a form", role: desk, party: "desk/CKG-01", sql: `INSERT INTO forms (id) VALUES (gen_random_uuid())`, refused: true},
		{name: "authority issues a form", role: authority, party: "authority/CQ", sql: `INSERT INTO forms (id) VALUES (gen_random_uuid())`, refused: true},
		{name: "store pays", role: store, party: "store/S-JFB-1", sql: `INSERT INTO payouts (id) VALUES (gen_random_uuid())`, refused: true},
		{name: "authority pays", role: authority, party: "authority/CQ", sql: `INSERT INTO payouts (id) VALUES (gen_random_uuid())`, refused: true},
		{name: "store prepays", role: store, party: "store/S-JFB-1", sql: `INSERT INTO prepayments (id) VALUES (gen_random_uuid())`, refused: true},
		{name: "authority suspends a store", role: authority, party: "authority/CQ", sql: `UPDATE stores SET status = 'SUSPENDED' WHERE code = 'S-JFB-2'`, rows: 1},
		{name: "store suspends another store", role: store, party: "store/S-JFB-1", sql: `UPDATE stores SET status = 'SUSPENDED' WHERE code = 'S-JFB-2'`, refused: true},
		{name: "desk suspends a store", role: desk, party: "desk/CKG-01", sql: `UPDATE stores SET status = 'SUSPENDED' WHERE code = 'S-JFB-2'`, refused: true},
		{name: "desk sets a parameter", role: desk, party: "desk/CKG-01", sql: `INSERT INTO parameters (name, valid_from, value) VALUES ('cash_cap', '2030-01-01', 1)`, refused: true},
		{name: "desk closes a month", role: desk, party: "agency/AG-CQ", sql: `INSERT INTO closed_months (month, closed_by) VALUES ('2026-01-01', 'x')`, refused: true},
		{name: "desk revokes a certificate", role: desk, party: "desk/CKG-01", sql: `INSERT INTO revoked_certificates (serial, revoked_by) VALUES ('ab', 'x')`, refused: true},
		{name: "store seals", role: store, party: "store/S-JFB-1", sql: `DELETE FROM seal_queue`, refused: true},
		{name: "store stops deriving an account's pending balance", role: store, party: "store/S-JFB-1", sql: `INSERT INTO ledger_derived_pending SELECT id FROM accounts`, refused: true},
		{name: "jobs stop deriving an account's pending balance", role: jobs, party: "system/sealer", sql: `INSERT INTO ledger_derived_pending SELECT id FROM accounts`, refused: true},

		// Tables of another audience.
		{name: "store reads whether its form is prepaid", role: store, party: "store/S-JFB-1", sql: `SELECT form_id, state FROM prepayments`, rows: 0},
		{name: "store reads prepayments' card tokens", role: store, party: "store/S-JFB-1", sql: `SELECT card_token FROM prepayments`, refused: true},
		{name: "store reads payouts", role: store, party: "store/S-JFB-1", sql: `SELECT * FROM payouts`, refused: true},
		{name: "store reads payout rows", role: store, party: "store/S-JFB-1", sql: `SELECT * FROM payout_forms`, refused: true},
		{name: "store reads declarations", role: store, party: "store/S-JFB-1", sql: `SELECT * FROM declarations`, refused: true},
		{name: "store reads the acquirer's instructions", role: store, party: "store/S-JFB-1", sql: `SELECT * FROM acquirer_outbox`, refused: true},
		{name: "store reads the seals", role: store, party: "store/S-JFB-1", sql: `SELECT * FROM seals`, refused: true},
		{name: "desk reads the seals", role: desk, party: "desk/CKG-01", sql: `SELECT * FROM seals`, refused: true},
		{name: "desk reads the development acquirer", role: desk, party: "desk/CKG-01", sql: `SELECT * FROM dev_acquirer_received`, refused: true},
		{name: "desk reads the cash paid through the function", role: desk, party: "desk/CKG-01", sql: `SELECT cash_paid_on_day('\x00', '2026-03-10')`, rows: 1},
		{name: "store reads the cash paid", role: store, party: "store/S-JFB-1", sql: `SELECT cash_paid_on_day('\x00', '2026-03-10')`, refused: true},

		// Idempotency answers are final.
		{name: "store claims and answers a new key", role: store, party: "store/S-JFB-1",
			sql: `WITH k AS (INSERT INTO idempotency_keys (caller, request_id, method, request_hash, response)
				VALUES ('store/S-JFB-1', gen_random_uuid(), 'IssueForm', '\x00', '{}') RETURNING caller) SELECT 1`, rows: 1},
		{name: "store rewrites its stored answer", role: store, party: "store/S-JFB-1", sql: `UPDATE idempotency_keys SET response = '\x00' WHERE caller = 'store/S-JFB-1'`, refused: true},
		{name: "desk rewrites a stored answer", role: desk, party: "customs/CKG", sql: `UPDATE idempotency_keys SET response = '\x00'`, refused: true},
		{name: "authority rewrites a stored answer", role: authority, party: "authority/CQ", sql: `UPDATE idempotency_keys SET response = '\x00'`, refused: true},
		{name: "store deletes a stored answer", role: store, party: "store/S-JFB-1", sql: `DELETE FROM idempotency_keys`, refused: true},
		{name: "store changes a stored request's hash", role: store, party: "store/S-JFB-1", sql: `UPDATE idempotency_keys SET request_hash = '\x00'`, refused: true},

		// Risk flags (00015): customs inspect and flag; nobody rewrites either; the store
		// sees neither; only the authority puts a store under review.
		{name: "customs record an inspection", role: desk, party: "customs/CKG", sql: `INSERT INTO inspections (id, form_id, port_code, officer, result, request_id) VALUES (gen_random_uuid(), $1, 'CKG', 'officer-1', 'PASSED', gen_random_uuid())`, args: []any{o}, rows: 1},
		{name: "store records an inspection", role: store, party: "store/S-JFB-1", sql: `INSERT INTO inspections (id, form_id, port_code, officer, result, request_id) VALUES (gen_random_uuid(), $1, 'CKG', 'x', 'PASSED', gen_random_uuid())`, args: []any{m}, refused: true},
		{name: "store reads inspections", role: store, party: "store/S-JFB-1", sql: `SELECT * FROM inspections`, refused: true},
		{name: "authority records an inspection", role: authority, party: "authority/CQ", sql: `INSERT INTO inspections (id, form_id, port_code, officer, result, request_id) VALUES (gen_random_uuid(), $1, 'CKG', 'x', 'PASSED', gen_random_uuid())`, args: []any{o}, refused: true},
		{name: "desk changes an inspection's result", role: desk, party: "customs/CKG", sql: `UPDATE inspections SET result = 'PASSED'`, refused: true},
		{name: "desk deletes an inspection", role: desk, party: "customs/CKG", sql: `DELETE FROM inspections`, refused: true},
		{name: "store flags a form", role: store, party: "store/S-JFB-1", sql: `INSERT INTO risk_flags (form_id, store_code, rule, detail) VALUES ($1, 'S-JFB-1', 'velocity', 'x')`, args: []any{m}, refused: true},
		{name: "desk deletes a flag", role: desk, party: "customs/CKG", sql: `DELETE FROM risk_flags`, refused: true},
		{name: "desk puts a store under review", role: desk, party: "customs/CKG", sql: `UPDATE stores SET under_review = true WHERE code = 'S-JFB-2'`, refused: true},
		{name: "store clears its own review", role: store, party: "store/S-JFB-1", sql: `UPDATE stores SET under_review = false WHERE code = 'S-JFB-1'`, refused: true},
		{name: "authority puts a store under review", role: authority, party: "authority/CQ", sql: `UPDATE stores SET under_review = true WHERE code = 'S-JFB-2'`, rows: 1},
		{name: "store sets a line's serial number", role: store, party: "store/S-JFB-1", sql: `UPDATE form_lines SET serial_number = 'X1' WHERE form_id = $1`, args: []any{m}, refused: true},
	}
	for _, tr := range tries {
		t.Run(tr.name, func(t *testing.T) {
			tx, err := owner.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tx.Rollback(ctx) }()
			if _, err := tx.Exec(ctx, `SELECT set_config('role', $1, true), set_config('taxrefund.party', $2, true)`, tr.role, tr.party); err != nil {
				t.Fatalf("set role %s: %v", tr.role, err)
			}
			var who string
			if err := tx.QueryRow(ctx, `SELECT current_user`).Scan(&who); err != nil || who != tr.role {
				t.Fatalf("acting as %q (%v), want %s", who, err, tr.role)
			}
			tag, err := tx.Exec(ctx, tr.sql, tr.args...)
			var pgErr *pgconn.PgError
			switch {
			case tr.refused && err == nil:
				t.Fatalf("%s as %s (%s): done (%s), want refused", tr.sql, tr.role, tr.party, tag)
			case tr.refused && (!errors.As(err, &pgErr) || pgErr.Code != "42501"):
				t.Fatalf("%s as %s: %v, want SQLSTATE 42501", tr.sql, tr.role, err)
			case tr.refused:
				t.Logf("refused: %s", pgErr.Message)
			case err != nil:
				t.Fatalf("%s as %s (%s): %v, want it allowed", tr.sql, tr.role, tr.party, err)
			case tag.RowsAffected() != tr.rows:
				t.Fatalf("%s as %s (%s): %d rows, want %d", tr.sql, tr.role, tr.party, tag.RowsAffected(), tr.rows)
			}
		})
	}
}

// TestServicePoolsActAsTheirRoles opens each service's pool as a process would
// (db.OpenPools: the roles do not log in, so SET ROLE) and reads the forms as a party of
// the service's audience: row-level security gives each what its party may see.
func TestServicePoolsActAsTheirRoles(t *testing.T) {
	url := dbtest.NewURL(t)
	owner := dbtest.OpenPool(t, url, "")
	rolesFixture(t, owner)
	ctx := context.Background()
	pools, err := db.OpenPools(ctx, url, 2, db.AllServices(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer pools.Close()
	for _, c := range []struct {
		service    db.Service
		role, code string
		forms      int
	}{
		{db.StoreService, "store", "S-JFB-1", 1}, {db.StoreService, "store", "S-CXL-1", 0}, {db.DeskService, "customs", "TFU", 2},
		{db.DeskService, "agency", "AG-CQ", 0}, {db.AuthorityService, "authority", "CQ", 2}, {db.JobsService, "system", "expiry", 2},
	} {
		t.Run(fmt.Sprintf("%s as %s/%s", c.service, c.role, c.code), func(t *testing.T) {
			pctx := db.WithParty(ctx, c.role, c.code)
			var who string
			var n int
			if err := db.Scope(pools[c.service]).QueryRow(pctx, `SELECT current_user, (SELECT count(*) FROM forms)`).Scan(&who, &n); err != nil {
				t.Fatal(err)
			}
			if who != c.service.Role() || n != c.forms {
				t.Errorf("acts as %s and sees %d forms, want %s and %d", who, n, c.service.Role(), c.forms)
			}
		})
	}
}

// TestOwnerCannotLogIn: every table of the schema belongs to taxrefund_owner (goose's own
// bookkeeping excepted), and neither it nor a service role can log in or bypass
// row-level security.
func TestOwnerCannotLogIn(t *testing.T) {
	url := dbtest.NewURL(t)
	owner := dbtest.OpenPool(t, url, "")
	ctx := context.Background()
	var tables int
	var others []string
	if err := owner.QueryRow(ctx, `
		SELECT count(*), coalesce(array_agg(c.relname || ':' || pg_get_userbyid(c.relowner)) FILTER (WHERE pg_get_userbyid(c.relowner) <> $1), '{}')
		  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S') AND c.relname NOT LIKE 'goose_db_version%'`, db.OwnerRole).
		Scan(&tables, &others); err != nil {
		t.Fatal(err)
	}
	if tables < 20 || len(others) > 0 {
		t.Errorf("%d tables; owned by another role than %s: %v", tables, db.OwnerRole, others)
	}
	for _, r := range []string{db.OwnerRole, db.StoreRole, db.DeskRole, db.AuthorityRole, db.JobsRole} {
		var login, bypass, super bool
		if err := owner.QueryRow(ctx, `SELECT rolcanlogin, rolbypassrls, rolsuper FROM pg_roles WHERE rolname = $1`, r).Scan(&login, &bypass, &super); err != nil {
			t.Fatalf("role %s: %v", r, err)
		}
		if login || bypass || super {
			t.Errorf("role %s: login %v, bypass row security %v, superuser %v; want none", r, login, bypass, super)
		}
	}
}

func TestParseServices(t *testing.T) {
	for in, want := range map[string]string{
		"all": "[store desk authority jobs]", "store": "[store]", "desk, store": "[store desk]",
		"authority,jobs,authority": "[authority jobs]", "": "error", "store,agency": "error", "Store": "error",
	} {
		got, err := db.ParseServices(in)
		if s := fmt.Sprint(got); (err != nil) != (want == "error") || (err == nil && s != want) {
			t.Errorf("ParseServices(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
}
