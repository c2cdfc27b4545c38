// Package report gives tax officials a month's figures (DOMAIN.md §7): the monthly
// report by block, store, port, agency and nationality, its CSV and XLSX exports, and the
// three-way reconciliation of store issuance, customs confirmations and agency payouts.
package report

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
)

// Dimensions, in report order.
var Dimensions = []string{"block", "store", "port", "agency", "nationality"}

// Row is a month's figures for one value of one dimension. Issued figures count the
// forms issued in the month (port and agency: where they were confirmed and paid, "" if
// not yet); paid figures count the refunds paid in the month.
type Row struct {
	Dimension        string
	Key              string
	FormsIssued      int64
	Eligible         decimal.Decimal
	Gross            decimal.Decimal
	FormsVoided      int64
	FormsExpired     int64
	FormsPaid        int64
	PaidGross        decimal.Decimal
	PaidFee          decimal.Decimal
	PaidNet          decimal.Decimal
	FormsOutstanding int64
	OutstandingGross decimal.Decimal
}

// monthlySQL reads every form issued or paid in the month once, with its payout if it has
// one, and aggregates the lot in a single pass into two small grouping sets: by store
// (and its block), and by nationality, port and agency. The five dimensions are then
// rolled up from those few hundred rows. Joining twice (forms issued, refunds paid) and
// grouping the 1.6 million rows by all five dimensions at once took twice the CPU: every
// numeric sum ran five times per row.
//
// A form counts as issued in the month by its purchase date, and its port and agency are
// where it was confirmed and paid ("" if not yet); it counts as paid in the month by its
// payout's date, at the payout's port and agency. Both can hold for the same form.
//
// The month is read alone, whatever the history: the forms issued in it through the range
// index on their purchase date, then the forms paid in it but issued in another month
// through the range index on the payouts' date (migrations/00016). One condition
// "issued in the month OR paid in it" over the join could use neither index and read
// every form ever issued.
const monthlySQL = `
WITH joined AS (
    SELECT f.block_code, f.store_code, f.nationality, coalesce(f.verified_port, '') AS verified_port,
           coalesce(pp.port_code, '') AS paid_port, coalesce(pp.agency_code, '') AS agency, f.state,
           f.eligible_amount, f.gross_refund, f.confirmed_gross,
           pp.gross_refund AS paid_gross, pp.fee AS paid_fee, pp.net_refund AS paid_net,
           true AS issued,
           coalesce(pp.paid_date >= $1 AND pp.paid_date < $2, false) AS paid
      FROM forms f
      -- The form's payout, looked up by the form (OFFSET 0 keeps the planner from hashing
      -- every payout ever made instead).
      LEFT JOIN LATERAL (
            SELECT p.port_code, p.agency_code, p.paid_date, pf.gross_refund, pf.fee, pf.net_refund
              FROM payout_forms pf JOIN payouts p ON p.id = pf.payout_id
             WHERE pf.form_id = f.id
            OFFSET 0) pp ON true
     WHERE f.purchase_date >= $1 AND f.purchase_date < $2
    UNION ALL
    SELECT pf.block_code, pf.store_code, pf.nationality, coalesce(pf.verified_port, ''),
           coalesce(p.port_code, ''), p.agency_code, pf.state,
           pf.eligible_amount, pf.gross_refund, pf.confirmed_gross,
           pf.paid_gross, pf.paid_fee, pf.paid_net,
           false, true
      FROM payouts p
      -- The payout's forms issued in another month, looked up by the payout: its rows by
      -- the payout's key, then each row's form by its key. Both OFFSET 0 fences keep that
      -- order: left free, the planner (with a month's payouts underestimated, as between
      -- two ANALYZEs) scanned the forms of every other month through the range index once
      -- per payout, and a month of 136,700 payouts ran for minutes (BENCH.md).
      CROSS JOIN LATERAL (
            SELECT f.block_code, f.store_code, f.nationality, f.verified_port, f.state,
                   f.eligible_amount, f.gross_refund, f.confirmed_gross,
                   x.gross_refund AS paid_gross, x.fee AS paid_fee, x.net_refund AS paid_net
              FROM (SELECT * FROM payout_forms y WHERE y.payout_id = p.id OFFSET 0) x
             CROSS JOIN LATERAL (SELECT * FROM forms z WHERE z.id = x.form_id OFFSET 0) f
             WHERE NOT (f.purchase_date >= $1 AND f.purchase_date < $2)
            OFFSET 0) pf
     WHERE p.paid_date >= $1 AND p.paid_date < $2
), parts AS (
    SELECT GROUPING(block_code, nationality) AS part, block_code, store_code, nationality, verified_port, paid_port, agency,
           count(*) FILTER (WHERE issued) AS issued, sum(eligible_amount) FILTER (WHERE issued) AS eligible,
           sum(gross_refund) FILTER (WHERE issued) AS gross,
           count(*) FILTER (WHERE issued AND state = 'VOIDED') AS voided,
           count(*) FILTER (WHERE issued AND state = 'EXPIRED') AS expired,
           count(*) FILTER (WHERE issued AND state IN ('ISSUED', 'VERIFIED')) AS outstanding,
           sum(CASE state WHEN 'ISSUED' THEN gross_refund WHEN 'VERIFIED' THEN confirmed_gross END) FILTER (WHERE issued) AS outstanding_gross,
           count(*) FILTER (WHERE paid) AS paid, sum(paid_gross) FILTER (WHERE paid) AS paid_gross,
           sum(paid_fee) FILTER (WHERE paid) AS paid_fee, sum(paid_net) FILTER (WHERE paid) AS paid_net
      FROM joined
     GROUP BY GROUPING SETS ((block_code, store_code), (nationality, verified_port, paid_port, agency))
), facts AS (
    -- Each part row feeds the dimensions its grouping set knows; a port gets the issued
    -- figures of the forms confirmed there and the paid figures of the payouts made there.
    SELECT d.dim, d.key,
           CASE WHEN d.with_issued THEN p.issued ELSE 0 END AS issued,
           CASE WHEN d.with_issued THEN p.eligible END AS eligible,
           CASE WHEN d.with_issued THEN p.gross END AS gross,
           CASE WHEN d.with_issued THEN p.voided ELSE 0 END AS voided,
           CASE WHEN d.with_issued THEN p.expired ELSE 0 END AS expired,
           CASE WHEN d.with_issued THEN p.outstanding ELSE 0 END AS outstanding,
           CASE WHEN d.with_issued THEN p.outstanding_gross END AS outstanding_gross,
           CASE WHEN d.with_paid THEN p.paid ELSE 0 END AS paid,
           CASE WHEN d.with_paid THEN p.paid_gross END AS paid_gross,
           CASE WHEN d.with_paid THEN p.paid_fee END AS paid_fee,
           CASE WHEN d.with_paid THEN p.paid_net END AS paid_net
      FROM parts p, LATERAL (VALUES
               (1, 1, p.block_code, true, true), (1, 2, p.store_code, true, true),
               (2, 5, p.nationality, true, true), (2, 4, p.agency, true, true),
               (2, 3, p.verified_port, true, false), (2, 3, p.paid_port, false, true)
           ) AS d (part, dim, key, with_issued, with_paid)
     WHERE d.part = p.part AND ((d.with_issued AND p.issued > 0) OR (d.with_paid AND p.paid > 0))
)
SELECT dim, key, sum(issued), coalesce(sum(eligible), 0), coalesce(sum(gross), 0), sum(voided), sum(expired),
       sum(paid), coalesce(sum(paid_gross), 0), coalesce(sum(paid_fee), 0), coalesce(sum(paid_net), 0),
       sum(outstanding), coalesce(sum(outstanding_gross), 0)
  FROM facts
 GROUP BY dim, key
 ORDER BY dim, key`

// monthlySettings apply to the report's own (read-only) transaction, measured on a
// million forms (BENCH.md):
//   - jit off: compiling the plan took 1–2 s, more than it saved;
//   - work_mem 64MB: the hash tables of the month's payouts and payout rows (about 100 MB
//     at 600,000 payouts with hash_mem_multiplier 2) stay in memory instead of spilling;
//   - a lower parallel_tuple_cost lets the planner have two workers scan and join the
//     rows while the leader, not joining itself, aggregates what they send (the grouping
//     sets cannot be aggregated in parallel); with the default cost of passing a million
//     rows to the leader, it joined and aggregated alone, a quarter slower.
//   - a custom plan for the month asked (the service's connections otherwise keep generic
//     plans, internal/db/pool.go: right for its key look-ups, blind to the month's range).
const monthlySettings = `SET LOCAL jit = off; SET LOCAL work_mem = '64MB';
SET LOCAL parallel_tuple_cost = 0.01; SET LOCAL parallel_leader_participation = off;
SET LOCAL plan_cache_mode = force_custom_plan`

// Beginner is a pool, a connection or a transaction (the report then runs in a
// savepoint, rolled back with its settings).
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Monthly returns the month's report rows, by dimension then key.
func Monthly(ctx context.Context, db Beginner, month time.Time) ([]Row, error) {
	tx, err := db.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("monthly report: %w", err)
	}
	// Read only: nothing to commit, and the rollback drops the settings.
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, monthlySettings); err != nil {
		return nil, fmt.Errorf("monthly report settings: %w", err)
	}
	rows, err := tx.Query(ctx, monthlySQL, month, month.AddDate(0, 1, 0))
	if err != nil {
		return nil, fmt.Errorf("monthly report: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Row, error) {
		var x Row
		var dim int
		err := r.Scan(&dim, &x.Key, &x.FormsIssued, &x.Eligible, &x.Gross, &x.FormsVoided, &x.FormsExpired,
			&x.FormsPaid, &x.PaidGross, &x.PaidFee, &x.PaidNet, &x.FormsOutstanding, &x.OutstandingGross)
		x.Dimension = Dimensions[dim-1]
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("monthly report: %w", err)
	}
	return out, nil
}
