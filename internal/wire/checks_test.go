package wire_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	formv1 "taxrefund/api/taxrefund/form/v1"
	storev1 "taxrefund/api/taxrefund/store/v1"
	"taxrefund/internal/fault"
	"taxrefund/internal/forms"
	"taxrefund/internal/refund"
)

// TestFuzzChecksCatchBrokenValidation is the broken control of the fuzz targets: the
// invariants they assert, applied to what a validator that let bad input through would
// hand to forms.Issue (or answer), report every case. So a fuzz run that finds nothing
// means the handler kept these out, not that the checks are blind.
func TestFuzzChecksCatchBrokenValidation(t *testing.T) {
	t.Parallel()
	good := func() (*storev1.IssueFormRequest, forms.IssueRequest) {
		req := fuzzRequest("1000.00", "0.13", "Silk scarf", "E12345678", "2030-01-31", "2025-06-01", "2025-06-10", "INV-0001", 3, 2)
		day := func(s string) time.Time { d, _ := time.Parse(time.DateOnly, s); return d }
		line := refund.Line{Description: "Silk scarf", Category: refund.General, VATRate: decimal.RequireFromString("0.13"), Quantity: 3,
			Amount: decimal.RequireFromString("1000.00"), InvoiceNumber: "INV-0001"}
		return req, forms.IssueRequest{
			Idem:      forms.Idempotency{Caller: "taxrefund://store/S-JFB-1", RequestID: uuid.MustParse(req.GetRequestId()), Hash: []byte{1}},
			StoreCode: "S-JFB-1",
			Application: refund.Application{
				Traveller: refund.Traveller{Document: refund.Document{Type: refund.Passport, Number: "E12345678", IssuingCountry: "FR"},
					Expiry: day("2030-01-31"), Nationality: "FR", LastEntry: day("2025-06-01")},
				Invoices: []refund.Invoice{{Number: "INV-0001", Date: day("2025-06-10")}},
				Lines:    []refund.Line{line, line},
			},
		}
	}
	accepted := &storev1.IssueFormResponse{Form: &formv1.Form{}}
	if req, got := good(); checkIssue(req, accepted, nil, []forms.IssueRequest{got}) != "" {
		t.Fatalf("the control's control: a valid request is reported: %s", checkIssue(req, accepted, nil, []forms.IssueRequest{got}))
	}
	cases := []struct {
		name   string
		mutate func(*storev1.IssueFormRequest, *forms.IssueRequest)
		want   string
	}{
		{"exponent amount let through", func(r *storev1.IssueFormRequest, g *forms.IssueRequest) {
			r.Lines[0].Amount = "1e3"
			g.Application.Lines[0].Amount = decimal.RequireFromString("1e3")
		}, `amount "1e3" became`},
		{"huge amount", func(r *storev1.IssueFormRequest, g *forms.IssueRequest) {
			g.Application.Lines[0].Amount = decimal.New(1, 1_000_000)
		}, "line 0: amount"},
		{"three decimals", func(r *storev1.IssueFormRequest, g *forms.IssueRequest) {
			g.Application.Lines[1].Amount = decimal.RequireFromString("0.001")
		}, "line 1: amount"},
		{"RTL override in a description", func(r *storev1.IssueFormRequest, g *forms.IssueRequest) {
			g.Application.Lines[0].Description = "\u202eFDP"
		}, "U+202E"},
		{"decomposed description", func(r *storev1.IssueFormRequest, g *forms.IssueRequest) {
			g.Application.Lines[0].Description = "e\u0301"
		}, "not NFC"},
		{"NUL in a description", func(r *storev1.IssueFormRequest, g *forms.IssueRequest) {
			g.Application.Lines[0].Description = "a\x00"
		}, "U+0000"},
		{"quantity 0", func(r *storev1.IssueFormRequest, g *forms.IssueRequest) { g.Application.Lines[0].Quantity = 0 }, "quantity 0"},
		{"Arabic-Indic document number", func(r *storev1.IssueFormRequest, g *forms.IssueRequest) {
			g.Application.Traveller.Document.Number = "E١٢٣٤٥"
		}, "document number"},
		{"unparsed date", func(r *storev1.IssueFormRequest, g *forms.IssueRequest) {
			r.Traveller.DocumentExpiryDate = "2030-02-30"
		}, "dates"},
		{"101 lines accepted", func(r *storev1.IssueFormRequest, g *forms.IssueRequest) {
			for range 99 {
				r.Lines = append(r.Lines, r.Lines[0])
				g.Application.Lines = append(g.Application.Lines, g.Application.Lines[0])
			}
		}, "101 lines"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, got := good()
			c.mutate(req, &got)
			p := checkIssue(req, accepted, nil, []forms.IssueRequest{got})
			if !strings.Contains(p, c.want) {
				t.Errorf("checkIssue reports %q, want it to mention %q", p, c.want)
			}
		})
	}

	t.Run("101 lines refused without saying so", func(t *testing.T) {
		req, _ := good()
		for range 99 {
			req.Lines = append(req.Lines, req.Lines[0])
		}
		err := &fault.Error{Kind: fault.Invalid, Reason: "INVALID_REQUEST", Violations: []fault.Violation{{Field: "lines[100].amount", Description: "bad"}}}
		if p := checkIssue(req, nil, err, nil); !strings.Contains(p, "at most 100 lines") {
			t.Errorf("checkIssue reports %q", p)
		}
		if p := checkIssue(req, nil, errors.New("boom"), nil); !strings.Contains(p, "not INVALID_ARGUMENT") {
			t.Errorf("checkIssue on an internal error reports %q", p)
		}
	})
	t.Run("refusal quoting raw input", func(t *testing.T) {
		for _, d := range []string{"no line is on invoice INV-\u202eFDP", "no line is on invoice " + strings.Repeat("A", 300), "document E12345678 unknown"} {
			err := &fault.Error{Kind: fault.Invalid, Violations: []fault.Violation{{Field: "invoices[1]", Description: d}}}
			if refusalProblem(err, "E1234 5678") == "" {
				t.Errorf("refusalProblem misses %.60q", d)
			}
		}
	})
	t.Run("amounts a broken parser accepts", func(t *testing.T) {
		for _, c := range []struct{ s, d string }{{"1e3", "1000"}, {"١٢٣", "123"}, {"0.001", "0.001"}, {"100000000.01", "100000000.01"}, {"-5", "-5"}} {
			if amountProblem(c.s, decimal.RequireFromString(c.d), nil, decimal.Zero, errors.New("refused"), false) == "" {
				t.Errorf("amountProblem misses %q accepted as %s", c.s, c.d)
			}
		}
		if amountProblem("0.5e1", decimal.Zero, errors.New("x"), decimal.RequireFromString("5"), nil, false) == "" {
			t.Errorf("amountProblem misses a VAT rate 0.5e1 accepted")
		}
		if amountProblem("NaN", decimal.Zero, errors.New("x"), decimal.Zero, errors.New("x"), true) == "" {
			t.Errorf("amountProblem misses PlainDecimal(NaN)")
		}
	})
}
