package console

import (
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"google.golang.org/protobuf/types/known/timestamppb"

	"taxrefund/internal/refund"
)

// cny renders a decimal amount in yuan with two decimals and thousands separators:
// "1,234,567.80". An empty or malformed amount renders as "—".
func cny(s string) string {
	d, err := decimal.NewFromString(s)
	if err != nil {
		return "—"
	}
	return cnyDec(d)
}

func cnyDec(d decimal.Decimal) string {
	s := d.StringFixed(2)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	whole, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	out := b.String() + "." + frac
	if neg {
		out = "-" + out
	}
	return out
}

// when renders a timestamp in Asia/Shanghai.
func when(ts *timestamppb.Timestamp) string {
	if ts == nil || !ts.IsValid() || ts.AsTime().IsZero() {
		return "—"
	}
	return ts.AsTime().In(refund.Shanghai).Format("2006-01-02 15:04")
}

// whenTime renders t in Asia/Shanghai with seconds.
func whenTime(t time.Time) string {
	return t.In(refund.Shanghai).Format("2006-01-02 15:04:05")
}

// pct renders a rate as a percentage: "0.13" is "13%".
func pct(s string) string {
	d, err := decimal.NewFromString(s)
	if err != nil {
		return s
	}
	return d.Shift(2).String() + "%"
}
