package loadgen

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The desk baselines' forms, prepared before the run so that pgbench only pays (settle)
// or verifies and pays (desk) them. Transaction i of client c has key k = epoch·10^8 +
// c·10^6 + i for i in 1..perWarm (the warm-up) and 500000 + 1..perRun (the measured
// run); a key's forms are written as the service would have left them, so that every
// invariant holds before and after the baseline. prepareForms returns how many forms were
// new.

// deskKeys lists the keys of a desk baseline's transactions.
func deskKeys(epoch int64, clients, perWarm, perRun int) []int64 {
	var keys []int64
	for c := range clients {
		for i := 1; i <= perWarm; i++ {
			keys = append(keys, epoch*100_000_000+int64(c)*1_000_000+int64(i))
		}
		for i := 1; i <= perRun; i++ {
			keys = append(keys, epoch*100_000_000+int64(c)*1_000_000+500_000+int64(i))
		}
	}
	return keys
}

// deskForms is how one baseline's forms are written: source makes the temporary table
// bench_desk_src, one row per form not yet written, from the keys ($1), and steps write
// the forms' rows from it.
type deskForms struct {
	source string
	steps  []string
}

func prepareForms(ctx context.Context, pool *pgxpool.Pool, keys []int64, how deskForms) (int64, error) {
	var total int64
	const chunk = 20_000
	for len(keys) > 0 {
		n := min(chunk, len(keys))
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, how.source, keys[:n])
			if err != nil {
				return err
			}
			total += tag.RowsAffected()
			for _, sql := range how.steps {
				if _, err := tx.Exec(ctx, sql); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("prepare the desk baseline's forms: %w", err)
		}
		keys = keys[n:]
	}
	if _, err := pool.Exec(ctx, `ANALYZE forms, form_lines, form_invoices`); err != nil {
		return total, fmt.Errorf("analyze forms: %w", err)
	}
	return total, nil
}

// verifiedForms are the settlement-only baseline's (settle.pgbench): one VERIFIED form
// TRBD<k> per key, one line and one invoice, issued (pending transfer of G and its
// journal transaction) and confirmed by customs at CKG (the transfer posted in full, its
// resolution).
var verifiedForms = deskForms{
	source: `
		CREATE TEMP TABLE bench_desk_src ON COMMIT DROP AS
		SELECT k, 'TRBD' || lpad(k::text, 15, '0') AS number, gen_random_uuid() AS form_id,
		       gen_random_uuid() AS issue_txn, gen_random_uuid() AS verify_txn,
		       round((200 + random() * 1800)::numeric, 2) AS amount,
		       sha256(convert_to('bench-desk-traveller:' || k, 'UTF8')) AS doc_index,
		       (now() AT TIME ZONE 'Asia/Shanghai')::date AS today
		  FROM unnest($1::bigint[]) AS k
		 WHERE NOT EXISTS (SELECT 1 FROM forms f WHERE f.number = 'TRBD' || lpad(k::text, 15, '0'))`,
	steps: verifiedSteps,
}

var verifiedSteps = []string{
	`ALTER TABLE bench_desk_src ADD COLUMN gross numeric`,
	`UPDATE bench_desk_src SET gross = round(amount * 0.11, 2)`,
	`INSERT INTO journal_txns (id, idem_key, kind, ref, effective_date)
	 SELECT issue_txn, 'form:' || number || ':issue', 'FORM_ISSUED', number, today FROM bench_desk_src
	 UNION ALL
	 SELECT verify_txn, 'form:' || number || ':verify', 'EXPORT_CONFIRMED', number, today FROM bench_desk_src`,
	// The pending entries; the confirmation releases the pending layer and posts G.
	`WITH a AS (SELECT (SELECT id FROM accounts WHERE code = 'authority:refund_expense') AS expense,
	                   (SELECT id FROM accounts WHERE code = 'travellers:refund_payable') AS payable)
	 INSERT INTO journal_entries (txn_id, account_id, pending, side, amount)
	 SELECT e.txn, e.account, e.pending, e.side::"char", s.gross
	   FROM bench_desk_src s, a, LATERAL (VALUES
	        (s.issue_txn, a.expense, true, 'D'), (s.issue_txn, a.payable, true, 'C'),
	        (s.verify_txn, a.expense, true, 'C'), (s.verify_txn, a.payable, true, 'D'),
	        (s.verify_txn, a.expense, false, 'D'), (s.verify_txn, a.payable, false, 'C')) AS e(txn, account, pending, side)`,
	insertPendingSQL,
	`INSERT INTO forms (id, number, store_code, block_code, state, doc_type, doc_country, doc_index, doc_key_id,
	                    doc_cipher, doc_masked, doc_expiry, nationality, last_entry_date, purchase_date, issued_at,
	                    export_deadline, eligible_amount, gross_refund, pending_id, verified_port, verified_officer,
	                    verified_at, confirmed_eligible, confirmed_gross)
	 SELECT form_id, number, 'BENCH-0001', '', 'VERIFIED', 'PASSPORT', 'FR', doc_index, 'k1',
	        substring(sha512(doc_index) FROM 1 FOR 37), '*****' || lpad((k % 10000)::text, 4, '0'), today + 730, 'FR',
	        today - 10, today, now(), today + 90, amount, gross, issue_txn, 'CKG', 'officer-01', now(), amount, gross
	   FROM bench_desk_src`,
	`INSERT INTO form_lines (form_id, line_no, description, category, vat_rate, refund_rate, quantity, amount, invoice_number, confirmed_qty)
	 SELECT form_id, 1, 'bench item', 'GENERAL', 0.13, 0.11, 1, amount, 'BD' || k, 1 FROM bench_desk_src`,
	`INSERT INTO form_invoices (form_id, invoice_number, invoice_date, store_code)
	 SELECT form_id, 'BD' || k, today, 'BENCH-0001' FROM bench_desk_src`,
	`INSERT INTO pending_resolutions (pending_id, outcome, posted_amount, txn_id)
	 SELECT issue_txn, 'POSTED', gross, verify_txn FROM bench_desk_src`,
}

// issuedForms are the visit baseline's (desk.pgbench): per key, the traveller
// sha256('bench-desk-visit:' || k) with one ISSUED form, or two when k % 5 = 0 (every
// fifth visit of a client), each with three lines (two at 13% VAT, one at 9%; 80.00 to
// 2,000.00, one to three units) on two invoices, its pending transfer of G and the
// journal transaction that opened it, as IssueForm leaves a form. Form numbers are
// TRBV<k><j>, j the form's number within the visit.
var issuedForms = deskForms{
	source: `
		CREATE TEMP TABLE bench_desk_src ON COMMIT DROP AS
		SELECT k, 'TRBV' || lpad(k::text, 15, '0') || j AS number, gen_random_uuid() AS form_id,
		       gen_random_uuid() AS issue_txn, sha256(convert_to('bench-desk-visit:' || k, 'UTF8')) AS doc_index,
		       (now() AT TIME ZONE 'Asia/Shanghai')::date AS today
		  FROM unnest($1::bigint[]) AS k, generate_series(1, CASE WHEN k % 5 = 0 THEN 2 ELSE 1 END) AS j
		 WHERE NOT EXISTS (SELECT 1 FROM forms f WHERE f.number = 'TRBV' || lpad(k::text, 15, '0') || j)`,
	steps: []string{
		`CREATE TEMP TABLE bench_desk_lines ON COMMIT DROP AS
		 SELECT s.form_id, n AS line_no, round((80 + random() * 1920)::numeric, 2) AS amount,
		        CASE WHEN n = 3 THEN 0.09 ELSE 0.13 END AS vat_rate, CASE WHEN n = 3 THEN 0.08 ELSE 0.11 END AS refund_rate,
		        1 + floor(random() * 3)::int AS quantity, s.number || '-' || (1 + (n - 1) % 2) AS invoice_number
		   FROM bench_desk_src s, generate_series(1, 3) AS n`,
		`ALTER TABLE bench_desk_src ADD COLUMN eligible numeric, ADD COLUMN gross numeric`,
		`UPDATE bench_desk_src s SET eligible = l.eligible, gross = l.gross
		   FROM (SELECT form_id, sum(amount) AS eligible, round(sum(amount * refund_rate), 2) AS gross
		           FROM bench_desk_lines GROUP BY form_id) l
		  WHERE l.form_id = s.form_id`,
		`INSERT INTO journal_txns (id, idem_key, kind, ref, effective_date)
		 SELECT issue_txn, 'form:' || number || ':issue', 'FORM_ISSUED', number, today FROM bench_desk_src`,
		`WITH a AS (SELECT (SELECT id FROM accounts WHERE code = 'authority:refund_expense') AS expense,
		                   (SELECT id FROM accounts WHERE code = 'travellers:refund_payable') AS payable)
		 INSERT INTO journal_entries (txn_id, account_id, pending, side, amount)
		 SELECT s.issue_txn, e.account, true, e.side::"char", s.gross
		   FROM bench_desk_src s, a, LATERAL (VALUES (a.expense, 'D'), (a.payable, 'C')) AS e(account, side)`,
		insertPendingSQL,
		`INSERT INTO forms (id, number, store_code, block_code, state, doc_type, doc_country, doc_index, doc_key_id,
		                    doc_cipher, doc_masked, doc_expiry, nationality, last_entry_date, purchase_date, issued_at,
		                    export_deadline, eligible_amount, gross_refund, pending_id)
		 SELECT form_id, number, 'BENCH-0001', '', 'ISSUED', 'PASSPORT', 'FR', doc_index, 'k1',
		        substring(sha512(doc_index) FROM 1 FOR 37), '*****' || lpad((k % 10000)::text, 4, '0'), today + 730, 'FR',
		        today - 10, today, now(), today + 90, eligible, gross, issue_txn
		   FROM bench_desk_src`,
		`INSERT INTO form_lines (form_id, line_no, description, category, vat_rate, refund_rate, quantity, amount, invoice_number)
		 SELECT form_id, line_no, 'bench item', 'GENERAL', vat_rate, refund_rate, quantity, amount, invoice_number
		   FROM bench_desk_lines`,
		`INSERT INTO form_invoices (form_id, invoice_number, invoice_date, store_code)
		 SELECT DISTINCT l.form_id, l.invoice_number, s.today, 'BENCH-0001'
		   FROM bench_desk_lines l JOIN bench_desk_src s USING (form_id)`,
	},
}

// insertPendingSQL opens the pending transfer of G of every form in bench_desk_src, as
// issuing does.
const insertPendingSQL = `INSERT INTO pending_transfers (id, debit_account, credit_account, amount)
	SELECT issue_txn, (SELECT id FROM accounts WHERE code = 'authority:refund_expense'),
	       (SELECT id FROM accounts WHERE code = 'travellers:refund_payable'), gross
	  FROM bench_desk_src`
