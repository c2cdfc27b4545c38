package report

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"taxrefund/internal/dbtest"
)

// TestReconcileReadsTheMonthAlone checks that the month's reconciliation reads that
// month's rows, not all of history, so that the officials' month page costs what the
// month holds: on two years of forms (two in three confirmed the day after their
// purchase), payouts and journal transactions written in date order, the plan of the
// sides and of every exception query scans none of forms, payouts and payout_forms
// whole (the confirmations through forms_verified_at, 00030: the earlier filter on the
// local date of verified_at had no index path and scanned every form), and the trial
// balance reads the journal entries of the transactions after the month alone, through
// journal_txns_effective_month, not every entry of history.
func TestReconcileReadsTheMonthAlone(t *testing.T) {
	t.Parallel()
	pool := dbtest.NewPool(t)
	ctx := context.Background()
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
		 e AS (INSERT INTO journal_entries (txn_id, account_id, side, amount, pending)
		       SELECT t, (SELECT id FROM accounts WHERE code = 'authority:refund_expense'), 'D', 11, i % 2 = 0 FROM x
		       UNION ALL
		       SELECT t, (SELECT id FROM accounts WHERE code = 'travellers:refund_payable'), 'C', 11, i % 2 = 0 FROM x),
		 p AS (INSERT INTO pending_transfers (id, debit_account, credit_account, amount)
		       SELECT t, (SELECT id FROM accounts WHERE code = 'authority:refund_expense'),
		              (SELECT id FROM accounts WHERE code = 'travellers:refund_payable'), 11 FROM x)
		 INSERT INTO forms (id, number, store_code, block_code, state, doc_type, doc_country, doc_index, doc_key_id,
		                    doc_cipher, doc_masked, doc_expiry, nationality, last_entry_date, purchase_date, issued_at,
		                    export_deadline, eligible_amount, gross_refund, pending_id, verified_at, confirmed_eligible, confirmed_gross)
		 SELECT gen_random_uuid(), 'TR' || i, 'S-JFB-1', '', CASE WHEN i % 3 = 0 THEN 'ISSUED' ELSE 'VERIFIED' END, 'PASSPORT', 'FR', '\x00', 'k1', '\x00', '*', d + 700,
		        'FR', d - 1, d, d, d + 90, 100, 11, t,
		        CASE WHEN i % 3 <> 0 THEN d + 1 + time '10:00' END, CASE WHEN i % 3 <> 0 THEN 100 END, CASE WHEN i % 3 <> 0 THEN 11 END
		   FROM x`,
		`INSERT INTO payouts (id, desk_code, agency_code, cashier, method, account_masked, receipt_reference, doc_index,
		                      doc_type, doc_country, doc_masked, paid_at, paid_date, fee_rate, gross_refund, fee, net_refund)
		 SELECT gen_random_uuid(), 'CKG-01', 'AG-CQ', 'c', 'CASH', '', 'r', '\x00', 'PASSPORT', 'FR', '*', d, d, 0.02, 0, 0, 0
		   FROM generate_series(1, 12000) AS i, LATERAL (SELECT date '2025-01-01' + (i * 705 / 12000) AS d) AS x`,
		// Each confirmed form paid by a payout of its day (for the planner: the states are
		// not the invariants').
		`INSERT INTO payout_forms (payout_id, form_id, eligible_amount, gross_refund, fee, net_refund)
		 SELECT p.id, f.id, 100, 11, 0, 11
		   FROM (SELECT id, row_number() OVER (ORDER BY paid_date, id) AS n FROM payouts) p
		   JOIN (SELECT id, row_number() OVER (ORDER BY purchase_date, number) AS n FROM forms WHERE verified_at IS NOT NULL) f ON f.n = p.n`,
	} {
		if _, err := fill.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	if err := fill.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE forms, payouts, payout_forms, journal_txns, journal_entries, account_balances`); err != nil {
		t.Fatal(err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	explain := func(sql string, args pgx.NamedArgs) string {
		t.Helper()
		rows, err := tx.Query(ctx, "EXPLAIN "+sql, args)
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
		return plan.String()
	}
	// October 2026, reconciled on 2026-11-20.
	month := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	now := time.Date(2026, 11, 20, 4, 0, 0, 0, time.UTC)
	args := pgx.NamedArgs{"start": month, "end": month.AddDate(0, 1, 0), "days": 30, "now": now, "limit": 20}
	queries := map[string]string{"sides": sidesSQL}
	for _, x := range exceptionSQL {
		queries[x.kind] = summarized(x.sql)
	}
	for name, sql := range queries {
		p := explain(sql, args)
		for _, scan := range []string{"Seq Scan on forms", "Seq Scan on payouts", "Seq Scan on payout_forms"} {
			if strings.Contains(p, scan) {
				t.Errorf("%s: the plan has a %s:\n%s", name, scan, p)
			}
		}
		if name == "sides" || name == "CONFIRMED_UNPAID" || name == "VOIDED_AFTER_CONFIRMATION" {
			if !strings.Contains(p, "forms_verified_at") {
				t.Errorf("%s: the plan does not read the month's confirmations through forms_verified_at:\n%s", name, p)
			}
		}
	}
	p := explain(trialBalanceSQL, pgx.NamedArgs{"end": month.AddDate(0, 1, 0)})
	if !strings.Contains(p, "journal_txns_effective_month") || strings.Contains(p, "Seq Scan on journal_txns") || strings.Contains(p, "Seq Scan on journal_entries") {
		t.Errorf("the trial balance does not read the entries after the month alone:\n%s", p)
	}
}
