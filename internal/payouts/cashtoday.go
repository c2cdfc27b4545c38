package payouts

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"taxrefund/internal/db"
	"taxrefund/internal/fault"
	"taxrefund/internal/params"
	"taxrefund/internal/refund"
)

// Desk is what a cashier's screen shows of its desk.
type Desk struct {
	Code   string
	Agency string
	Kind   string // AIRPORT or REFUND_POINT
	Port   string // an airport desk's port of exit
	Block  string // a refund point's block
}

// DeskOf returns the registered desk code.
func (s *Service) DeskOf(ctx context.Context, code string) (Desk, error) {
	d, err := s.desks.get(ctx, s.pool, code)
	if errors.Is(err, pgx.ErrNoRows) {
		return Desk{}, fault.New(fault.Denied, "UNKNOWN_DESK", "this desk is not registered")
	}
	if err != nil {
		return Desk{}, fmt.Errorf("desk: %w", err)
	}
	return Desk{Code: d.Code, Agency: d.AgencyCode, Kind: d.Kind, Port: deref(d.PortCode), Block: deref(d.BlockCode)}, nil
}

// CashToday is the cash paid to one traveller's document on the local day, at every
// desk, and what the cash cap leaves of it: a cash payout above Left is refused.
type CashToday struct {
	Paid decimal.Decimal
	Cap  decimal.Decimal
	Left decimal.Decimal
}

// CashToday reads the cash paid today to the document (the same count Settle checks the
// cap against, without its lock: a payout in flight may still take some of it).
func (s *Service) CashToday(ctx context.Context, doc refund.Document) (CashToday, error) {
	table, err := s.params.Get(ctx)
	if err != nil {
		return CashToday{}, err
	}
	today := refund.LocalDate(s.now())
	limit, err := table.Require(params.CashCap, "", today)
	if err != nil {
		return CashToday{}, err
	}
	index := s.keys.BlindIndex(string(doc.Type), doc.IssuingCountry, doc.Number)
	var paid decimal.Decimal
	if err := db.Scope(s.pool).QueryRow(ctx, `SELECT cash_paid_on_day($1, $2)`, index, today).Scan(&paid); err != nil {
		return CashToday{}, fmt.Errorf("cash paid today: %w", err)
	}
	return CashToday{Paid: paid, Cap: limit, Left: decimal.Max(limit.Sub(paid), decimal.Zero)}, nil
}
