// Package risk rates a refund form for customs (DOMAIN.md §8a): GREEN, or RED with every
// reason in words. A RED form is not refused by the rating itself: it needs an inspection
// whose result is recorded before its export may be confirmed. The rules here are pure
// (no SQL, no gRPC); load.go gathers their facts from PostgreSQL.
package risk

import (
	"fmt"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"taxrefund/internal/params"
	"taxrefund/internal/refund"
)

// Level is a form's rating.
type Level string

// The levels.
const (
	Green Level = "GREEN"
	Red   Level = "RED"
)

// The rule codes, stable: reports and clients key on them.
const (
	RuleVelocity    = "velocity"
	RuleSplit       = "split_purchase"
	RuleHighValue   = "high_value"
	RuleStay        = "stay_limit"
	RuleStoreReview = "store_under_review"
	RuleRecent      = "issued_recently"
)

// Rules lists every rule code, in the order reasons are given.
var Rules = []string{RuleVelocity, RuleSplit, RuleHighValue, RuleStay, RuleStoreReview, RuleRecent}

// Reason is one rule that rated a form RED: its code and a sentence with the figures.
type Reason struct {
	Code string
	Text string
}

// Assessment is a form's rating.
type Assessment struct {
	Level   Level
	Reasons []Reason
}

// Summary joins the reasons' sentences.
func (a Assessment) Summary() string {
	out := make([]string, len(a.Reasons))
	for i, r := range a.Reasons {
		out[i] = r.Text
	}
	return strings.Join(out, "; ")
}

// Codes returns the reasons' codes.
func (a Assessment) Codes() []string {
	out := make([]string, len(a.Reasons))
	for i, r := range a.Reasons {
		out[i] = r.Code
	}
	return out
}

// Params are the rules' thresholds in force on a form's purchase date. A nil threshold
// turns its rule off: a rule applies only once the authority has set it.
type Params struct {
	// Velocity: more than VelocityForms forms, or more than VelocityAmount CNY eligible,
	// on one document within VelocityDays days.
	VelocityDays   *int
	VelocityForms  *int
	VelocityAmount *decimal.Decimal
	// Split purchases: at least SplitForms forms of one document at one store on one day,
	// each at most MinPurchase + SplitMargin.
	SplitMargin *decimal.Decimal
	SplitForms  *int
	MinPurchase *decimal.Decimal
	// High value: a line of SerialThreshold CNY or more (it carries a serial number).
	SerialThreshold *decimal.Decimal
	// Stay: the purchase StayMarginDays days or fewer before the stay limit.
	StayMarginDays *int
	// Recent: confirmed less than MinAgeMinutes after issuance.
	MinAgeMinutes *int
}

// ParamsOn reads the thresholds in force on date from t.
func ParamsOn(t *params.Table, date time.Time) Params {
	dec := func(name string) *decimal.Decimal {
		if v, ok := t.Value(name, "", date); ok {
			return &v
		}
		return nil
	}
	num := func(name string) *int {
		if v, ok := t.Value(name, "", date); ok {
			n := int(v.IntPart())
			return &n
		}
		return nil
	}
	return Params{
		VelocityDays: num(params.RiskVelocityDays), VelocityForms: num(params.RiskVelocityForms),
		VelocityAmount: dec(params.RiskVelocityAmount),
		SplitMargin:    dec(params.RiskSplitMargin), SplitForms: num(params.RiskSplitForms), MinPurchase: dec(params.MinPurchase),
		SerialThreshold: dec(params.RiskSerialThreshold),
		StayMarginDays:  num(params.RiskStayMarginDays),
		MinAgeMinutes:   num(params.RiskMinAgeMinutes),
	}
}

// Line is what the rules read of a form's line.
type Line struct {
	No     int
	Amount decimal.Decimal
}

// Form is what the rules read of the form rated.
type Form struct {
	Number       string
	StoreCode    string
	Eligible     decimal.Decimal
	IssuedAt     time.Time
	PurchaseDate time.Time
	LastEntry    time.Time
	Lines        []Line
}

// Other is another live (not voided) form of the same document.
type Other struct {
	Number       string
	StoreCode    string
	PurchaseDate time.Time
	IssuedAt     time.Time
	Eligible     decimal.Decimal
}

// Facts are what a rating needs: the form, the document's live forms (the form itself
// included) issued in the velocity window or on the form's purchase date, whether the
// store is under review, and when the export is (to be) confirmed.
type Facts struct {
	Form             Form
	Document         []Other
	StoreUnderReview bool
	At               time.Time
}

// Assess rates f under p.
func Assess(f Facts, p Params) Assessment {
	var reasons []Reason
	add := func(code, format string, args ...any) {
		reasons = append(reasons, Reason{Code: code, Text: fmt.Sprintf(format, args...)})
	}
	form := f.Form

	if p.VelocityDays != nil && (p.VelocityForms != nil || p.VelocityAmount != nil) {
		from := f.At.Add(-time.Duration(*p.VelocityDays) * 24 * time.Hour)
		n, sum := 0, decimal.Zero
		for _, o := range f.Document {
			if o.IssuedAt.After(from) && !o.IssuedAt.After(f.At) {
				n++
				sum = sum.Add(o.Eligible)
			}
		}
		switch {
		case p.VelocityForms != nil && n > *p.VelocityForms:
			add(RuleVelocity, "velocity: %d forms within %d days (limit %d)", n, *p.VelocityDays, *p.VelocityForms)
		case p.VelocityAmount != nil && sum.GreaterThan(*p.VelocityAmount):
			add(RuleVelocity, "velocity: %s CNY on %d form%s within %d days (limit %s)",
				sum.StringFixed(2), n, plural(n), *p.VelocityDays, p.VelocityAmount.StringFixed(2))
		}
	}

	if p.SplitMargin != nil && p.SplitForms != nil && p.MinPurchase != nil {
		ceiling := p.MinPurchase.Add(*p.SplitMargin)
		if !form.Eligible.GreaterThan(ceiling) {
			n := 0
			for _, o := range f.Document {
				if o.StoreCode == form.StoreCode && o.PurchaseDate.Equal(form.PurchaseDate) && !o.Eligible.GreaterThan(ceiling) {
					n++
				}
			}
			if n >= *p.SplitForms {
				add(RuleSplit, "split purchases: %d forms at store %s on %s, each at most %s CNY (minimum %s + %s)",
					n, form.StoreCode, refund.FormatDate(form.PurchaseDate), ceiling.StringFixed(2),
					p.MinPurchase.StringFixed(2), p.SplitMargin.StringFixed(2))
			}
		}
	}

	if p.SerialThreshold != nil {
		var high []string
		for _, l := range form.Lines {
			if l.Amount.GreaterThanOrEqual(*p.SerialThreshold) {
				high = append(high, fmt.Sprintf("line %d (%s CNY)", l.No, l.Amount.StringFixed(2)))
			}
		}
		if len(high) > 0 {
			add(RuleHighValue, "high value: %s at or above %s CNY; confirm the serial number", strings.Join(high, ", "), p.SerialThreshold.StringFixed(2))
		}
	}

	if p.StayMarginDays != nil {
		days := refund.DaysBetween(form.LastEntry, form.PurchaseDate)
		if left := refund.StayLimitDays - days; left <= *p.StayMarginDays {
			add(RuleStay, "stay: purchased %d days after entry, %d days from the %d-day limit (margin %d)",
				days, left, refund.StayLimitDays, *p.StayMarginDays)
		}
	}

	if f.StoreUnderReview {
		add(RuleStoreReview, "store under review: %s", form.StoreCode)
	}

	if p.MinAgeMinutes != nil {
		age := f.At.Sub(form.IssuedAt)
		if age < time.Duration(*p.MinAgeMinutes)*time.Minute {
			add(RuleRecent, "issued recently: %s before the confirmation (minimum %d minutes)", formatAge(age), *p.MinAgeMinutes)
		}
	}

	if len(reasons) == 0 {
		return Assessment{Level: Green}
	}
	return Assessment{Level: Red, Reasons: reasons}
}

// RequiresSerial reports whether a line of amount needs a serial number under p.
func RequiresSerial(p Params, amount decimal.Decimal) bool {
	return p.SerialThreshold != nil && amount.GreaterThanOrEqual(*p.SerialThreshold)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func formatAge(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	d = d.Truncate(time.Second)
	return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
}
