package loadgen

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"taxrefund/internal/dbtest"
	"taxrefund/seeds"
)

// benchDB returns a fresh migrated and seeded database with three bench stores.
func benchDB(t *testing.T) (*pgxpool.Pool, string) {
	t.Helper()
	url := dbtest.NewURL(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := pool.Exec(ctx, seeds.Demo); err != nil {
		t.Fatalf("seed: %v", err)
	}
	if err := Setup(ctx, pool, SetupConfig{Stores: 3, CertDir: t.TempDir(), Log: io.Discard}); err != nil {
		t.Fatalf("setup: %v", err)
	}
	// Idempotent.
	if err := Setup(ctx, pool, SetupConfig{Stores: 3, CertDir: t.TempDir(), Log: io.Discard}); err != nil {
		t.Fatalf("setup again: %v", err)
	}
	return pool, url
}

// The pgbench baselines write through the real tables and triggers and leave a consistent
// ledger: every invariant holds after them, and the desk baseline paid each prepared form
// exactly once.
func TestBaselinesKeepInvariants(t *testing.T) {
	if _, err := findPgbench(); err != nil {
		t.Skip(err)
	}
	pool, url := benchDB(t)
	ctx := context.Background()
	cfg := BaselineConfig{DatabaseURL: url, Concurrency: 2, Threads: 1, Duration: time.Second, Stores: 3,
		RateHint: 20, WorkDir: t.TempDir(), Log: io.Discard}

	cfg.Scenario = "issue"
	r, err := Baseline(ctx, pool, cfg)
	if err != nil {
		t.Fatalf("issue baseline: %v", err)
	}
	var forms, lines, invoices, idem, audit, entries int64
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM forms), (SELECT count(*) FROM form_lines),
		(SELECT count(*) FROM form_invoices), (SELECT count(*) FROM idempotency_keys),
		(SELECT count(*) FROM audit_events WHERE action = 'FORM_ISSUED'),
		(SELECT count(*) FROM journal_entries)`).Scan(&forms, &lines, &invoices, &idem, &audit, &entries); err != nil {
		t.Fatal(err)
	}
	if r.Ops == 0 || forms != r.Ops || idem != forms || audit != forms || entries != 2*forms || lines < forms || invoices < forms {
		t.Errorf("issue baseline: %d tx wrote %d forms, %d lines, %d invoices, %d idempotency records, %d FORM_ISSUED audit events, %d entries",
			r.Ops, forms, lines, invoices, idem, audit, entries)
	}
	if r.Latency.P50 <= 0 || r.OpsPerSec <= 0 {
		t.Errorf("issue baseline result %+v: want throughput and latency", r)
	}

	// The immediate refund's baseline issues a form at an odd-numbered store and prepays
	// it at its block's refund point, in one statement: one of each row per transaction.
	cfg.Scenario = "immediate"
	r, err = Baseline(ctx, pool, cfg)
	if err != nil {
		t.Fatalf("immediate baseline: %v", err)
	}
	var prepaid, prepaidForms, payTxns, payAudit, payIdem int64
	if err := pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM prepayments p JOIN desks d ON d.code = p.desk_code AND d.kind = 'REFUND_POINT'
		  WHERE p.state = 'PREPAID' AND p.net_refund = p.gross_refund - p.fee AND p.fee > 0),
		(SELECT count(*) FROM prepayments p JOIN forms f ON f.id = p.form_id JOIN stores s ON s.code = f.store_code
		  WHERE s.immediate_refund AND f.state = 'ISSUED' AND f.doc_index = p.doc_index AND f.gross_refund = p.gross_refund),
		(SELECT count(*) FROM journal_txns WHERE kind = 'IMMEDIATE_REFUND_PAID'),
		(SELECT count(*) FROM audit_events WHERE action = 'IMMEDIATE_REFUND_PAID'),
		(SELECT count(*) FROM idempotency_keys WHERE method = 'PayImmediateRefund')`).Scan(
		&prepaid, &prepaidForms, &payTxns, &payAudit, &payIdem); err != nil {
		t.Fatal(err)
	}
	if r.Ops == 0 || prepaid != r.Ops || prepaidForms != r.Ops || payTxns != r.Ops || payAudit != r.Ops || payIdem != r.Ops {
		t.Errorf("immediate baseline: %d tx wrote %d prepayments (%d of forms of enabled stores), %d journal transactions, %d audit events, %d idempotency records",
			r.Ops, prepaid, prepaidForms, payTxns, payAudit, payIdem)
	}

	// The visit baseline verifies and pays every form it prepared, one payout per visit:
	// 20 tx/s × 1s over 2 clients is 10 visits each, of which every fifth (i = 5, 10) has
	// two forms. The warm-up is off, so these are all the visits.
	cfg.Scenario = "desk"
	r, err = Baseline(ctx, pool, cfg)
	if err != nil {
		t.Fatalf("desk baseline: %v", err)
	}
	var visitForms, paid, payouts, payoutForms, confirmedLines, lines3, verifyRecords, entries3 int64
	if err := pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM forms WHERE number LIKE 'TRBV%'),
		(SELECT count(*) FROM forms WHERE number LIKE 'TRBV%' AND state = 'REFUNDED' AND verified_port = 'CKG'
		        AND confirmed_gross = gross_refund AND confirmed_gross > 0),
		(SELECT count(*) FROM payouts),
		(SELECT count(*) FROM payout_forms),
		(SELECT count(*) FROM form_lines l JOIN forms f ON f.id = l.form_id WHERE f.number LIKE 'TRBV%' AND l.confirmed_qty = l.quantity),
		(SELECT count(*) FROM form_lines l JOIN forms f ON f.id = l.form_id WHERE f.number LIKE 'TRBV%'),
		(SELECT count(*) FROM idempotency_keys WHERE method = 'VerifyExport'),
		(SELECT count(*) FROM journal_txns WHERE kind = 'EXPORT_CONFIRMED')`).Scan(
		&visitForms, &paid, &payouts, &payoutForms, &confirmedLines, &lines3, &verifyRecords, &entries3); err != nil {
		t.Fatal(err)
	}
	if r.Ops != 20 || visitForms != 24 || paid != 24 || payouts != 20 || payoutForms != 24 {
		t.Errorf("desk baseline: %d tx, %d forms prepared, %d verified and paid, %d payouts of %d forms; want 20 tx, 24 forms paid by 20 payouts",
			r.Ops, visitForms, paid, payouts, payoutForms)
	}
	if lines3 != 72 || confirmedLines != 72 || verifyRecords != 24 || entries3 != 24 {
		t.Errorf("desk baseline: %d lines (%d confirmed), %d verification records, %d verification transactions; want 72, 72, 24, 24",
			lines3, confirmedLines, verifyRecords, entries3)
	}
	var twoForms int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT payout_id FROM payout_forms GROUP BY payout_id HAVING count(*) = 2) p`).Scan(&twoForms); err != nil || twoForms != 4 {
		t.Errorf("%d payouts of two forms (%v), want 4", twoForms, err)
	}

	// The settlement-only baseline pays pre-verified forms, one per transaction.
	cfg.Scenario = "settle"
	r, err = Baseline(ctx, pool, cfg)
	if err != nil {
		t.Fatalf("settle baseline: %v", err)
	}
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM forms WHERE number LIKE 'TRBD%' AND state = 'REFUNDED'),
		(SELECT count(*) FROM payouts)`).Scan(&paid, &payouts); err != nil {
		t.Fatal(err)
	}
	if r.Ops != 20 || paid != 20 || payouts != 40 {
		t.Errorf("settle baseline: %d tx, %d forms paid, %d payouts in all; want 20, 20, 40", r.Ops, paid, payouts)
	}
	// Again on the same database: each prepares forms of its own.
	time.Sleep(time.Second) // a new epoch
	for _, sc := range []string{"desk", "settle"} {
		cfg.Scenario = sc
		if _, err := Baseline(ctx, pool, cfg); err != nil {
			t.Fatalf("%s baseline again: %v", sc, err)
		}
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM payouts`).Scan(&payouts); err != nil || payouts != 80 {
		t.Errorf("%d payouts after the desk baselines twice (%v), want 80", payouts, err)
	}
	var out strings.Builder
	if err := Check(ctx, pool, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
}

// Fill writes forms the invariants accept and tops up to the total asked for, with the
// triggers (an ordinary user) and without them (a superuser: the balances are then
// maintained by Fill itself).
func TestFillKeepsInvariants(t *testing.T) {
	pool, url := benchDB(t)
	ctx := context.Background()
	cfg := FillConfig{Total: 250, Batch: 100, Workers: 2, Stores: 3, Keys: testKeys(t), Log: io.Discard}
	if err := Fill(ctx, pool, cfg); err != nil {
		t.Fatal(err)
	}
	checkFilled(t, pool, 250)

	// The same database as the server's superuser (TEST_DATABASE_URL's user).
	su, err := pgxpool.ParseConfig(dbtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	own, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	su.ConnConfig.Database = own.Database
	var isSuper bool
	suPool, err := pgxpool.NewWithConfig(ctx, su)
	if err == nil {
		defer suPool.Close()
		err = suPool.QueryRow(ctx, `SELECT rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&isSuper)
	}
	if err != nil || !isSuper {
		t.Skipf("no superuser to fill without triggers (%v)", err)
	}
	cfg.Total = 600
	if err := Fill(ctx, suPool, cfg); err != nil {
		t.Fatal(err)
	}
	checkFilled(t, suPool, 600)
}

func checkFilled(t *testing.T, pool *pgxpool.Pool, want int64) {
	t.Helper()
	ctx := context.Background()
	n, err := countForms(ctx, pool)
	if err != nil || n != want {
		t.Fatalf("%d forms after fill (%v), want %d", n, err, want)
	}
	var blocks int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM forms f JOIN stores s ON s.code = f.store_code AND s.block_code = f.block_code`).Scan(&blocks); err != nil {
		t.Fatal(err)
	}
	if blocks != want {
		t.Errorf("%d of %d forms carry their store's block", blocks, want)
	}
	var out strings.Builder
	if err := Check(ctx, pool, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
}

// Setup enables the odd-numbered bench stores for immediate refund, and keeps them so on
// a second run.
func TestSetupEnablesOddStoresForImmediateRefund(t *testing.T) {
	pool, _ := benchDB(t) // sets up three stores, twice
	rows, err := pool.Query(context.Background(), `SELECT code FROM stores WHERE code LIKE 'BENCH-%' AND immediate_refund ORDER BY code`)
	if err != nil {
		t.Fatal(err)
	}
	enabled, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(enabled, ",") != "BENCH-0001,BENCH-0003" {
		t.Errorf("bench stores enabled for immediate refund: %v, want BENCH-0001 and BENCH-0003", enabled)
	}
}

// Before a window the database is vacuumed and analyzed: a table's statistics count the
// rows the earlier windows left, its dead rows are gone, and the note says so.
func TestTidyVacuumsAndAnalyzesBeforeAWindow(t *testing.T) {
	pool, _ := benchDB(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `CREATE TABLE tidy_probe (id int PRIMARY KEY);
		INSERT INTO tidy_probe SELECT generate_series(1, 1000); DELETE FROM tidy_probe WHERE id > 400`); err != nil {
		t.Fatal(err)
	}
	note, err := tidy(ctx, pool, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var auto string
	var tuples float64
	var vacuumed, analyzed bool
	if err := pool.QueryRow(ctx, `SELECT current_setting('autovacuum'), c.reltuples,
		s.last_vacuum IS NOT NULL, s.last_analyze IS NOT NULL
		FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.relname = 'tidy_probe'`).Scan(&auto, &tuples, &vacuumed, &analyzed); err != nil {
		t.Fatal(err)
	}
	if tuples != 400 || !vacuumed || !analyzed {
		t.Errorf("after tidy: reltuples %v (want 400), vacuumed %v, analyzed %v", tuples, vacuumed, analyzed)
	}
	if !strings.Contains(note, "vacuumed and analyzed before the window") || strings.Contains(note, "autovacuum is off") != (auto != "on") {
		t.Errorf("note %q with autovacuum %s", note, auto)
	}
}
