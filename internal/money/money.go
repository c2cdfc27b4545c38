// Package money parses and formats CNY amounts: decimals with at most two fraction
// digits, never floats (DOMAIN.md §3).
package money

import (
	"errors"
	"regexp"
	"strings"

	"github.com/shopspring/decimal"
)

// Max is the largest amount the API accepts for one line or one form (CNY).
var maxAmount = decimal.New(100_000_000, 0)

// pattern is checked before any decimal parsing, so that exponents ("1e9", "1E1000000000"),
// signs, NaN, Infinity, spaces and non-ASCII digits never reach the parser.
var pattern = regexp.MustCompile(`^(0|[1-9][0-9]{0,8})(\.[0-9]{1,2})?$`)

// ErrFormat is returned for a string that is not a plain amount.
var ErrFormat = errors.New(`must be a plain decimal with at most 2 fraction digits, e.g. "1234.50"`)

// ErrRange is returned for an amount outside (0, 100000000.00].
var ErrRange = errors.New("must be greater than 0 and at most 100000000.00")

// ErrNegative is returned for a plain amount with a minus sign, such as "-5.00".
var ErrNegative = errors.New("must be positive")

// ParsePositive parses an amount that must be > 0 and ≤ 100,000,000.00.
func ParsePositive(s string) (decimal.Decimal, error) {
	if rest, ok := strings.CutPrefix(s, "-"); ok && len(rest) <= 16 && pattern.MatchString(rest) {
		return decimal.Decimal{}, ErrNegative
	}
	if len(s) > 16 || !pattern.MatchString(s) {
		return decimal.Decimal{}, ErrFormat
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		return decimal.Decimal{}, ErrFormat
	}
	if !d.IsPositive() || d.GreaterThan(maxAmount) {
		return decimal.Decimal{}, ErrRange
	}
	return d, nil
}

// Format renders an amount with exactly two fraction digits, e.g. "150.00".
func Format(d decimal.Decimal) string {
	return d.StringFixed(2)
}

// Round rounds half up to fen (two fraction digits). Refund amounts are never negative,
// so shopspring's half-away-from-zero is half up here.
func Round(d decimal.Decimal) decimal.Decimal {
	return d.Round(2)
}
