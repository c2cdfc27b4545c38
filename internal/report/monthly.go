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

// monthlySQL reads every form issued or paid in the month once and aggregates the lot in
// a single pass into two small grouping sets: by store (and its block), and by
// nationality, port and agency. The five dimensions are then rolled up from those few
// hundred rows. Grouping the 1.6 million rows by all five dimensions at once took twice
// the CPU: every numeric sum ran five times per row.
//
// A form counts as issued in the month by its purchase date, and its port and agency are
// where it was confirmed and paid ("" if not yet); it counts as paid in the month by its
// payout's date, at the payout's port and agency. Both can hold for the same form.
//
// The month is read alone, whatever the history, and from forms alone: a paid form
// carries its payout's date, port and agency and its share of the payout, filled by the
// database from the payout's rows (migrations/00033). The forms issued in the month come
// through the range index on their purchase date, the forms paid in it but issued in
// another month through the index on their payment date. One condition "issued in the
// month OR paid in it" could use neither index and read every form ever issued. Reading
// each form's payout row and payout instead cost two index probes per paid form: a month
// whose forms are mostly paid took several times an unpaid one (BENCH.md).
const monthlySQL = `
WITH joined AS (
    SELECT block_code, store_code, nationality, coalesce(verified_port, '') AS verified_port,
           coalesce(paid_port, '') AS paid_port, coalesce(paid_agency, '') AS agency, state,
           eligible_amount, gross_refund, confirmed_gross, paid_gross, paid_fee, paid_net,
           true AS issued, coalesce(paid_date >= $1 AND paid_date < $2, false) AS paid
      FROM forms
     WHERE purchase_date >= $1 AND purchase_date < $2
    UNION ALL
    SELECT block_code, store_code, nationality, coalesce(verified_port, ''),
           coalesce(paid_port, ''), paid_agency, state,
           eligible_amount, gross_refund, confirmed_gross, paid_gross, paid_fee, paid_net,
           false, true
      -- Through the index on the payment date, or, while the other months hold fewer
      -- forms than the month has payouts (a young database), the range index on the
      -- purchase date: one scan either way, no look-up per row.
      FROM forms
     WHERE paid_date >= $1 AND paid_date < $2 AND NOT (purchase_date >= $1 AND purchase_date < $2)
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
//   - work_mem 64MB: the aggregation of the month's rows keeps more of its work in
//     memory (it was set for the hash joins the report made before migrations/00033;
//     with none left, raising hash_mem_multiplier as well, so that the planner hashes
//     both grouping sets instead of sorting by store, changed nothing measurable);
//   - a lower parallel_tuple_cost lets the planner have two workers scan the month's
//     forms while the leader, not scanning itself, aggregates what they send (the
//     grouping sets cannot be aggregated in parallel);
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
