package wire_test

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/shopspring/decimal"
	"golang.org/x/text/unicode/norm"
	"google.golang.org/protobuf/proto"

	formv1 "taxrefund/api/taxrefund/form/v1"
	storev1 "taxrefund/api/taxrefund/store/v1"
	"taxrefund/internal/auth"
	"taxrefund/internal/fault"
	"taxrefund/internal/forms"
	"taxrefund/internal/store"
	"taxrefund/internal/wire"
)

// fakeForms records what the store handler hands to the forms service: only requests
// that passed validation get here.
type fakeForms struct{ got []forms.IssueRequest }

func (f *fakeForms) Issue(_ context.Context, req forms.IssueRequest) (forms.Form, error) {
	f.got = append(f.got, req)
	return forms.Form{Number: "TR0000000000000000", StoreCode: req.StoreCode}, nil
}

func (f *fakeForms) Void(context.Context, forms.VoidRequest) (forms.Form, error) {
	return forms.Form{}, errors.New("not used")
}

func (f *fakeForms) Get(context.Context, string, string) (forms.Form, error) {
	return forms.Form{}, errors.New("not used")
}

func (f *fakeForms) List(context.Context, forms.ListQuery) ([]forms.Form, bool, error) {
	return nil, false, errors.New("not used")
}

// storeCtx is a call's context as the authorizer leaves it for store S-JFB-1.
var storeCtx = auth.NewContext(context.Background(), auth.Party{Role: auth.RoleStore, Store: "S-JFB-1", URI: "taxrefund://store/S-JFB-1"})

// The tests' own statement of a valid request, independent of package wire.
var (
	docPattern     = regexp.MustCompile(`^[A-Z0-9]{5,20}$`)
	invoicePattern = regexp.MustCompile(`^[0-9A-Za-z-]{1,32}$`)
	countryPattern = regexp.MustCompile(`^[A-Z]{2}$`)
	// A violation names a field of the request, with indexes.
	fieldPattern = regexp.MustCompile(`^(request_id|traveller(\.(document(\.(type|number|issuing_country))?|document_expiry_date|nationality|last_entry_date))?|invoices(\[[0-9]+\](\.(number|date))?)?|lines(\[[0-9]+\]\.(description|category|vat_rate|amount|quantity|invoice_number))?)$`)
	maxAmount    = decimal.New(100_000_000, 0)
)

// bidi are the bidirectional formatting characters (marks, embeddings, overrides,
// isolates).
func bidi(r rune) bool {
	return r == 0x061c || r == 0x200e || r == 0x200f || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069)
}

// cleanText reports why s is not clean text of 1 to max characters, or "".
func cleanText(s string, max int) string {
	switch {
	case !utf8.ValidString(s):
		return "invalid UTF-8"
	case !norm.NFC.IsNormalString(s):
		return "not NFC"
	case s == "" || utf8.RuneCountInString(s) > max:
		return fmt.Sprintf("%d characters", utf8.RuneCountInString(s))
	}
	for _, r := range s {
		if unicode.IsControl(r) || bidi(r) {
			return fmt.Sprintf("character %U", r)
		}
	}
	return ""
}

// date reports whether s is a date YYYY-MM-DD equal to d.
func date(s string, d time.Time) bool {
	p, err := time.Parse(time.DateOnly, s)
	return err == nil && p.Equal(d) && d.Format(time.DateOnly) == s
}

// issueOutcome calls the store handler with req (a fake forms service behind it) and
// returns the first broken invariant of the outcome ("" when none) and its error.
func issueOutcome(req *storev1.IssueFormRequest) (problem string, err error) {
	fake := &fakeForms{}
	resp, err := store.New(fake).IssueForm(storeCtx, req)
	return checkIssue(req, resp, err, fake.got), err
}

// checkIssue states the invariants of the store handler's validation: whatever reached
// forms.Issue (got) is valid; a refusal is INVALID_ARGUMENT naming fields of the
// request, and more than 100 lines are refused with "at most 100 lines per form".
func checkIssue(req *storev1.IssueFormRequest, resp *storev1.IssueFormResponse, err error, got []forms.IssueRequest) string {
	if err != nil {
		if len(got) != 0 {
			return fmt.Sprintf("refused (%v) after calling forms.Issue", err)
		}
		fe, ok := fault.As(err)
		if !ok || fe.Kind != fault.Invalid || fe.Reason != "INVALID_REQUEST" || len(fe.Violations) == 0 {
			return fmt.Sprintf("refusal %v is not INVALID_ARGUMENT INVALID_REQUEST with violations", err)
		}
		for _, v := range fe.Violations {
			if !fieldPattern.MatchString(v.Field) {
				return fmt.Sprintf("violation names %q, not a field of the request", v.Field)
			}
		}
		if n := len(req.GetLines()); n > wire.MaxLines && !hasViolation(fe, "lines", "at most 100 lines per form") {
			return fmt.Sprintf("%d lines refused without \"at most 100 lines per form\": %v", n, fe.Violations[:min(3, len(fe.Violations))])
		}
		return ""
	}
	if resp.GetForm() == nil || len(got) != 1 {
		return fmt.Sprintf("accepted with %d calls to forms.Issue", len(got))
	}
	app := got[0].Application
	tr := req.GetTraveller()
	switch {
	case got[0].StoreCode != "S-JFB-1" || got[0].Idem.Caller != "taxrefund://store/S-JFB-1" || len(got[0].Idem.Hash) == 0 ||
		!strings.EqualFold(got[0].Idem.RequestID.String(), req.GetRequestId()):
		return fmt.Sprintf("idempotency %+v or store %q not the caller's", got[0].Idem, got[0].StoreCode)
	case !docPattern.MatchString(app.Traveller.Document.Number):
		return fmt.Sprintf("document number %q reached forms.Issue", app.Traveller.Document.Number)
	case !countryPattern.MatchString(app.Traveller.Document.IssuingCountry) || !countryPattern.MatchString(app.Traveller.Nationality):
		return fmt.Sprintf("country %q / nationality %q reached forms.Issue", app.Traveller.Document.IssuingCountry, app.Traveller.Nationality)
	case !date(tr.GetDocumentExpiryDate(), app.Traveller.Expiry) || !date(tr.GetLastEntryDate(), app.Traveller.LastEntry):
		return fmt.Sprintf("dates %q, %q reached forms.Issue as %v, %v", tr.GetDocumentExpiryDate(), tr.GetLastEntryDate(), app.Traveller.Expiry, app.Traveller.LastEntry)
	case len(app.Lines) < 1 || len(app.Lines) > 100 || len(app.Invoices) < 1 || len(app.Invoices) > 50 ||
		len(app.Lines) != len(req.GetLines()) || len(app.Invoices) != len(req.GetInvoices()):
		return fmt.Sprintf("%d lines and %d invoices reached forms.Issue (%d and %d sent)", len(app.Lines), len(app.Invoices), len(req.GetLines()), len(req.GetInvoices()))
	}
	invoices := map[string]bool{}
	for i, inv := range app.Invoices {
		if !invoicePattern.MatchString(inv.Number) || invoices[inv.Number] || !date(req.GetInvoices()[i].GetDate(), inv.Date) {
			return fmt.Sprintf("invoice %q dated %q reached forms.Issue", inv.Number, req.GetInvoices()[i].GetDate())
		}
		invoices[inv.Number] = true
	}
	for i, l := range app.Lines {
		in := req.GetLines()[i]
		if !l.Amount.IsPositive() || l.Amount.GreaterThan(maxAmount) || !l.Amount.Equal(l.Amount.Truncate(2)) {
			return fmt.Sprintf("line %d: amount %s (from %q) reached forms.Issue", i, l.Amount, in.GetAmount())
		}
		if want, ok := new(big.Rat).SetString(in.GetAmount()); !ok || want.Cmp(l.Amount.Rat()) != 0 || strings.Trim(in.GetAmount(), "0123456789.") != "" {
			return fmt.Sprintf("line %d: amount %q became %s", i, in.GetAmount(), l.Amount)
		}
		// A rate of 0 is well-formed; the domain refuses it (VAT_RATE_NOT_REFUNDABLE).
		if l.VATRate.Sign() < 0 || l.VATRate.GreaterThanOrEqual(decimal.NewFromInt(1)) || !l.VATRate.Equal(l.VATRate.Truncate(4)) {
			return fmt.Sprintf("line %d: VAT rate %s (from %q) reached forms.Issue", i, l.VATRate, in.GetVatRate())
		}
		if why := cleanText(l.Description, 200); why != "" {
			return fmt.Sprintf("line %d: description %+q reached forms.Issue: %s", i, l.Description, why)
		}
		if l.Description != norm.NFC.String(in.GetDescription()) {
			return fmt.Sprintf("line %d: description %+q is not the NFC of %+q", i, l.Description, in.GetDescription())
		}
		if l.Quantity < 1 || l.Quantity > 1_000_000 {
			return fmt.Sprintf("line %d: quantity %d reached forms.Issue", i, l.Quantity)
		}
		if !invoices[l.InvoiceNumber] {
			return fmt.Sprintf("line %d: invoice %q is not listed", i, l.InvoiceNumber)
		}
	}
	return ""
}

func hasViolation(fe *fault.Error, field, description string) bool {
	for _, v := range fe.Violations {
		if v.Field == field && v.Description == description {
			return true
		}
	}
	return false
}

// fuzzRequest builds an IssueFormRequest from fuzzed fields: n identical lines on one
// invoice. n is lines % 256, except that the seed 100000 asks for a 100,000-line form.
func fuzzRequest(amount, vat, description, doc, expiry, entry, invDate, invoice string, quantity int32, lines uint32) *storev1.IssueFormRequest {
	n := int(lines % 256)
	if lines == 100_000 {
		n = 100_000
	}
	line := &storev1.LineInput{Description: description, Category: formv1.GoodsCategory_GOODS_CATEGORY_GENERAL, VatRate: vat,
		Quantity: quantity, Amount: amount, InvoiceNumber: invoice}
	req := &storev1.IssueFormRequest{
		RequestId: "3f1c2a9e-8d4b-4c55-9a07-2b61e0c4d8f1",
		Traveller: &storev1.Traveller{
			Document:           &formv1.Document{Type: formv1.DocumentType_DOCUMENT_TYPE_PASSPORT, Number: doc, IssuingCountry: "FR"},
			DocumentExpiryDate: expiry, Nationality: "FR", LastEntryDate: entry,
		},
		Invoices: []*formv1.Invoice{{Number: invoice, Date: invDate}},
		Lines:    make([]*storev1.LineInput, n),
	}
	for i := range req.Lines {
		req.Lines[i] = line
	}
	return req
}

// nasty are the seed values: number-like strings that are not plain amounts, text with
// control and bidi characters, and a valid request's values.
var nasty = []string{
	"1000.00", "0.13", "NaN", "nan", "Infinity", "-Infinity", "+Inf", "1e1000000", "1E-2", "0.-1", "-0.01", "0", "0.00", "0.001",
	"100000000.00", "100000000.01", "99999999.99", "00.5", ".5", "5.", "1,000.00", "1_000", "0x10", " 1", "1 ",
	"١٢٣.٤٥", "１２３.４５", "१२३", "12\u200f3", "\u202e001", "100\x00", "\x00", "\u2066100\u2069",
	"Silk scarf", "e\u0301t\u0301e\u0301", "\u202eFDP.exe", "line\nbreak", "tab\there", "DEL\x7f", "\u0085NEL", "\xff\xfe",
	"E1234-5678", "e 1234 5678", "E12345678\u200f", "Ｅ１２３４５６７８", "2025-06-10", "2025-6-10", "2025-02-30", "10/06/2025", "",
	strings.Repeat("x", 201), strings.Repeat("é", 200), strings.Repeat("e\u0301", 200),
}

// FuzzIssueFormValidation fuzzes the store handler's request validation with the fields
// of IssueFormRequest (amount, VAT rate, description, document number, three dates,
// invoice number, quantity, number of lines), in process with a fake forms service: no
// input panics; whatever reaches forms.Issue is valid (amount > 0, ≤ 2 decimals, ≤
// 100000000; text UTF-8, NFC, without control or bidi characters, within its length;
// dates that parse; quantity 1..1000000); refusals are INVALID_ARGUMENT naming request
// fields, and a form of more than 100 lines (up to a 100,000-line seed) is refused with
// "at most 100 lines per form".
func FuzzIssueFormValidation(f *testing.F) {
	type seed struct {
		s        [8]string // amount, VAT rate, description, document, expiry, entry, invoice date, invoice
		quantity int32
		lines    uint32
	}
	add := func(x seed) {
		f.Add(x.s[0], x.s[1], x.s[2], x.s[3], x.s[4], x.s[5], x.s[6], x.s[7], x.quantity, x.lines)
	}
	valid := seed{[8]string{"1000.00", "0.13", "Silk scarf", "E12345678", "2030-01-31", "2025-06-01", "2025-06-10", "INV-0001"}, 3, 2}
	add(valid)
	for i, s := range nasty {
		for field := range 8 { // amount, VAT rate, description, document, three dates, invoice
			if field >= 4 && field <= 6 && i%2 == 1 {
				continue // the dates get half the strings
			}
			x := valid
			x.s[field] = s
			add(x)
		}
	}
	for _, q := range []int32{0, -1, 1, 1_000_000, 1_000_001, -2147483648, 2147483647} {
		x := valid
		x.quantity = q
		add(x)
	}
	for _, n := range []uint32{0, 1, 100, 101, 255, 100_000} {
		x := valid
		x.lines = n
		add(x)
	}
	f.Fuzz(func(t *testing.T, amount, vat, description, doc, expiry, entry, invDate, invoice string, quantity int32, lines uint32) {
		req := fuzzRequest(amount, vat, description, doc, expiry, entry, invDate, invoice, quantity, lines)
		problem, err := issueOutcome(req)
		if problem != "" {
			t.Fatal(problem)
		}
		if lines == 100_000 && err == nil {
			t.Fatalf("a 100,000-line form was accepted")
		}
	})
}

// FuzzIssueFormDecode fuzzes the wire bytes of an IssueFormRequest: whatever decodes
// is validated by the store handler with the same invariants as above.
func FuzzIssueFormDecode(f *testing.F) {
	for _, r := range []*storev1.IssueFormRequest{
		fuzzRequest("1000.00", "0.13", "Silk scarf", "E12345678", "2030-01-31", "2025-06-01", "2025-06-10", "INV-0001", 3, 2),
		fuzzRequest("NaN", "0.13", "\u202eFDP", "E1234 5678", "2030-01-31", "2025-06-01", "2025-06-10", "INV-0002", 1, 1),
		fuzzRequest("1e1000000", "0.09", "tea", "HK123456789", "2030-02-30", "2025-06-01", "2025-06-10", "INV-0003", 0, 101),
	} {
		b, err := proto.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		req := &storev1.IssueFormRequest{}
		if err := proto.Unmarshal(b, req); err != nil {
			return
		}
		if len(req.GetLines()) > 20_000 || len(req.GetInvoices()) > 20_000 {
			return // the server refuses such a message by its size before decoding it whole
		}
		if problem, _ := issueOutcome(req); problem != "" {
			t.Fatal(problem)
		}
	})
}

// FuzzIssueFormRefusalText fuzzes the values a refusal could quote: a refusal's
// descriptions name the fault without repeating a raw value that failed validation, so
// none has a control or bidi character or runs past 200 bytes, and none carries the
// document number. The request lists an extra invoice that no line uses (fuzzed), beside
// fuzzed description, document and amount. The seed with U+202E in the unused invoice is
// the case the handler used to get wrong ("no line is on invoice %s" quoted the raw
// number); TestFuzzChecksCatchBrokenValidation shows the check catches that description.
func FuzzIssueFormRefusalText(f *testing.F) {
	f.Add("INV-EXTRA", "Silk scarf", "E12345678", "1000.00")
	f.Add("INV-\u202eFDP.exe", "Silk scarf", "E12345678", "1000.00")
	for _, s := range nasty {
		f.Add(s, s, s, s)
	}
	f.Fuzz(func(t *testing.T, extra, description, doc, amount string) {
		req := fuzzRequest(amount, "0.13", description, doc, "2030-01-31", "2025-06-01", "2025-06-10", "INV-0001", 1, 1)
		req.Invoices = append(req.Invoices, &formv1.Invoice{Number: extra, Date: "2025-06-10"})
		problem, err := issueOutcome(req)
		if problem == "" {
			problem = refusalProblem(err, doc)
		}
		if problem != "" {
			t.Fatal(problem)
		}
	})
}

// refusalProblem returns what in a refusal repeats a raw value, "" when nothing: a
// description over 200 bytes, with a control or bidi character or invalid UTF-8, or
// quoting the document number doc (as typed or normalized, when it has letters and
// digits).
func refusalProblem(err error, doc string) string {
	fe, ok := fault.As(err)
	if !ok {
		return ""
	}
	normDoc := strings.ToUpper(strings.NewReplacer(" ", "", "-", "").Replace(doc))
	for _, v := range fe.Violations {
		d := v.Description
		if len(d) > 200 {
			return fmt.Sprintf("%s: a description of %d bytes: %.80q", v.Field, len(d), d)
		}
		for _, r := range d {
			if unicode.IsControl(r) || bidi(r) || r == utf8.RuneError {
				return fmt.Sprintf("%s: description %+q has the character %U", v.Field, d, r)
			}
		}
		// A number of letters and digits cannot occur in the fixed wording of a refusal
		// (words, or numbers such as "100000000.00") unless it is quoted.
		if docPattern.MatchString(normDoc) && strings.ContainsAny(normDoc, "0123456789") && strings.ContainsAny(normDoc, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") &&
			(strings.Contains(d, doc) || strings.Contains(d, normDoc)) {
			return fmt.Sprintf("%s: description %q quotes the document number", v.Field, d)
		}
	}
	return ""
}

// FuzzAmountField fuzzes the money fields' parsing as wire does it (Fields.Amount,
// VATRate, PlainDecimal): an accepted amount is exactly the decimal the string spells,
// > 0, ≤ 100000000.00, with at most 2 decimals, spelled only with ASCII digits and one
// point; an accepted VAT rate is 0.x with at most 4 decimals; a plain decimal has no
// sign, exponent or space and parses.
func FuzzAmountField(f *testing.F) {
	for _, s := range nasty {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fields := wire.NewFields()
		d := fields.Amount("amount", s)
		rates := wire.NewFields()
		rate := rates.VATRate("vat_rate", s)
		if p := amountProblem(s, d, fields.Err(), rate, rates.Err(), wire.PlainDecimal(s)); p != "" {
			t.Fatal(p)
		}
	})
}

// amountProblem states what the money fields may accept: an amount that is exactly the
// decimal s spells, > 0, ≤ 100000000.00, with at most 2 decimals, spelled only with ASCII
// digits and one point (refused: one violation of the field); a VAT rate "0.x" with at
// most 4 decimals; a plain decimal that parses, without sign, exponent or space.
func amountProblem(s string, d decimal.Decimal, amountErr error, rate decimal.Decimal, rateErr error, plain bool) string {
	if amountErr == nil {
		r, ok := new(big.Rat).SetString(s)
		if !ok || r.Cmp(d.Rat()) != 0 || !d.IsPositive() || d.GreaterThan(maxAmount) || !d.Equal(d.Truncate(2)) {
			return fmt.Sprintf("Amount(%q) accepted as %s", s, d)
		}
		if strings.Trim(s, "0123456789.") != "" || strings.Count(s, ".") > 1 {
			return fmt.Sprintf("Amount(%q) accepted a character other than ASCII digits and one point", s)
		}
	} else if fe, _ := fault.As(amountErr); fe == nil || len(fe.Violations) != 1 || fe.Violations[0].Field != "amount" {
		return fmt.Sprintf("Amount(%q) refused with %v", s, amountErr)
	}
	if rateErr == nil && (!strings.HasPrefix(s, "0.") || len(s) > 6 || strings.Trim(s[2:], "0123456789") != "" ||
		rate.Sign() < 0 || !rate.LessThan(decimal.NewFromInt(1)) || rate.String() != decimal.RequireFromString(s).String()) {
		return fmt.Sprintf("VATRate(%q) accepted as %s", s, rate)
	}
	if plain {
		p, err := decimal.NewFromString(s)
		if err != nil || p.Sign() < 0 || strings.ContainsAny(s, "eE+- \t") {
			return fmt.Sprintf("PlainDecimal(%q) is true, but it parses to %v, %v", s, p, err)
		}
	}
	return ""
}
