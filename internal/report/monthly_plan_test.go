package report

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"taxrefund/internal/dbtest"
)

// TestMonthlyReadsTheMonthAlone checks that the report reads a month's forms through the
// indexes on their dates, so that its cost follows the month, not the history: on two
// years of forms, each paid on its purchase date, written in date order (as the service
// writes them), the plan for one month reads forms by forms_purchase_month (issued in the
// month) and forms_paid_date (paid in it, issued in another), scans forms nowhere whole,
// and reads no payout nor payout row: a paid form carries its payout's figures
// (migrations/00033). The earlier forms of the query scanned every form ("issued in the
// month OR paid in it" over the join), then looked up each form's payout by key.
func TestMonthlyReadsTheMonthAlone(t *testing.T) {
	t.Parallel()
	pool := dbtest.NewPool(t)
	ctx := context.Background()
	// 12,000 forms and payouts over 2025-01-01..2026-12-06, about 500 a month, written
	// in date order (the forms without lines or entries: they are for the planner only).
	dbtest.Registry(t, pool)
	fill, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = fill.Rollback(ctx) }()
	for _, sql := range []string{
		`INSERT INTO accounts (code) VALUES ('authority:refund_expense'), ('travellers:refund_payable') ON CONFLICT DO NOTHING`,
		`WITH x AS (SELECT i, date '2025-01-01' + (i * 705 / 12000) AS d, gen_random_uuid() AS t FROM generate_series(1, 12000) AS i),
		 j AS (INSERT INTO journal_txns (id, idem_key, kind, ref, effective_date) SELECT t, 'plan:' || i, 'FORM_ISSUED', 'TR' || i, d FROM x),
		 p AS (INSERT INTO pending_transfers (id, debit_account, credit_account, amount)
		       SELECT t, (SELECT id FROM accounts WHERE code = 'authority:refund_expense'),
		              (SELECT id FROM accounts WHERE code = 'travellers:refund_payable'), 11 FROM x)
		 INSERT INTO forms (id, number, store_code, block_code, state, doc_type, doc_country, doc_index, doc_key_id,
		                    doc_cipher, doc_masked, doc_expiry, nationality, last_entry_date, purchase_date, issued_at,
		                    export_deadline, eligible_amount, gross_refund, pending_id)
		 SELECT gen_random_uuid(), 'TR' || i, 'S-JFB-1', '', 'ISSUED', 'PASSPORT', 'FR', '\x00', 'k1', '\x00', '*', d + 700,
		        'FR', d - 1, d, d, d + 90, 100, 11, t
		   FROM x`,
		payEveryForm,
	} {
		if _, err := fill.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	if err := fill.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE forms, payouts, payout_forms`); err != nil {
		t.Fatal(err)
	}
	month := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	p := explain(t, pool, monthlySettings, monthlySQL, month, month.AddDate(0, 1, 0))
	for _, want := range []string{"forms_purchase_month", "forms_paid_date"} {
		if !strings.Contains(p, want) {
			t.Errorf("the plan does not use %s:\n%s", want, p)
		}
	}
	for _, scan := range []string{"Seq Scan on forms", "payout"} {
		if strings.Contains(p, scan) {
			t.Errorf("the plan has %q:\n%s", scan, p)
		}
	}

	// The officials' trend: twelve months of payouts through the same index, no form read.
	tp := explain(t, pool, trendSettings, trendSQL, month.AddDate(0, -11, 0), month.AddDate(0, 1, 0))
	if !strings.Contains(tp, "payouts_paid_month") || strings.Contains(tp, "Seq Scan") || strings.Contains(tp, "forms") {
		t.Errorf("the trend's plan does not read the payouts through payouts_paid_month alone:\n%s", tp)
	}
}

// payEveryForm pays every unpaid form on its purchase date, as a desk does
// (internal/payouts): a payout and its payout row first, then the form confirmed and
// moved to REFUNDED naming the payout, which the database copies onto the form
// (migrations/00033). Each statement reads the one before it, so that they run in order.
const payEveryForm = `
WITH f AS (SELECT id, purchase_date AS d, gen_random_uuid() AS p FROM forms WHERE payout_id IS NULL),
 pay AS (INSERT INTO payouts (id, desk_code, agency_code, port_code, cashier, method, account_masked, receipt_reference,
                              doc_index, doc_type, doc_country, doc_masked, paid_at, paid_date, fee_rate, gross_refund, fee, net_refund)
         SELECT p, 'CKG-01', 'AG-CQ', 'CKG', 'c', 'CASH', '', 'r', '\x00', 'PASSPORT', 'FR', '*', d, d, 0.02, 0, 0, 0 FROM f
         RETURNING id),
 pf AS (INSERT INTO payout_forms (payout_id, form_id, eligible_amount, gross_refund, fee, net_refund)
        SELECT f.p, f.id, 100, 0, 0, 0 FROM f JOIN pay ON pay.id = f.p
        RETURNING payout_id, form_id)
UPDATE forms SET state = 'REFUNDED', verified_port = 'CKG', verified_officer = 'o', verified_at = forms.purchase_date,
       confirmed_eligible = 100, confirmed_gross = 0, payout_id = pf.payout_id
  FROM pf WHERE forms.id = pf.form_id`

// TestMonthlyCountsFormsPaidAfterTheStatistics: the statistics were taken before any form
// of the month was paid (as between two ANALYZEs on a busy day), then every form is paid.
// The report reads the payments from the forms' copy of their payouts, filled by the
// database as each form is paid, and counts every one, at the payout's port and agency;
// its plan reads no payout nor payout row, whatever the statistics believe (the report
// that looked them up per payout ran for minutes on a month of 136,700 payouts when the
// statistics said there were none, BENCH.md).
func TestMonthlyCountsFormsPaidAfterTheStatistics(t *testing.T) {
	t.Parallel()
	pool := dbtest.NewPool(t)
	ctx := context.Background()
	dbtest.Registry(t, pool)
	for _, sql := range []string{
		`ALTER TABLE forms SET (autovacuum_enabled = false)`,
		`ALTER TABLE payouts SET (autovacuum_enabled = false)`,
		`ALTER TABLE payout_forms SET (autovacuum_enabled = false)`,
		`INSERT INTO accounts (code) VALUES ('authority:refund_expense'), ('travellers:refund_payable') ON CONFLICT DO NOTHING`,
		// 3,000 forms of 2026-10, analyzed before any is paid.
		`WITH x AS (SELECT i, date '2026-10-01' + (i % 31) AS d, gen_random_uuid() AS t FROM generate_series(1, 3000) AS i),
		 j AS (INSERT INTO journal_txns (id, idem_key, kind, ref, effective_date) SELECT t, 'plan:' || i, 'FORM_ISSUED', 'TR' || i, d FROM x),
		 p AS (INSERT INTO pending_transfers (id, debit_account, credit_account, amount)
		       SELECT t, (SELECT id FROM accounts WHERE code = 'authority:refund_expense'),
		              (SELECT id FROM accounts WHERE code = 'travellers:refund_payable'), 11 FROM x)
		 INSERT INTO forms (id, number, store_code, block_code, state, doc_type, doc_country, doc_index, doc_key_id,
		                    doc_cipher, doc_masked, doc_expiry, nationality, last_entry_date, purchase_date, issued_at,
		                    export_deadline, eligible_amount, gross_refund, pending_id)
		 SELECT gen_random_uuid(), 'TR' || i, 'S-JFB-1', '', 'ISSUED', 'PASSPORT', 'FR', '\x00', 'k1', '\x00', '*', d + 700,
		        'FR', d - 1, d, d, d + 90, 100, 11, t
		   FROM x`,
		`ANALYZE forms, payouts, payout_forms`,
		// Then every form paid, the statistics not told.
		payEveryForm,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	month := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	rows, err := Monthly(ctx, pool, month)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rows {
		got[r.Dimension+" "+r.Key] = fmt.Sprintf("issued %d paid %d", r.FormsIssued, r.FormsPaid)
	}
	for k, want := range map[string]string{
		"block JFB": "issued 3000 paid 3000", "store S-JFB-1": "issued 3000 paid 3000", "nationality FR": "issued 3000 paid 3000",
		"port CKG": "issued 3000 paid 3000", "agency AG-CQ": "issued 3000 paid 3000",
	} {
		if got[k] != want {
			t.Errorf("%s: %q, want %q (all rows: %v)", k, got[k], want, got)
		}
	}

	if p := explain(t, pool, monthlySettings, monthlySQL, month, month.AddDate(0, 1, 0)); strings.Contains(p, "payout") {
		t.Errorf("the plan reads payouts:\n%s", p)
	}
}

// explain returns the plan of sql with args, in a transaction of its own (rolled back)
// with settings applied, as the report runs it.
func explain(t *testing.T, pool *pgxpool.Pool, settings, sql string, args ...any) string {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, settings); err != nil {
		t.Fatal(err)
	}
	rows, err := tx.Query(ctx, "EXPLAIN "+sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n") + "\n"
}
