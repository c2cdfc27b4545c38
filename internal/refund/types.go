// Package refund holds the rules of departure tax refunds: who may get a refund (DOMAIN.md
// §2, §4), how much (§3) and the life of a form (§5). It knows nothing of gRPC or SQL; the
// parameters it applies are passed in, read from the effective-dated table by the caller.
package refund

import (
	"time"

	"github.com/shopspring/decimal"
)

// Shanghai is the local time of every "same day", deadline and month boundary. China has
// kept UTC+8 without daylight saving since 1991, so a fixed zone is exact and needs no
// time zone database on the host.
var Shanghai = time.FixedZone("Asia/Shanghai", 8*60*60)

// A date is a civil date, held as a time.Time at 00:00 UTC of that date.

// LocalDate returns the Asia/Shanghai calendar date of t.
func LocalDate(t time.Time) time.Time {
	y, m, d := t.In(Shanghai).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// ParseDate parses "YYYY-MM-DD".
func ParseDate(s string) (time.Time, error) {
	return time.Parse(time.DateOnly, s)
}

// FormatDate renders a date as "YYYY-MM-DD".
func FormatDate(d time.Time) string {
	return d.Format(time.DateOnly)
}

// AddDays returns the date n days after d.
func AddDays(d time.Time, n int) time.Time {
	return d.AddDate(0, 0, n)
}

// DaysBetween returns the number of days from a to b (b − a).
func DaysBetween(a, b time.Time) int {
	return int(b.Sub(a).Hours() / 24)
}

// DocumentType is an accepted travel document (DOMAIN.md §2.1).
type DocumentType string

// The accepted documents.
const (
	Passport      DocumentType = "PASSPORT"
	HKMacaoPermit DocumentType = "HK_MACAO_PERMIT"
	TaiwanPermit  DocumentType = "TAIWAN_PERMIT"
)

// Category is a line's goods category (DOMAIN.md §4).
type Category string

// The goods categories; only General is refundable.
const (
	General            Category = "GENERAL"
	PreciousMetal      Category = "PRECIOUS_METAL"
	CulturalRelic      Category = "CULTURAL_RELIC"
	CurrencySecurities Category = "CURRENCY_SECURITIES"
	RadioTransceiver   Category = "RADIO_TRANSCEIVER"
	PreciousTCM        Category = "PRECIOUS_TCM"
	EndangeredSpecies  Category = "ENDANGERED_SPECIES"
	VATExempt          Category = "VAT_EXEMPT"
)

// Document is a traveller's identity document. Number is normalized (upper case, no
// spaces or hyphens).
type Document struct {
	Type           DocumentType
	Number         string
	IssuingCountry string
}

// Traveller is the buyer, as the store's POS describes them.
type Traveller struct {
	Document    Document
	Expiry      time.Time
	Nationality string
	LastEntry   time.Time
}

// Invoice is a VAT invoice of the purchase.
type Invoice struct {
	Number string
	Date   time.Time
}

// Line is a line of goods.
type Line struct {
	Description   string
	Category      Category
	VATRate       decimal.Decimal
	Quantity      int32
	Amount        decimal.Decimal
	InvoiceNumber string
	// SerialNumber is the goods' serial number, required of high-value lines (DOMAIN.md
	// §8a, internal/risk); "" when not given.
	SerialNumber string
	// RefundRate is set by Assess from the parameters.
	RefundRate decimal.Decimal
}

// Application is a store's request for a form, validated for shape by the caller.
type Application struct {
	Traveller    Traveller
	Invoices     []Invoice
	Lines        []Line
	PurchaseDate time.Time
}

// Params are the effective-dated parameters in force on one date (DOMAIN.md §3).
type Params struct {
	MinPurchase decimal.Decimal
	// RefundRates maps a VAT rate, as decimal.String() renders it ("0.13"), to its refund rate.
	RefundRates      map[string]decimal.Decimal
	ExportWindowDays int
}

// State is where a form is in its life (DOMAIN.md §5).
type State string

// The form states.
const (
	Issued   State = "ISSUED"
	Verified State = "VERIFIED"
	Rejected State = "REJECTED"
	Refunded State = "REFUNDED"
	Voided   State = "VOIDED"
	Expired  State = "EXPIRED"
	Settled  State = "SETTLED"
)
