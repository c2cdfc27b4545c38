package immediate

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"taxrefund/internal/db"
	"taxrefund/internal/refund"
)

// DueCapture is a prepayment a refund point made that is still PREPAID: Captures takes
// its net refund from the traveller's card on Due unless the form's export is confirmed
// or the prepayment returned before.
type DueCapture struct {
	ID            uuid.UUID
	FormNumber    string
	PaidDate      time.Time
	CommittedDate time.Time
	// Due is the stored capture date, prepayments.capture_due: the committed date +
	// CaptureAfterWorkingDays working days, kept to the calendar as it stands by the
	// database (migrations/00032). Captures, the traveller and the metrics read the same.
	Due time.Time
	// DaysLeft is the calendar days from today to Due: 0 or less, captured at the job's next run.
	DaysLeft  int
	NetRefund decimal.Decimal
	CardLast4 string
}

// maxDueCaptures bounds the list: a refund point's outstanding prepayments are a few days'
// worth.
const maxDueCaptures = 200

// DueCaptures lists the refund point desk's PREPAID prepayments, the soonest due first.
func (s *Service) DueCaptures(ctx context.Context, desk string) ([]DueCapture, error) {
	today := refund.LocalDate(s.now())
	rows, err := db.Scope(s.pool).Query(ctx, `
		SELECT p.id, f.number, p.paid_date, p.committed_date, p.capture_due, p.net_refund, p.card_last4
		  FROM prepayments p JOIN forms f ON f.id = p.form_id
		 WHERE p.state = 'PREPAID' AND p.desk_code = $1
		 ORDER BY p.capture_due, p.paid_at, p.id
		 LIMIT $2`, desk, maxDueCaptures)
	if err != nil {
		return nil, fmt.Errorf("due captures: %w", err)
	}
	due, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (DueCapture, error) {
		var d DueCapture
		err := row.Scan(&d.ID, &d.FormNumber, &d.PaidDate, &d.CommittedDate, &d.Due, &d.NetRefund, &d.CardLast4)
		d.DaysLeft = int(d.Due.Sub(today).Hours() / 24)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("due captures: %w", err)
	}
	return due, nil
}
