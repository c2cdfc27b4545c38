package report

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
)

// MonthTotal is one month of a trend: the refunds paid in it, by their payouts' date.
type MonthTotal struct {
	// Month is the month's first day.
	Month     time.Time
	Payouts   int64
	PaidGross decimal.Decimal
	PaidFee   decimal.Decimal
	PaidNet   decimal.Decimal
}

// MaxTrendMonths bounds a trend: two years of payouts.
const MaxTrendMonths = 24

// trendSQL reads the payouts of the months [$1, $2) once, through the range index on
// their date (migrations/00016), and groups them by month. A payout's totals are the sums
// of its forms' payout rows (invariant payout_totals), so the month's paid figures are
// the monthly report's (every block's paid_gross, paid_fee and paid_net summed) without
// reading a single form: the twelve bars of the officials' trend are one statement over
// the year's payouts, not twelve monthly reports.
const trendSQL = `
SELECT date_trunc('month', paid_date)::date, count(*), sum(gross_refund), sum(fee), sum(net_refund)
  FROM payouts
 WHERE paid_date >= $1 AND paid_date < $2
 GROUP BY 1
 ORDER BY 1`

// trendSettings: the report's (monthlySettings) that matter to one aggregate.
const trendSettings = `SET LOCAL jit = off; SET LOCAL plan_cache_mode = force_custom_plan`

// Trend returns the refunds paid in each month from the month of from to the month
// before to (first days of months), one MonthTotal a month, months without a payout
// included with zeros.
func Trend(ctx context.Context, db Beginner, from, to time.Time) ([]MonthTotal, error) {
	from = time.Date(from.Year(), from.Month(), 1, 0, 0, 0, 0, time.UTC)
	to = time.Date(to.Year(), to.Month(), 1, 0, 0, 0, 0, time.UTC)
	if !from.Before(to) || from.AddDate(0, MaxTrendMonths, 0).Before(to) {
		return nil, fmt.Errorf("trend %s..%s: want 1 to %d months", from.Format("2006-01"), to.Format("2006-01"), MaxTrendMonths)
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("trend: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, trendSettings); err != nil {
		return nil, fmt.Errorf("trend settings: %w", err)
	}
	rows, err := tx.Query(ctx, trendSQL, from, to)
	if err != nil {
		return nil, fmt.Errorf("trend: %w", err)
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (MonthTotal, error) {
		var m MonthTotal
		err := r.Scan(&m.Month, &m.Payouts, &m.PaidGross, &m.PaidFee, &m.PaidNet)
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("trend: %w", err)
	}
	var out []MonthTotal
	for m, i := from, 0; m.Before(to); m = m.AddDate(0, 1, 0) {
		t := MonthTotal{Month: m}
		if i < len(got) && got[i].Month.Year() == m.Year() && got[i].Month.Month() == m.Month() {
			t = got[i]
			t.Month = m
			i++
		}
		out = append(out, t)
	}
	return out, nil
}
