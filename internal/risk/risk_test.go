package risk_test

import (
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"taxrefund/internal/fault"
	"taxrefund/internal/refund"
	"taxrefund/internal/risk"
)

// The rules of DOMAIN.md §8a at their boundaries, with the figures written out. The base
// case is GREEN: a 1,000.00 form issued at 10:00 (Shanghai) on 2026-03-10, 10 days after
// entry, confirmed at 12:00, the document's only form.
var (
	issued  = time.Date(2026, 3, 10, 2, 0, 0, 0, time.UTC) // 10:00 in Shanghai
	confirm = issued.Add(2 * time.Hour)
	day     = refund.LocalDate(issued)
)

func dec(s string) *decimal.Decimal { d := decimal.RequireFromString(s); return &d }
func num(n int) *int                { return &n }

// defaults are the seeded defaults (seeds/demo.sql).
func defaults() risk.Params {
	return risk.Params{
		VelocityDays: num(7), VelocityForms: num(3), VelocityAmount: dec("50000.00"),
		SplitMargin: dec("50.00"), SplitForms: num(2), MinPurchase: dec("200.00"),
		SerialThreshold: dec("50000.00"), StayMarginDays: num(7), MinAgeMinutes: num(60),
	}
}

func baseFacts() risk.Facts {
	f := risk.Form{
		Number: "TR1", StoreCode: "S-JFB-1", Eligible: decimal.RequireFromString("1000.00"),
		IssuedAt: issued, PurchaseDate: day, LastEntry: day.AddDate(0, 0, -10),
		Lines: []risk.Line{{No: 1, Amount: decimal.RequireFromString("1000.00")}},
	}
	return risk.Facts{Form: f, Document: []risk.Other{self(f)}, At: confirm}
}

func self(f risk.Form) risk.Other {
	return risk.Other{Number: f.Number, StoreCode: f.StoreCode, PurchaseDate: f.PurchaseDate, IssuedAt: f.IssuedAt, Eligible: f.Eligible}
}

// others adds n more forms of the document at store, each of amount, issued ago before
// the confirmation.
func others(f *risk.Facts, n int, store, amount string, ago time.Duration) {
	for range n {
		at := f.At.Add(-ago)
		f.Document = append(f.Document, risk.Other{Number: "TRX", StoreCode: store, PurchaseDate: refund.LocalDate(at),
			IssuedAt: at, Eligible: decimal.RequireFromString(amount)})
	}
}

func TestAssess(t *testing.T) {
	tests := []struct {
		name   string
		facts  func(f *risk.Facts)
		params func(p *risk.Params)
		want   []string // rule codes; nil is GREEN
		text   string   // a part of the first reason's text
	}{
		{name: "the base case is green"},

		// velocity: more than N = 3 forms within M = 7 days.
		{name: "3 forms within 7 days: green", facts: func(f *risk.Facts) { others(f, 2, "S-JFB-2", "300.00", 24*time.Hour) }},
		{name: "4 forms within 7 days: red", facts: func(f *risk.Facts) { others(f, 3, "S-JFB-2", "300.00", 24*time.Hour) },
			want: []string{risk.RuleVelocity}, text: "velocity: 4 forms within 7 days (limit 3)"},
		{name: "a form issued exactly 7 days before is outside the window", facts: func(f *risk.Facts) {
			others(f, 2, "S-JFB-2", "300.00", 24*time.Hour)
			others(f, 1, "S-JFB-2", "300.00", 7*24*time.Hour)
		}},
		{name: "a form issued 7 days less a second before is inside", facts: func(f *risk.Facts) {
			others(f, 2, "S-JFB-2", "300.00", 24*time.Hour)
			others(f, 1, "S-JFB-2", "300.00", 7*24*time.Hour-time.Second)
		}, want: []string{risk.RuleVelocity}},
		// velocity by amount: more than X = 50,000.00 CNY.
		{name: "exactly 50000.00 CNY within 7 days: green", facts: func(f *risk.Facts) { others(f, 1, "S-JFB-2", "49000.00", time.Hour) }},
		{name: "50000.01 CNY within 7 days: red", facts: func(f *risk.Facts) { others(f, 1, "S-JFB-2", "49000.01", time.Hour) },
			want: []string{risk.RuleVelocity}, text: "velocity: 50000.01 CNY on 2 forms within 7 days (limit 50000.00)"},
		{name: "velocity off without its parameters", facts: func(f *risk.Facts) { others(f, 5, "S-JFB-2", "30000.00", time.Hour) },
			params: func(p *risk.Params) { p.VelocityDays = nil }},

		// split purchases: 2 forms at one store on one day, each at most 200.00 + 50.00.
		{name: "two forms of exactly 250.00 at one store: red", facts: func(f *risk.Facts) {
			f.Form.Eligible = decimal.RequireFromString("250.00")
			f.Document = []risk.Other{self(f.Form), {Number: "TR2", StoreCode: "S-JFB-1", PurchaseDate: day, IssuedAt: issued.Add(-time.Minute), Eligible: decimal.RequireFromString("210.00")}}
		}, want: []string{risk.RuleSplit}, text: "split purchases: 2 forms at store S-JFB-1 on 2026-03-10, each at most 250.00 CNY (minimum 200.00 + 50.00)"},
		{name: "this form at 250.01: green", facts: func(f *risk.Facts) {
			f.Form.Eligible = decimal.RequireFromString("250.01")
			f.Document = []risk.Other{self(f.Form), {Number: "TR2", StoreCode: "S-JFB-1", PurchaseDate: day, IssuedAt: issued, Eligible: decimal.RequireFromString("210.00")}}
		}},
		{name: "the other form at 250.01: green", facts: func(f *risk.Facts) {
			f.Form.Eligible = decimal.RequireFromString("250.00")
			f.Document = []risk.Other{self(f.Form), {Number: "TR2", StoreCode: "S-JFB-1", PurchaseDate: day, IssuedAt: issued, Eligible: decimal.RequireFromString("250.01")}}
		}},
		{name: "the other form at another store: green", facts: func(f *risk.Facts) {
			f.Form.Eligible = decimal.RequireFromString("250.00")
			f.Document = []risk.Other{self(f.Form), {Number: "TR2", StoreCode: "S-JFB-2", PurchaseDate: day, IssuedAt: issued, Eligible: decimal.RequireFromString("210.00")}}
		}},
		{name: "the other form on the day before: green", facts: func(f *risk.Facts) {
			f.Form.Eligible = decimal.RequireFromString("250.00")
			f.Document = []risk.Other{self(f.Form), {Number: "TR2", StoreCode: "S-JFB-1", PurchaseDate: day.AddDate(0, 0, -1), IssuedAt: issued.Add(-24 * time.Hour), Eligible: decimal.RequireFromString("210.00")}}
		}},
		{name: "3 forms needed: 2 are green", facts: func(f *risk.Facts) {
			f.Form.Eligible = decimal.RequireFromString("250.00")
			f.Document = []risk.Other{self(f.Form), {Number: "TR2", StoreCode: "S-JFB-1", PurchaseDate: day, IssuedAt: issued, Eligible: decimal.RequireFromString("210.00")}}
		}, params: func(p *risk.Params) { p.SplitForms = num(3) }},

		// high value: a line at or above 50,000.00.
		{name: "a line of exactly 50000.00: red", facts: func(f *risk.Facts) {
			f.Form.Lines = append(f.Form.Lines, risk.Line{No: 2, Amount: decimal.RequireFromString("50000.00")})
		}, want: []string{risk.RuleHighValue}, text: "high value: line 2 (50000.00 CNY) at or above 50000.00 CNY"},
		{name: "a line of 49999.99: green", facts: func(f *risk.Facts) {
			f.Form.Lines = []risk.Line{{No: 1, Amount: decimal.RequireFromString("49999.99")}}
			f.Form.Eligible = decimal.RequireFromString("49999.99")
			f.Document = []risk.Other{self(f.Form)}
		}},

		// stay: within K = 7 days of the 183-day limit.
		{name: "purchase 176 days after entry: red", facts: func(f *risk.Facts) { f.Form.LastEntry = day.AddDate(0, 0, -176) },
			want: []string{risk.RuleStay}, text: "stay: purchased 176 days after entry, 7 days from the 183-day limit (margin 7)"},
		{name: "purchase 175 days after entry: green", facts: func(f *risk.Facts) { f.Form.LastEntry = day.AddDate(0, 0, -175) }},

		// store under review.
		{name: "store under review: red", facts: func(f *risk.Facts) { f.StoreUnderReview = true },
			want: []string{risk.RuleStoreReview}, text: "store under review: S-JFB-1"},

		// issued less than an hour (60 minutes) before the confirmation.
		{name: "confirmed exactly an hour after issuance: green", facts: func(f *risk.Facts) { f.At = issued.Add(time.Hour) }},
		{name: "confirmed an hour less a second after issuance: red", facts: func(f *risk.Facts) { f.At = issued.Add(time.Hour - time.Second) },
			want: []string{risk.RuleRecent}, text: "issued recently: 59m59s before the confirmation (minimum 60 minutes)"},

		// every reason is given, in the order of risk.Rules.
		{name: "several rules at once", facts: func(f *risk.Facts) {
			f.StoreUnderReview = true
			f.At = issued.Add(time.Minute)
			f.Form.LastEntry = day.AddDate(0, 0, -183)
		}, want: []string{risk.RuleStay, risk.RuleStoreReview, risk.RuleRecent}},
		{name: "no parameters at all: green", facts: func(f *risk.Facts) { f.At = issued }, params: func(p *risk.Params) { *p = risk.Params{} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, p := baseFacts(), defaults()
			if tc.facts != nil {
				tc.facts(&f)
			}
			if tc.params != nil {
				tc.params(&p)
			}
			got := risk.Assess(f, p)
			if tc.want == nil {
				if got.Level != risk.Green || len(got.Reasons) != 0 {
					t.Fatalf("Assess = %s %q, want GREEN", got.Level, got.Summary())
				}
				return
			}
			if got.Level != risk.Red || strings.Join(got.Codes(), ",") != strings.Join(tc.want, ",") {
				t.Fatalf("Assess = %s %v (%q), want RED %v", got.Level, got.Codes(), got.Summary(), tc.want)
			}
			if tc.text != "" && !strings.Contains(got.Reasons[0].Text, tc.text) {
				t.Fatalf("reason %q, want it to contain %q", got.Reasons[0].Text, tc.text)
			}
		})
	}
}

func TestGate(t *testing.T) {
	red := risk.Rated{Assessment: risk.Assessment{Level: risk.Red, Reasons: []risk.Reason{{Code: risk.RuleRecent, Text: "issued recently: 1m00s before the confirmation (minimum 60 minutes)"}}}}
	all := map[int]int32{1: 1, 2: 1}
	none := map[int]int32{1: 0, 2: 0}
	serial := risk.Rated{Assessment: risk.Assessment{Level: risk.Green}, Serials: map[int]string{2: "SN-123/A"}}
	tests := []struct {
		name      string
		r         risk.Rated
		confirmed map[int]int32
		serials   map[int]string
		reason    string
		field     string
	}{
		{name: "green passes", r: risk.Rated{Assessment: risk.Assessment{Level: risk.Green}}, confirmed: all},
		{name: "red without inspection refused", r: red, confirmed: all, reason: "INSPECTION_REQUIRED"},
		{name: "red rejected (0 units) passes", r: red, confirmed: none},
		{name: "red after a passed inspection passes", r: with(red, risk.Passed), confirmed: all},
		{name: "red after a failed inspection refused", r: with(red, risk.Failed), confirmed: all, reason: "INSPECTION_FAILED"},
		{name: "serial missing refused", r: serial, confirmed: all, reason: "SERIAL_NOT_CONFIRMED", field: "lines[line_no=2].serial_number"},
		{name: "serial mismatch refused", r: serial, confirmed: all, serials: map[int]string{2: "SN-124/A"}, reason: "SERIAL_NOT_CONFIRMED", field: "lines[line_no=2].serial_number"},
		{name: "serial matches in either case", r: serial, confirmed: all, serials: map[int]string{2: "sn-123/a"}},
		{name: "serial not needed for goods not presented", r: serial, confirmed: map[int]int32{1: 1, 2: 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.r.Gate("TR1", tc.confirmed, tc.serials)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("Gate = %v, want nil", err)
				}
				return
			}
			fe, ok := fault.As(err)
			if !ok || fe.Kind != fault.Precondition || fe.Reason != tc.reason {
				t.Fatalf("Gate = %v, want FAILED_PRECONDITION %s", err, tc.reason)
			}
			if tc.field != "" && !strings.Contains(err.Error(), tc.field) && !hasField(fe, tc.field) {
				t.Fatalf("Gate = %v, want field %s", err, tc.field)
			}
		})
	}
	err := red.Gate("TR1", all, nil)
	if !strings.Contains(err.Error(), "inspection required: issued recently") {
		t.Fatalf("refusal %q does not give the reasons", err)
	}
}

func with(r risk.Rated, inspection string) risk.Rated { r.Inspection = inspection; return r }

func hasField(e *fault.Error, field string) bool {
	for _, v := range e.Violations {
		if v.Field == field {
			return true
		}
	}
	return false
}

func TestParseSerial(t *testing.T) {
	for s, ok := range map[string]bool{"SN123": true, "a": true, "C02X-9/1.2": true, "": false, "-X": false, "SN 1": false,
		strings.Repeat("A", 64): true, strings.Repeat("A", 65): false, "Ｓ1": false} {
		if _, got := risk.ParseSerial(s); got != ok {
			t.Errorf("ParseSerial(%q) = %v, want %v", s, got, ok)
		}
	}
}
