package report_test

import (
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"taxrefund/internal/money"
	"taxrefund/internal/report"
)

// TestTrendMatchesTheMonthlyReports checks the one-statement trend against the monthly
// report of each of its months: the refunds paid in a month by its payouts are the
// report's paid figures summed over the blocks, months without a payout are zeros, and
// the months come in order.
func TestTrendMatchesTheMonthlyReports(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seedMonth(e)
	from, to := time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	trend, err := report.Trend(e.ctx, e.pool, from, to)
	if err != nil {
		t.Fatal(err)
	}
	// Worked out from seedMonth's table: October's payouts are #0, #1+#16, #2, #5, #7, #8;
	// November's, #11.
	want := []string{
		"2026-08 payouts=0 gross=0.00 fee=0.00 net=0.00",
		"2026-09 payouts=0 gross=0.00 fee=0.00 net=0.00",
		"2026-10 payouts=6 gross=558.00 fee=108.00 net=450.00",
		"2026-11 payouts=1 gross=99.00 fee=18.00 net=81.00",
	}
	if len(trend) != len(want) {
		t.Fatalf("%d months, want %d: %+v", len(trend), len(want), trend)
	}
	for i, m := range trend {
		got := m.Month.Format("2006-01") + " payouts=" + decimal.NewFromInt(m.Payouts).String() +
			" gross=" + money.Format(m.PaidGross) + " fee=" + money.Format(m.PaidFee) + " net=" + money.Format(m.PaidNet)
		if got != want[i] {
			t.Errorf("month %d: %s, want %s", i, got, want[i])
		}
		rows, err := report.Monthly(e.ctx, e.pool, m.Month)
		if err != nil {
			t.Fatal(err)
		}
		var gross, fee, net decimal.Decimal
		for _, r := range rows {
			if r.Dimension == "block" {
				gross, fee, net = gross.Add(r.PaidGross), fee.Add(r.PaidFee), net.Add(r.PaidNet)
			}
		}
		if !gross.Equal(m.PaidGross) || !fee.Equal(m.PaidFee) || !net.Equal(m.PaidNet) {
			t.Errorf("%s: the trend says %s/%s/%s, the monthly report %s/%s/%s", m.Month.Format("2006-01"),
				m.PaidGross, m.PaidFee, m.PaidNet, gross, fee, net)
		}
	}
	for _, bad := range [][2]time.Time{{to, from}, {from, from}, {from, from.AddDate(0, report.MaxTrendMonths+1, 0)}} {
		if _, err := report.Trend(e.ctx, e.pool, bad[0], bad[1]); err == nil {
			t.Errorf("trend %s..%s: no error", bad[0].Format("2006-01"), bad[1].Format("2006-01"))
		}
	}
}
