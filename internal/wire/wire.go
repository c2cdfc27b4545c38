// Package wire converts between the gRPC messages and the domain types, and checks the
// shape of every field on the way in: the handlers of each service share it.
package wire

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"
	"golang.org/x/text/unicode/norm"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	formv1 "taxrefund/api/taxrefund/form/v1"
	"taxrefund/internal/fault"
	"taxrefund/internal/forms"
	"taxrefund/internal/money"
	"taxrefund/internal/pii"
	"taxrefund/internal/refund"
)

// Fields collects the shape violations of one request.
type Fields struct{ fault.List }

// NewFields returns an empty collector of INVALID_ARGUMENT violations.
func NewFields() *Fields {
	return &Fields{fault.List{Kind: fault.Invalid, Reason: "INVALID_REQUEST", Message: "the request has invalid fields"}}
}

var (
	countryPattern = regexp.MustCompile(`^[A-Z]{2}$`)
	// Invoice numbers: China's e-invoices have 20 digits, paper ones 8 (plus a 10–12 digit code).
	invoicePattern = regexp.MustCompile(`^[0-9A-Za-z-]{1,32}$`)
	ratePattern    = regexp.MustCompile(`^0\.[0-9]{1,4}$`)
)

// MaxLines and MaxInvoices bound one form.
const (
	MaxLines       = 100
	MaxInvoices    = 50
	maxDescription = 200
	maxReason      = 500
)

// RequestID parses a client-generated request id: a UUID of 36 characters, canonically in
// lower case; upper-case hex digits are accepted and mean the same id (the key is the
// UUID's value, and CanonicalHash hashes the id in lower case).
func (f *Fields) RequestID(field, s string) uuid.UUID {
	id, err := uuid.Parse(s)
	if err != nil || len(s) != 36 || id == uuid.Nil {
		f.Add(field, "must be a UUID such as 3f1c2a9e-8d4b-4c55-9a07-2b61e0c4d8f1")
		return uuid.Nil
	}
	return id
}

// Date parses "YYYY-MM-DD"; an empty string is missing.
func (f *Fields) Date(field, s string) time.Time {
	if s == "" {
		f.Add(field, "is required (YYYY-MM-DD)")
		return time.Time{}
	}
	d, err := refund.ParseDate(s)
	if err != nil {
		f.Add(field, "must be a date YYYY-MM-DD")
	}
	return d
}

// Amount parses a positive money amount.
func (f *Fields) Amount(field, s string) decimal.Decimal {
	d, err := money.ParsePositive(s)
	switch {
	case errors.Is(err, money.ErrNegative):
		// The value is short and plain (a sign and the amount pattern): safe to echo.
		f.Add(field, "%s: %v", s, err)
	case err != nil:
		f.Add(field, "%v", err)
	}
	return d
}

// Text checks a free-text field — valid UTF-8, no control or bidi-override characters,
// at most max characters, required unless optional — and returns it in Unicode NFC, so
// that the same text is stored and compared one way.
func (f *Fields) Text(field, s string, max int, optional bool) string {
	if utf8.ValidString(s) {
		s = norm.NFC.String(s)
	}
	switch {
	case s == "" && !optional:
		f.Add(field, "is required")
	case !utf8.ValidString(s):
		f.Add(field, "must be valid UTF-8")
	case utf8.RuneCountInString(s) > max:
		f.Add(field, "must be at most %d characters", max)
	case hasControl(s):
		f.Add(field, "must not contain control, bidirectional-override, zero-width or line-separator characters")
	}
	return s
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) ||
			(r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == 0x200e || r == 0x200f || r == 0x061c ||
			(r >= 0x200b && r <= 0x200d) || r == 0x2028 || r == 0x2029 || r == 0xfeff {
			return true
		}
	}
	return false
}

// Document checks a travel document and normalizes its number.
func (f *Fields) Document(field string, d *formv1.Document) refund.Document {
	if d == nil {
		f.Add(field, "is required")
		return refund.Document{}
	}
	var out refund.Document
	switch d.GetType() {
	case formv1.DocumentType_DOCUMENT_TYPE_PASSPORT:
		out.Type = refund.Passport
	case formv1.DocumentType_DOCUMENT_TYPE_HK_MACAO_PERMIT:
		out.Type = refund.HKMacaoPermit
	case formv1.DocumentType_DOCUMENT_TYPE_TAIWAN_PERMIT:
		out.Type = refund.TaiwanPermit
	default:
		f.Add(field+".type", "must be PASSPORT, HK_MACAO_PERMIT or TAIWAN_PERMIT")
	}
	n, err := pii.NormalizeNumber(d.GetNumber())
	if err != nil {
		f.Add(field+".number", "must be 5 to 20 letters or digits (spaces and hyphens ignored)")
	}
	out.Number = n
	if why := countryCheck(d.GetIssuingCountry()); why != "" {
		f.Add(field+".issuing_country", "%s", why)
	}
	out.IssuingCountry = d.GetIssuingCountry()
	return out
}

// Country checks an ISO 3166-1 alpha-2 code.
func (f *Fields) Country(field, s string) string {
	if why := countryCheck(s); why != "" {
		f.Add(field, "%s", why)
	}
	return s
}

// Invoices checks the invoice list.
func (f *Fields) Invoices(field string, in []*formv1.Invoice) []refund.Invoice {
	if len(in) == 0 {
		f.Add(field, "at least one VAT invoice is required")
	}
	if len(in) > MaxInvoices {
		f.Add(field, "at most %d invoices per form", MaxInvoices)
		return nil
	}
	out := make([]refund.Invoice, len(in))
	seen := map[string]bool{}
	for i, inv := range in {
		name := fmt.Sprintf("%s[%d]", field, i)
		if !invoicePattern.MatchString(inv.GetNumber()) {
			f.Add(name+".number", "must be 1 to 32 letters, digits or hyphens")
		} else if seen[inv.GetNumber()] {
			f.Add(name+".number", "invoice %s is listed twice", inv.GetNumber()) // a valid number: safe to echo
		}
		seen[inv.GetNumber()] = true
		out[i] = refund.Invoice{Number: inv.GetNumber(), Date: f.Date(name+".date", inv.GetDate())}
	}
	return out
}

// Category maps a goods category.
func (f *Fields) Category(field string, c formv1.GoodsCategory) refund.Category {
	switch c {
	case formv1.GoodsCategory_GOODS_CATEGORY_GENERAL:
		return refund.General
	case formv1.GoodsCategory_GOODS_CATEGORY_PRECIOUS_METAL:
		return refund.PreciousMetal
	case formv1.GoodsCategory_GOODS_CATEGORY_CULTURAL_RELIC:
		return refund.CulturalRelic
	case formv1.GoodsCategory_GOODS_CATEGORY_CURRENCY_SECURITIES:
		return refund.CurrencySecurities
	case formv1.GoodsCategory_GOODS_CATEGORY_RADIO_TRANSCEIVER:
		return refund.RadioTransceiver
	case formv1.GoodsCategory_GOODS_CATEGORY_PRECIOUS_TCM:
		return refund.PreciousTCM
	case formv1.GoodsCategory_GOODS_CATEGORY_ENDANGERED_SPECIES:
		return refund.EndangeredSpecies
	case formv1.GoodsCategory_GOODS_CATEGORY_VAT_EXEMPT:
		return refund.VATExempt
	}
	f.Add(field, "must be a goods category, e.g. GOODS_CATEGORY_GENERAL")
	return ""
}

// VATRate parses a VAT rate such as "0.13".
func (f *Fields) VATRate(field, s string) decimal.Decimal {
	if !ratePattern.MatchString(s) {
		f.Add(field, `must be a VAT rate as a fraction, e.g. "0.13"`)
		return decimal.Decimal{}
	}
	return decimal.RequireFromString(s)
}

// Reason checks an optional free-text reason.
func (f *Fields) Reason(field, s string) string {
	return f.Text(field, s, maxReason, true)
}

// Description checks a line description.
func (f *Fields) Description(field, s string) string {
	return f.Text(field, s, maxDescription, false)
}

// CanonicalHash hashes a request for idempotency: the deterministic encoding of m, with
// its request_id in its canonical form (lower case: RequestID accepts a UUID in either
// case and the key is the UUID's value), so that a retry that only changed the case of
// its request_id is the same request, not a reuse of the id.
func CanonicalHash(m proto.Message) []byte {
	if fd := m.ProtoReflect().Descriptor().Fields().ByName("request_id"); fd != nil && fd.Kind() == protoreflect.StringKind && fd.Cardinality() != protoreflect.Repeated {
		if s := m.ProtoReflect().Get(fd).String(); s != strings.ToLower(s) {
			m = proto.Clone(m)
			m.ProtoReflect().Set(fd, protoreflect.ValueOfString(strings.ToLower(s)))
		}
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		// Marshal fails only on invalid UTF-8 in strings, which the server's decoding has
		// already refused.
		return nil
	}
	return forms.HashOf(b)
}

// Timestamp converts an optional time.
func Timestamp(t *time.Time) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	return timestamppb.New(*t)
}

// Month parses "YYYY-MM" to the month's first day.
func (f *Fields) Month(field, s string) time.Time {
	m, err := time.Parse("2006-01", s)
	if err != nil {
		f.Add(field, "must be a month YYYY-MM")
	}
	return m
}

// UUID parses an object id.
func (f *Fields) UUID(field, s string) uuid.UUID {
	id, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		f.Add(field, "must be an id (UUID)")
	}
	return id
}

// Message is a request that can be hashed for idempotency.
type Message = proto.Message

var plainDecimal = regexp.MustCompile(`^(0|[1-9][0-9]{0,11})(\.[0-9]{1,6})?$`)

// PlainDecimal reports whether s is a plain non-negative decimal (no sign, exponent,
// NaN or spaces), checked before any decimal parsing.
func PlainDecimal(s string) bool { return plainDecimal.MatchString(s) }
