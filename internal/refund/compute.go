package refund

import (
	"math/big"

	"github.com/shopspring/decimal"
)

// Totals are a form's amounts, each rounded once, half up, to fen (DOMAIN.md §3).
type Totals struct {
	// Eligible is A (or A' for confirmed quantities).
	Eligible decimal.Decimal
	// Gross is G (or G').
	Gross decimal.Decimal
	// eligible is the exact, unrounded A, from which the fee is computed.
	eligible *big.Rat
}

// Compute returns A and G of lines. confirmed, when not nil, holds the confirmed quantity
// of each line: a line confirmed for q of Q units counts amount × q / Q. The sums are
// exact (rational) and rounded once at the end.
func Compute(lines []Line, confirmed []int32) Totals {
	a, g := new(big.Rat), new(big.Rat)
	for i, l := range lines {
		amt := lineShare(l, confirmed, i)
		a.Add(a, amt)
		g.Add(g, amt.Mul(amt, l.RefundRate.Rat()))
	}
	return Totals{Eligible: roundRat(a), Gross: roundRat(g), eligible: a}
}

// LineRefund is one line's refund (its confirmed share when confirmed is not nil),
// rounded for display. The form's G is rounded once from the exact sum, not from these.
func LineRefund(lines []Line, confirmed []int32, i int) decimal.Decimal {
	amt := lineShare(lines[i], confirmed, i)
	return roundRat(amt.Mul(amt, lines[i].RefundRate.Rat()))
}

// Fee is F = round_half_up(A × rate, 2), from the exact A.
func (t Totals) Fee(rate decimal.Decimal) decimal.Decimal {
	if t.eligible == nil {
		return t.Eligible.Mul(rate).Round(2)
	}
	f := new(big.Rat).Mul(t.eligible, rate.Rat())
	return roundRat(f)
}

func lineShare(l Line, confirmed []int32, i int) *big.Rat {
	amt := l.Amount.Rat()
	if confirmed != nil && confirmed[i] != l.Quantity {
		amt.Mul(amt, big.NewRat(int64(confirmed[i]), int64(l.Quantity)))
	}
	return amt
}

// roundRat rounds a non-negative rational half up to two fraction digits, exactly.
func roundRat(r *big.Rat) decimal.Decimal {
	// floor((2·num·100 + den) / (2·den)) = round_half_up(num/den × 100).
	num := new(big.Int).Mul(r.Num(), big.NewInt(200))
	num.Add(num, r.Denom())
	den := new(big.Int).Mul(r.Denom(), big.NewInt(2))
	q := new(big.Int).Div(num, den)
	return decimal.NewFromBigInt(q, -2)
}
