// Package params reads the effective-dated parameters (DOMAIN.md §3, §6): a value holds
// from its valid_from date until the next value of the same name and scope. The table is
// small and read on every request, so it is cached and reloaded periodically.
package params

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"taxrefund/internal/fault"
	"taxrefund/internal/refund"
)

// The parameter names.
const (
	MinPurchase         = "min_purchase"
	RefundRate          = "refund_rate"
	CashCap             = "cash_cap"
	ExportWindowDays    = "export_window_days"
	AgencyFeeRate       = "agency_fee_rate"
	CommittedPeriodDays = "committed_period_days"
	DailyPrepayCap      = "daily_prepay_cap"

	// The risk rules' thresholds (DOMAIN.md §8a, internal/risk). A rule without a value
	// in force on a form's purchase date is not applied.
	RiskVelocityDays    = "risk_velocity_days"
	RiskVelocityForms   = "risk_velocity_forms"
	RiskVelocityAmount  = "risk_velocity_amount"
	RiskSplitMargin     = "risk_split_margin"
	RiskSplitForms      = "risk_split_forms"
	RiskSerialThreshold = "risk_serial_threshold"
	RiskStayMarginDays  = "risk_stay_margin_days"
	RiskMinAgeMinutes   = "risk_min_age_minutes"
)

type key struct{ name, scope string }

type value struct {
	from  time.Time
	value decimal.Decimal
}

// Table is one loaded copy of the parameters.
type Table struct {
	values map[key][]value // each sorted by from, ascending
}

// Querier is what Load needs.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Load reads every parameter.
func Load(ctx context.Context, q Querier) (*Table, error) {
	rows, err := q.Query(ctx, `SELECT name, scope, valid_from, value FROM parameters`)
	if err != nil {
		return nil, fmt.Errorf("load parameters: %w", err)
	}
	defer rows.Close()
	t := &Table{values: map[key][]value{}}
	for rows.Next() {
		var k key
		var v value
		if err := rows.Scan(&k.name, &k.scope, &v.from, &v.value); err != nil {
			return nil, fmt.Errorf("load parameters: %w", err)
		}
		t.values[k] = append(t.values[k], v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load parameters: %w", err)
	}
	for _, vs := range t.values {
		sort.Slice(vs, func(i, j int) bool { return vs[i].from.Before(vs[j].from) })
	}
	return t, nil
}

// Value returns the value of name in scope in force on date.
func (t *Table) Value(name, scope string, date time.Time) (decimal.Decimal, bool) {
	vs := t.values[key{name, scope}]
	i := sort.Search(len(vs), func(i int) bool { return vs[i].from.After(date) })
	if i == 0 {
		return decimal.Decimal{}, false
	}
	return vs[i-1].value, true
}

// Require is Value, with a missing parameter reported as an unavailable service: it is a
// configuration gap, not the caller's fault.
func (t *Table) Require(name, scope string, date time.Time) (decimal.Decimal, error) {
	v, ok := t.Value(name, scope, date)
	if !ok {
		return decimal.Decimal{}, fault.New(fault.Unavailable, "PARAMETER_MISSING",
			fmt.Sprintf("parameter %s (%s) has no value on %s", name, scope, refund.FormatDate(date)))
	}
	return v, nil
}

// Issuing returns the parameters that issuing a form on date applies.
func (t *Table) Issuing(date time.Time) (refund.Params, error) {
	minimum, err := t.Require(MinPurchase, "", date)
	if err != nil {
		return refund.Params{}, err
	}
	window, err := t.Require(ExportWindowDays, "", date)
	if err != nil {
		return refund.Params{}, err
	}
	rates := map[string]decimal.Decimal{}
	for k := range t.values {
		if k.name != RefundRate {
			continue
		}
		if v, ok := t.Value(RefundRate, k.scope, date); ok {
			vat, err := decimal.NewFromString(k.scope)
			if err != nil {
				return refund.Params{}, fmt.Errorf("refund_rate scope %q is not a VAT rate: %w", k.scope, err)
			}
			rates[vat.String()] = v
		}
	}
	return refund.Params{MinPurchase: minimum, RefundRates: rates, ExportWindowDays: int(window.IntPart())}, nil
}

// Cache holds a Table and reloads it when it is older than TTL.
type Cache struct {
	load func(context.Context) (*Table, error)
	ttl  time.Duration

	mu     sync.Mutex
	table  *Table
	loaded time.Time
}

// NewCache returns a cache that reads through q; ttl 0 reloads on every call.
func NewCache(q Querier, ttl time.Duration) *Cache {
	return &Cache{load: func(ctx context.Context) (*Table, error) { return Load(ctx, q) }, ttl: ttl}
}

// Get returns a table no older than the TTL.
func (c *Cache) Get(ctx context.Context) (*Table, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.table != nil && time.Since(c.loaded) < c.ttl {
		return c.table, nil
	}
	t, err := c.load(ctx)
	if err != nil {
		if c.table != nil {
			return c.table, nil // serve the last good copy while the database blips
		}
		return nil, err
	}
	c.table, c.loaded = t, time.Now()
	return t, nil
}
