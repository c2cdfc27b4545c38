package refund

import (
	"fmt"
	"time"

	"github.com/shopspring/decimal"

	"taxrefund/internal/fault"
	"taxrefund/internal/money"
)

// StayLimitDays is how long after the last entry a purchase may be (DOMAIN.md §2.3).
const StayLimitDays = 183

// Assessment is what Assess computed for an eligible application.
type Assessment struct {
	// Lines are the application's lines with RefundRate set.
	Lines []Line
	// Eligible is A, Gross is G (DOMAIN.md §3).
	Eligible       decimal.Decimal
	Gross          decimal.Decimal
	ExportDeadline time.Time
}

// Assess applies DOMAIN.md §2 (but the same-day minimum, which needs the traveller's
// other forms: see CheckMinimum) and §4, and computes A and G. Every refusal is a
// fault.Precondition naming the field or line at fault.
func Assess(app Application, p Params) (Assessment, error) {
	t := app.Traveller
	if t.Document.Type == Passport && t.Document.IssuingCountry == "CN" {
		return Assessment{}, fault.Field(fault.Precondition, "DOCUMENT_NOT_ACCEPTED", "traveller.document.issuing_country",
			"a passport issued by China does not qualify: the traveller must hold a foreign passport or a Hong Kong, Macao or Taiwan permit")
	}
	if t.Expiry.Before(app.PurchaseDate) {
		return Assessment{}, fault.Field(fault.Precondition, "DOCUMENT_EXPIRED", "traveller.document_expiry_date",
			fmt.Sprintf("the document expired on %s, before the purchase date %s", FormatDate(t.Expiry), FormatDate(app.PurchaseDate)))
	}
	if t.LastEntry.After(app.PurchaseDate) {
		return Assessment{}, fault.Field(fault.Invalid, "ENTRY_AFTER_PURCHASE", "traveller.last_entry_date",
			fmt.Sprintf("the last entry date %s is after the purchase date %s", FormatDate(t.LastEntry), FormatDate(app.PurchaseDate)))
	}
	if days := DaysBetween(t.LastEntry, app.PurchaseDate); days > StayLimitDays {
		return Assessment{}, fault.Field(fault.Precondition, "STAY_LIMIT_EXCEEDED", "traveller.last_entry_date",
			fmt.Sprintf("the purchase is %d days after the last entry; the limit is %d", days, StayLimitDays))
	}
	for i, inv := range app.Invoices {
		field := fmt.Sprintf("invoices[%d].date", i)
		if inv.Date.Before(t.LastEntry) {
			return Assessment{}, fault.Field(fault.Precondition, "INVOICE_BEFORE_ENTRY", field,
				fmt.Sprintf("invoice %s is dated %s, before the last entry date %s", inv.Number, FormatDate(inv.Date), FormatDate(t.LastEntry)))
		}
		if inv.Date.After(app.PurchaseDate) {
			return Assessment{}, fault.Field(fault.Invalid, "INVOICE_IN_FUTURE", field,
				fmt.Sprintf("invoice %s is dated %s, after today %s", inv.Number, FormatDate(inv.Date), FormatDate(app.PurchaseDate)))
		}
	}
	lines := make([]Line, len(app.Lines))
	for i, l := range app.Lines {
		if l.Category != General {
			return Assessment{}, fault.Field(fault.Precondition, "GOODS_NOT_REFUNDABLE", fmt.Sprintf("lines[%d].category", i),
				fmt.Sprintf("%s: not refundable goods", l.Category))
		}
		rate, ok := p.RefundRates[l.VATRate.String()]
		if !ok {
			return Assessment{}, fault.Field(fault.Precondition, "VAT_RATE_NOT_REFUNDABLE", fmt.Sprintf("lines[%d].vat_rate", i),
				fmt.Sprintf("%s: no refund rate for this VAT rate", l.VATRate))
		}
		l.RefundRate = rate
		lines[i] = l
	}
	tot := Compute(lines, nil)
	return Assessment{
		Lines:          lines,
		Eligible:       tot.Eligible,
		Gross:          tot.Gross,
		ExportDeadline: AddDays(app.PurchaseDate, p.ExportWindowDays),
	}, nil
}

// CheckMinimum applies DOMAIN.md §2.7: the eligible amounts of the traveller's live forms
// at this store on this day (sameDay, this form excluded) plus this form's must reach the
// minimum.
func CheckMinimum(eligible, sameDay, minimum decimal.Decimal) error {
	total := eligible.Add(sameDay)
	if total.LessThan(minimum) {
		return fault.Field(fault.Precondition, "BELOW_MINIMUM", "lines",
			fmt.Sprintf("purchases at this store today total %s, below the minimum of %s", money.Format(total), money.Format(minimum)))
	}
	return nil
}
