package risk

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"taxrefund/internal/db"
	"taxrefund/internal/refund"
)

// ReportRow is one store's figures for one rule in a month: the forms first flagged RED
// for the rule in the month (when customs met them), the inspections of those forms and
// how many failed.
type ReportRow struct {
	StoreCode   string
	Rule        string
	Flagged     int64
	Inspections int64
	Failed      int64
}

// Report returns the month's figures (month is its first day), by store and rule.
func Report(ctx context.Context, q db.DBTX, month time.Time) ([]ReportRow, error) {
	from := time.Date(month.Year(), month.Month(), 1, 0, 0, 0, 0, refund.Shanghai)
	to := from.AddDate(0, 1, 0)
	rows, err := q.Query(ctx, `SELECT rf.store_code, rf.rule, count(*), coalesce(sum(i.n), 0), coalesce(sum(i.failed), 0)
		FROM risk_flags rf
		CROSS JOIN LATERAL (SELECT count(*) AS n, count(*) FILTER (WHERE result = 'FAILED') AS failed
			FROM inspections WHERE form_id = rf.form_id) i
		WHERE rf.flagged_at >= $1 AND rf.flagged_at < $2
		GROUP BY rf.store_code, rf.rule ORDER BY rf.store_code, rf.rule`, from, to)
	if err != nil {
		return nil, fmt.Errorf("risk report: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ReportRow, error) {
		var row ReportRow
		err := r.Scan(&row.StoreCode, &row.Rule, &row.Flagged, &row.Inspections, &row.Failed)
		return row, err
	})
	if err != nil {
		return nil, fmt.Errorf("risk report: %w", err)
	}
	return out, nil
}
