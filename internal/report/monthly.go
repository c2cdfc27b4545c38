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

	"taxrefund/internal/ledger"
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

// monthlySQL reads the month in one pass per source (forms issued in the month, refunds
// paid in it) and groups both by every dimension at once.
const monthlySQL = `
WITH facts AS (
    SELECT f.block_code AS block, f.store_code AS store, coalesce(f.verified_port, '') AS port,
           coalesce(p.agency_code, '') AS agency, f.nationality,
           1 AS issued, f.eligible_amount AS eligible, f.gross_refund AS gross,
           (f.state = 'VOIDED')::int AS voided, (f.state = 'EXPIRED')::int AS expired,
           (f.state IN ('ISSUED', 'VERIFIED'))::int AS outstanding,
           CASE WHEN f.state = 'ISSUED' THEN f.gross_refund WHEN f.state = 'VERIFIED' THEN f.confirmed_gross ELSE 0 END AS outstanding_gross,
           0 AS paid, 0::numeric AS paid_gross, 0::numeric AS paid_fee, 0::numeric AS paid_net
      FROM forms f
      LEFT JOIN payout_forms pf ON pf.form_id = f.id
      LEFT JOIN payouts p ON p.id = pf.payout_id
     WHERE f.purchase_date >= $1 AND f.purchase_date < $2
    UNION ALL
    SELECT f.block_code, f.store_code, coalesce(p.port_code, ''), p.agency_code, f.nationality,
           0, 0, 0, 0, 0, 0, 0, 1, pf.gross_refund, pf.fee, pf.net_refund
      FROM payouts p
      JOIN payout_forms pf ON pf.payout_id = p.id
      JOIN forms f ON f.id = pf.form_id
     WHERE p.paid_date >= $1 AND p.paid_date < $2
)
SELECT CASE WHEN GROUPING(block) = 0 THEN 1 WHEN GROUPING(store) = 0 THEN 2 WHEN GROUPING(port) = 0 THEN 3
            WHEN GROUPING(agency) = 0 THEN 4 ELSE 5 END AS dim,
       coalesce(block, store, port, agency, nationality) AS key,
       sum(issued), coalesce(sum(eligible), 0), coalesce(sum(gross), 0), sum(voided), sum(expired),
       sum(paid), coalesce(sum(paid_gross), 0), coalesce(sum(paid_fee), 0), coalesce(sum(paid_net), 0),
       sum(outstanding), coalesce(sum(outstanding_gross), 0)
  FROM facts
 GROUP BY GROUPING SETS ((block), (store), (port), (agency), (nationality))
 ORDER BY 1, 2`

// Monthly returns the month's report rows, by dimension then key.
func Monthly(ctx context.Context, q ledger.Querier, month time.Time) ([]Row, error) {
	rows, err := q.Query(ctx, monthlySQL, month, month.AddDate(0, 1, 0))
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
