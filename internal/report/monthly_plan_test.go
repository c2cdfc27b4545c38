package report

import (
	"context"
	"strings"
	"testing"
	"time"

	"taxrefund/internal/dbtest"
)

// TestMonthlyReadsTheMonthAlone checks that the report reads a month's forms and payouts
// through the range indexes on their dates, so that its cost follows the month, not the
// history: on two years of forms and payouts written in date order (as the service
// writes them), the plan for one month reads forms by forms_purchase_month and payouts by
// payouts_paid_month, and scans none of forms, payouts and payout_forms whole. The earlier form of the query
// ("issued in the month OR paid in it" over the join) had no index path and scanned every
// form.
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
		`INSERT INTO payouts (id, desk_code, agency_code, cashier, method, account_masked, receipt_reference, doc_index,
		                      doc_type, doc_country, doc_masked, paid_at, paid_date, fee_rate, gross_refund, fee, net_refund)
		 SELECT gen_random_uuid(), 'CKG-01', 'AG-CQ', 'c', 'CASH', '', 'r', '\x00', 'PASSPORT', 'FR', '*', d, d, 0.02, 0, 0, 0
		   FROM generate_series(1, 12000) AS i, LATERAL (SELECT date '2025-01-01' + (i * 705 / 12000) AS d) AS x`,
	} {
		if _, err := fill.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	if err := fill.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE forms, payouts`); err != nil {
		t.Fatal(err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, monthlySettings); err != nil {
		t.Fatal(err)
	}
	month := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	rows, err := tx.Query(ctx, "EXPLAIN "+monthlySQL, month, month.AddDate(0, 1, 0))
	if err != nil {
		t.Fatal(err)
	}
	var plan strings.Builder
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan.WriteString(line + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	p := plan.String()
	for _, want := range []string{"forms_purchase_month", "payouts_paid_month"} {
		if !strings.Contains(p, want) {
			t.Errorf("the plan does not use %s:\n%s", want, p)
		}
	}
	for _, scan := range []string{"Seq Scan on forms", "Seq Scan on payouts", "Seq Scan on payout_forms"} {
		if strings.Contains(p, scan) {
			t.Errorf("the plan has a %s:\n%s", scan, p)
		}
	}

	// The officials' trend: twelve months of payouts through the same index, no form read.
	if _, err := tx.Exec(ctx, trendSettings); err != nil {
		t.Fatal(err)
	}
	var trend strings.Builder
	rows, err = tx.Query(ctx, "EXPLAIN "+trendSQL, month.AddDate(0, -11, 0), month.AddDate(0, 1, 0))
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		trend.WriteString(line + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if tp := trend.String(); !strings.Contains(tp, "payouts_paid_month") || strings.Contains(tp, "Seq Scan") || strings.Contains(tp, "forms") {
		t.Errorf("the trend's plan does not read the payouts through payouts_paid_month alone:\n%s", tp)
	}
}

// TestMonthlyLooksUpAPayoutsFormsByKey: the payouts branch finds a payout's forms by the
// payout's key, then each form by its key, whatever the planner believes. Here, as after a
// busy day between two ANALYZEs, the statistics say the month has no payouts and no form of
// another month; left free, the planner scanned the other months' forms through the range
// index once per payout (a BitmapOr of the two sides of the month), which ran for minutes
// on a month of 136,700 payouts (BENCH.md).
func TestMonthlyLooksUpAPayoutsFormsByKey(t *testing.T) {
	t.Parallel()
	pool := dbtest.NewPool(t)
	ctx := context.Background()
	dbtest.Registry(t, pool)
	for _, sql := range []string{
		`ALTER TABLE payouts SET (autovacuum_enabled = false)`,
		`ALTER TABLE payout_forms SET (autovacuum_enabled = false)`,
		`INSERT INTO accounts (code) VALUES ('authority:refund_expense'), ('travellers:refund_payable') ON CONFLICT DO NOTHING`,
		// 3,000 forms of 2026-10, analyzed before any payout exists.
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
		// Then a payout for each form, in the same month, the statistics not told.
		`WITH f AS (SELECT id, purchase_date AS d, gen_random_uuid() AS p FROM forms),
		 p AS (INSERT INTO payouts (id, desk_code, agency_code, cashier, method, account_masked, receipt_reference, doc_index,
		                            doc_type, doc_country, doc_masked, paid_at, paid_date, fee_rate, gross_refund, fee, net_refund)
		       SELECT p, 'CKG-01', 'AG-CQ', 'c', 'CASH', '', 'r', '\x00', 'PASSPORT', 'FR', '*', d, d, 0.02, 0, 0, 0 FROM f)
		 INSERT INTO payout_forms (payout_id, form_id, eligible_amount, gross_refund, fee, net_refund) SELECT p, id, 100, 0, 0, 0 FROM f`,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, monthlySettings); err != nil {
		t.Fatal(err)
	}
	month := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	rows, err := tx.Query(ctx, "EXPLAIN "+monthlySQL, month, month.AddDate(0, 1, 0))
	if err != nil {
		t.Fatal(err)
	}
	var plan strings.Builder
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan.WriteString(line + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	p := plan.String()
	if strings.Contains(p, "BitmapOr") || strings.Count(p, "forms_purchase_month") > 1 {
		t.Errorf("the payouts branch looks for other months' forms through the range index:\n%s", p)
	}
	for _, want := range []string{"payout_forms_pkey", "forms_pkey"} {
		if !strings.Contains(p, want) {
			t.Errorf("the payouts branch does not use %s:\n%s", want, p)
		}
	}
}
