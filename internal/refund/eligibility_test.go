package refund_test

import (
	"testing"

	"github.com/shopspring/decimal"

	"taxrefund/internal/fault"
	"taxrefund/internal/refund"
)

// params are the parameters in force from 2025-04-27 (DOMAIN.md §3).
func params() refund.Params {
	return refund.Params{
		MinPurchase: dec("200.00"),
		RefundRates: map[string]decimal.Decimal{
			"0.13": dec("0.11"),
			"0.09": dec("0.08"),
		},
		ExportWindowDays: 90,
	}
}

// application is an eligible purchase on 2026-03-10 by a US passport holder who entered on
// 2026-02-01: two invoices, 1,000.00 at 13% and 500.00 at 9%.
func application(t testing.TB) refund.Application {
	return refund.Application{
		Traveller: refund.Traveller{
			Document:    refund.Document{Type: refund.Passport, Number: "E12345678", IssuingCountry: "US"},
			Expiry:      date(t, "2030-01-01"),
			Nationality: "US",
			LastEntry:   date(t, "2026-02-01"),
		},
		Invoices: []refund.Invoice{
			{Number: "26500000000000000001", Date: date(t, "2026-03-10")},
			{Number: "26500000000000000002", Date: date(t, "2026-03-09")},
		},
		Lines: []refund.Line{
			{Description: "Silk scarf", Category: refund.General, VATRate: dec("0.13"), Quantity: 1,
				Amount: dec("1000.00"), InvoiceNumber: "26500000000000000001"},
			{Description: "Tea", Category: refund.General, VATRate: dec("0.09"), Quantity: 2,
				Amount: dec("500.00"), InvoiceNumber: "26500000000000000002"},
		},
		PurchaseDate: date(t, "2026-03-10"),
	}
}

func TestAssessRefusals(t *testing.T) {
	type refusal struct {
		kind   fault.Kind
		reason string
		field  string
	}
	tests := []struct {
		name   string
		change func(t testing.TB, a *refund.Application)
		want   *refusal // nil: accepted
	}{
		{"foreign passport accepted", func(t testing.TB, a *refund.Application) {}, nil},

		// §2.1 documents.
		{"passport issued by CN refused", func(t testing.TB, a *refund.Application) {
			a.Traveller.Document.IssuingCountry = "CN"
		}, &refusal{fault.Precondition, "DOCUMENT_NOT_ACCEPTED", "traveller.document.issuing_country"}},
		{"HK_MACAO_PERMIT issued by CN accepted", func(t testing.TB, a *refund.Application) {
			a.Traveller.Document = refund.Document{Type: refund.HKMacaoPermit, Number: "H12345678", IssuingCountry: "CN"}
		}, nil},
		{"TAIWAN_PERMIT issued by CN accepted", func(t testing.TB, a *refund.Application) {
			a.Traveller.Document = refund.Document{Type: refund.TaiwanPermit, Number: "12345678", IssuingCountry: "CN"}
		}, nil},

		// A document expired before the purchase date is not valid.
		{"document expired the day before the purchase refused", func(t testing.TB, a *refund.Application) {
			a.Traveller.Expiry = date(t, "2026-03-09")
		}, &refusal{fault.Precondition, "DOCUMENT_EXPIRED", "traveller.document_expiry_date"}},
		{"document expired years before refused", func(t testing.TB, a *refund.Application) {
			a.Traveller.Expiry = date(t, "2020-01-01")
		}, &refusal{fault.Precondition, "DOCUMENT_EXPIRED", "traveller.document_expiry_date"}},
		{"document expiring on the purchase date accepted", func(t testing.TB, a *refund.Application) {
			a.Traveller.Expiry = date(t, "2026-03-10")
		}, nil},

		// §2.3 stay limit: purchase at most 183 days after the last entry.
		{"purchase 183 days after entry accepted", func(t testing.TB, a *refund.Application) {
			a.Traveller.LastEntry = date(t, "2025-09-08")
		}, nil},
		{"purchase 184 days after entry refused", func(t testing.TB, a *refund.Application) {
			a.Traveller.LastEntry = date(t, "2025-09-07")
		}, &refusal{fault.Precondition, "STAY_LIMIT_EXCEEDED", "traveller.last_entry_date"}},
		{"purchase on the day of entry accepted", func(t testing.TB, a *refund.Application) {
			a.Traveller.LastEntry = date(t, "2026-03-10")
			a.Invoices[1].Date = date(t, "2026-03-10")
		}, nil},
		{"last entry after the purchase refused", func(t testing.TB, a *refund.Application) {
			a.Traveller.LastEntry = date(t, "2026-03-11")
		}, &refusal{fault.Invalid, "ENTRY_AFTER_PURCHASE", "traveller.last_entry_date"}},

		// §2.4 invoice date not before the last entry.
		{"second invoice dated the day before entry refused", func(t testing.TB, a *refund.Application) {
			a.Invoices[1].Date = date(t, "2026-01-31")
		}, &refusal{fault.Precondition, "INVOICE_BEFORE_ENTRY", "invoices[1].date"}},
		{"first invoice dated before entry refused", func(t testing.TB, a *refund.Application) {
			a.Invoices[0].Date = date(t, "2025-12-25")
		}, &refusal{fault.Precondition, "INVOICE_BEFORE_ENTRY", "invoices[0].date"}},
		{"invoice dated on the day of entry accepted", func(t testing.TB, a *refund.Application) {
			a.Invoices[1].Date = date(t, "2026-02-01")
		}, nil},
		{"invoice dated after the purchase date refused", func(t testing.TB, a *refund.Application) {
			a.Invoices[1].Date = date(t, "2026-03-11")
		}, &refusal{fault.Invalid, "INVOICE_IN_FUTURE", "invoices[1].date"}},

		// §2.5 / §4 goods.
		{"unknown category refused", func(t testing.TB, a *refund.Application) {
			a.Lines[0].Category = ""
		}, &refusal{fault.Precondition, "GOODS_NOT_REFUNDABLE", "lines[0].category"}},

		// §4 VAT rates: only 13% and 9% are refundable.
		{"VAT rate 0.06 refused", func(t testing.TB, a *refund.Application) {
			a.Lines[1].VATRate = dec("0.06")
		}, &refusal{fault.Precondition, "VAT_RATE_NOT_REFUNDABLE", "lines[1].vat_rate"}},
		{"VAT rate 0.06 on the first line refused", func(t testing.TB, a *refund.Application) {
			a.Lines[0].VATRate = dec("0.06")
		}, &refusal{fault.Precondition, "VAT_RATE_NOT_REFUNDABLE", "lines[0].vat_rate"}},
		{"VAT rate 0.17 (before 2018) refused", func(t testing.TB, a *refund.Application) {
			a.Lines[1].VATRate = dec("0.17")
		}, &refusal{fault.Precondition, "VAT_RATE_NOT_REFUNDABLE", "lines[1].vat_rate"}},
		{"VAT rate 0.16 (2018-2019) refused", func(t testing.TB, a *refund.Application) {
			a.Lines[1].VATRate = dec("0.16")
		}, &refusal{fault.Precondition, "VAT_RATE_NOT_REFUNDABLE", "lines[1].vat_rate"}},
		{"VAT rate 0 refused", func(t testing.TB, a *refund.Application) {
			a.Lines[1].VATRate = dec("0")
		}, &refusal{fault.Precondition, "VAT_RATE_NOT_REFUNDABLE", "lines[1].vat_rate"}},
		{"refund rate 0.11 sent as a VAT rate refused", func(t testing.TB, a *refund.Application) {
			a.Lines[1].VATRate = dec("0.11")
		}, &refusal{fault.Precondition, "VAT_RATE_NOT_REFUNDABLE", "lines[1].vat_rate"}},
		{"VAT rates written 0.130 and 0.0900 accepted", func(t testing.TB, a *refund.Application) {
			a.Lines[0].VATRate = dec("0.130")
			a.Lines[1].VATRate = dec("0.0900")
		}, nil},
	}
	for _, c := range []refund.Category{
		refund.PreciousMetal, refund.CulturalRelic, refund.CurrencySecurities, refund.RadioTransceiver,
		refund.PreciousTCM, refund.EndangeredSpecies, refund.VATExempt,
	} {
		tests = append(tests, struct {
			name   string
			change func(t testing.TB, a *refund.Application)
			want   *refusal
		}{
			"second line " + string(c) + " refused",
			func(t testing.TB, a *refund.Application) { a.Lines[1].Category = c },
			&refusal{fault.Precondition, "GOODS_NOT_REFUNDABLE", "lines[1].category"},
		})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := application(t)
			tt.change(t, &app)
			got, err := refund.Assess(app, params())
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Assess refused: %v", err)
				}
				if !got.Eligible.Equal(dec("1500.00")) || !got.Gross.Equal(dec("150.00")) {
					t.Errorf("Assess = A %s, G %s; want A 1500.00, G 150.00", got.Eligible, got.Gross)
				}
				return
			}
			wantFault(t, err, tt.want.kind, tt.want.reason, tt.want.field)
		})
	}
}

// §2.2: a last entry date that is not known must not pass.
func TestAssessRefusesUnknownLastEntry(t *testing.T) {
	app := application(t)
	app.Traveller.LastEntry = date(t, "0001-01-01") // the zero time.Time
	if !app.Traveller.LastEntry.IsZero() {
		t.Fatal("test date is not the zero time")
	}
	_, err := refund.Assess(app, params())
	fe, ok := fault.As(err)
	if !ok {
		t.Fatalf("Assess with an unknown last entry = %v, want a refusal", err)
	}
	if len(fe.Violations) != 1 || fe.Violations[0].Field != "traveller.last_entry_date" {
		t.Errorf("refusal %s names %v, want traveller.last_entry_date", fe.Reason, fe.Violations)
	}
}

func TestAssessComputes(t *testing.T) {
	tests := []struct {
		name        string
		change      func(t testing.TB, a *refund.Application, p *refund.Params)
		wantRates   []string
		wantA       string
		wantG       string
		wantLastDay string
	}{
		{
			name:        "DOMAIN example, export by purchase date + 90",
			change:      func(t testing.TB, a *refund.Application, p *refund.Params) {},
			wantRates:   []string{"0.11", "0.08"},
			wantA:       "1500.00",
			wantG:       "150.00",
			wantLastDay: "2026-06-08",
		},
		{
			name: "three lines, two at 13% rounded once",
			change: func(t testing.TB, a *refund.Application, p *refund.Params) {
				a.Lines = append(a.Lines, refund.Line{Description: "Fan", Category: refund.General,
					VATRate: dec("0.13"), Quantity: 1, Amount: dec("0.05"), InvoiceNumber: "26500000000000000001"})
				a.Lines[1].Amount = dec("0.05")
				a.Lines[1].VATRate = dec("0.13")
				a.Lines[0].Amount = dec("0.05")
			},
			wantRates:   []string{"0.11", "0.11", "0.11"},
			wantA:       "0.15",
			wantG:       "0.02",
			wantLastDay: "2026-06-08",
		},
		{
			name: "export window crossing a year end",
			change: func(t testing.TB, a *refund.Application, p *refund.Params) {
				a.PurchaseDate = date(t, "2026-11-15")
				a.Invoices[0].Date = date(t, "2026-11-15")
				a.Invoices[1].Date = date(t, "2026-11-14")
				a.Traveller.LastEntry = date(t, "2026-11-01")
			},
			wantRates:   []string{"0.11", "0.08"},
			wantA:       "1500.00",
			wantG:       "150.00",
			wantLastDay: "2027-02-13",
		},
		{
			name: "export window and refund rates come from the parameters",
			change: func(t testing.TB, a *refund.Application, p *refund.Params) {
				p.ExportWindowDays = 30
				p.RefundRates = map[string]decimal.Decimal{"0.13": dec("0.10"), "0.09": dec("0.07")}
			},
			wantRates:   []string{"0.10", "0.07"},
			wantA:       "1500.00",
			wantG:       "135.00",
			wantLastDay: "2026-04-09",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app, p := application(t), params()
			tt.change(t, &app, &p)
			got, err := refund.Assess(app, p)
			if err != nil {
				t.Fatalf("Assess refused: %v", err)
			}
			if len(got.Lines) != len(tt.wantRates) {
				t.Fatalf("Assess returned %d lines, want %d", len(got.Lines), len(tt.wantRates))
			}
			for i, want := range tt.wantRates {
				l := got.Lines[i]
				if !l.RefundRate.Equal(dec(want)) {
					t.Errorf("line %d refund rate = %s, want %s", i, l.RefundRate, want)
				}
				if l.Description != app.Lines[i].Description || !l.Amount.Equal(app.Lines[i].Amount) ||
					l.Quantity != app.Lines[i].Quantity || l.InvoiceNumber != app.Lines[i].InvoiceNumber {
					t.Errorf("line %d = %+v, want the application's line %+v with a refund rate", i, l, app.Lines[i])
				}
			}
			if got.Eligible.StringFixed(2) != tt.wantA || got.Gross.StringFixed(2) != tt.wantG {
				t.Errorf("Assess = A %s, G %s; want A %s, G %s", got.Eligible, got.Gross, tt.wantA, tt.wantG)
			}
			if !got.ExportDeadline.Equal(date(t, tt.wantLastDay)) {
				t.Errorf("export deadline = %s, want %s", refund.FormatDate(got.ExportDeadline), tt.wantLastDay)
			}
		})
	}
}

func TestCheckMinimum(t *testing.T) {
	tests := []struct {
		name              string
		eligible, sameDay string
		minimum           string
		refused           bool
	}{
		{"199.99 alone", "199.99", "0", "200.00", true},
		{"200.00 alone", "200.00", "0", "200.00", false},
		{"200.01 alone", "200.01", "0", "200.00", false},
		{"150.00 + 50.00 from earlier forms that day", "150.00", "50.00", "200.00", false},
		{"150.00 + 49.99 from earlier forms that day", "150.00", "49.99", "200.00", true},
		{"0.01 + 199.99", "0.01", "199.99", "200.00", false},
		{"499.99 under the minimum before 2025-04-27", "499.99", "0", "500.00", true},
		{"300.00 + 200.00 under the minimum before 2025-04-27", "300.00", "200.00", "500.00", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := refund.CheckMinimum(dec(tt.eligible), dec(tt.sameDay), dec(tt.minimum))
			if !tt.refused {
				if err != nil {
					t.Fatalf("CheckMinimum(%s, %s, %s) = %v, want accepted", tt.eligible, tt.sameDay, tt.minimum, err)
				}
				return
			}
			wantFault(t, err, fault.Precondition, "BELOW_MINIMUM", "lines")
		})
	}
}
