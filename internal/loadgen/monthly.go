package loadgen

import (
	"context"
	"time"

	authorityv1 "taxrefund/api/taxrefund/authority/v1"
)

// prepareReport returns the visit of a tax official asking for a month's (zero: the current month's)
// figures (MonthlyReport, Asia/Shanghai month) as the authority: the report aggregates
// every form issued or paid in the month, so each call reads all the month's rows the
// other scenarios wrote. Run it with few callers (make bench uses 4): officials do not
// ask for it 64 at a time.
func prepareReport(c *conns, month time.Time) (visitFunc, error) {
	cc, err := c.get("authority")
	if err != nil {
		return nil, err
	}
	authority := authorityv1.NewAuthorityServiceClient(cc)
	return func(ctx context.Context, w *worker) error {
		m := month
		if m.IsZero() {
			m = time.Now().In(shanghai)
		}
		month := m.Format("2006-01")
		_ = w.call(ctx, "MonthlyReport", func(ctx context.Context) error {
			_, err := authority.MonthlyReport(ctx, &authorityv1.MonthlyReportRequest{Month: month})
			return err
		})
		return nil
	}, nil
}
