package refund_test

import (
	"testing"

	"github.com/shopspring/decimal"

	"taxrefund/internal/refund"
)

// line is a line of goods for Compute: amount, quantity and the refund rate Assess would set.
func line(amount string, quantity int32, refundRate string) refund.Line {
	return refund.Line{
		Category:   refund.General,
		Quantity:   quantity,
		Amount:     dec(amount),
		RefundRate: dec(refundRate),
	}
}

func TestCompute(t *testing.T) {
	tests := []struct {
		name      string
		lines     []refund.Line
		confirmed []int32 // nil: the whole form, as issued
		feeRate   string
		// Want A, G, F and N = G − F, and each line's displayed refund.
		wantA, wantG, wantF, wantN string
		wantLines                  []string
	}{
		{
			name:    "DOMAIN example: 1,000.00 at 13% and 500.00 at 9%",
			lines:   []refund.Line{line("1000.00", 1, "0.11"), line("500.00", 1, "0.08")},
			feeRate: "0.02",
			wantA:   "1500.00", wantG: "150.00", wantF: "30.00", wantN: "120.00",
			wantLines: []string{"110.00", "40.00"},
		},
		{
			name:      "DOMAIN example fully confirmed",
			lines:     []refund.Line{line("1000.00", 2, "0.11"), line("500.00", 1, "0.08")},
			confirmed: []int32{2, 1},
			feeRate:   "0.02",
			wantA:     "1500.00", wantG: "150.00", wantF: "30.00", wantN: "120.00",
			wantLines: []string{"110.00", "40.00"},
		},
		{
			// Each line is 0.0055; G = round(0.0165) = 0.02. Rounding each line first
			// (0.01 + 0.01 + 0.01) would give 0.03.
			name:    "single rounding at the end: three lines of 0.05 at 0.11",
			lines:   []refund.Line{line("0.05", 1, "0.11"), line("0.05", 1, "0.11"), line("0.05", 1, "0.11")},
			feeRate: "0.02",
			wantA:   "0.15", wantG: "0.02", wantF: "0.00", wantN: "0.02",
			wantLines: []string{"0.01", "0.01", "0.01"},
		},
		{
			name:      "2 of 3 units of a 300.00 line at 13%",
			lines:     []refund.Line{line("300.00", 3, "0.11")},
			confirmed: []int32{2},
			feeRate:   "0.02",
			wantA:     "200.00", wantG: "22.00", wantF: "4.00", wantN: "18.00",
			wantLines: []string{"22.00"},
		},
		{
			name:      "2 of 3 units of a 300.00 line at 13%, beside a fully confirmed 500.00 at 9%",
			lines:     []refund.Line{line("300.00", 3, "0.11"), line("500.00", 1, "0.08")},
			confirmed: []int32{2, 1},
			feeRate:   "0.02",
			wantA:     "700.00", wantG: "62.00", wantF: "14.00", wantN: "48.00",
			wantLines: []string{"22.00", "40.00"},
		},
		{
			// A' = 33.333…, G' = 3.6666… → 3.67, F = 0.6666… → 0.67.
			name:      "1 of 3 units of 100.00 at 0.11",
			lines:     []refund.Line{line("100.00", 3, "0.11")},
			confirmed: []int32{1},
			feeRate:   "0.02",
			wantA:     "33.33", wantG: "3.67", wantF: "0.67", wantN: "3.00",
			wantLines: []string{"3.67"},
		},
		{
			// 4.50 × 0.11 = 0.495 exactly (as a float64 it is 0.49499…).
			name:    "half cent on a whole line: 4.50 at 0.11 = 0.495",
			lines:   []refund.Line{line("4.50", 1, "0.11")},
			feeRate: "0.02",
			wantA:   "4.50", wantG: "0.50", wantF: "0.09", wantN: "0.41",
			wantLines: []string{"0.50"},
		},
		{
			// 13.50 × 1/3 = 4.50; × 0.11 = 0.495 exactly.
			name:      "half cent after partial confirmation: 1 of 3 of 13.50 at 0.11 = 0.495",
			lines:     []refund.Line{line("13.50", 3, "0.11")},
			confirmed: []int32{1},
			feeRate:   "0.02",
			wantA:     "4.50", wantG: "0.50", wantF: "0.09", wantN: "0.41",
			wantLines: []string{"0.50"},
		},
		{
			// 1,012.50 × 1/3 = 337.50; × 0.11 = 37.125 exactly.
			name:      "half cent after partial confirmation: 1 of 3 of 1,012.50 at 0.11 = 37.125",
			lines:     []refund.Line{line("1012.50", 3, "0.11")},
			confirmed: []int32{1},
			feeRate:   "0.02",
			wantA:     "337.50", wantG: "37.13", wantF: "6.75", wantN: "30.38",
			wantLines: []string{"37.13"},
		},
		{
			// 0.25 × 1/4 = 0.0625 → A' 0.06; × 0.08 = 0.005 exactly → 0.01; fee 0.00125 → 0.00.
			name:      "half cent of a sub-fen share: 1 of 4 of 0.25 at 0.08 = 0.005",
			lines:     []refund.Line{line("0.25", 4, "0.08")},
			confirmed: []int32{1},
			feeRate:   "0.02",
			wantA:     "0.06", wantG: "0.01", wantF: "0.00", wantN: "0.01",
			wantLines: []string{"0.01"},
		},
		{
			// A' = 750.24666… → 750.25. F = round(750.24666… × 0.02 = 15.00493…) = 15.00;
			// computing F from the rounded A' (750.25 × 0.02 = 15.005) would give 15.01.
			// G' = 82.52713… → 82.53.
			name:      "fee from the exact confirmed amount: 1 of 3 of 2,250.74 at 0.11",
			lines:     []refund.Line{line("2250.74", 3, "0.11")},
			confirmed: []int32{1},
			feeRate:   "0.02",
			wantA:     "750.25", wantG: "82.53", wantF: "15.00", wantN: "67.53",
			wantLines: []string{"82.53"},
		},
		{
			name:      "zero confirmed on every line",
			lines:     []refund.Line{line("1000.00", 2, "0.11"), line("500.00", 1, "0.08")},
			confirmed: []int32{0, 0},
			feeRate:   "0.02",
			wantA:     "0.00", wantG: "0.00", wantF: "0.00", wantN: "0.00",
			wantLines: []string{"0.00", "0.00"},
		},
		{
			name:      "zero confirmed on one line",
			lines:     []refund.Line{line("1000.00", 2, "0.11"), line("500.00", 1, "0.08")},
			confirmed: []int32{0, 1},
			feeRate:   "0.02",
			wantA:     "500.00", wantG: "40.00", wantF: "10.00", wantN: "30.00",
			wantLines: []string{"0.00", "40.00"},
		},
		{
			name:    "agency with a 1.5% fee",
			lines:   []refund.Line{line("1000.00", 1, "0.11"), line("500.00", 1, "0.08")},
			feeRate: "0.015",
			wantA:   "1500.00", wantG: "150.00", wantF: "22.50", wantN: "127.50",
			wantLines: []string{"110.00", "40.00"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			amounts := make([]decimal.Decimal, len(tt.lines))
			for i, l := range tt.lines {
				amounts[i] = l.Amount
			}

			tot := refund.Compute(tt.lines, tt.confirmed)
			fee := tot.Fee(dec(tt.feeRate))
			net := tot.Gross.Sub(fee)

			for _, c := range []struct {
				what      string
				got       decimal.Decimal
				wantFixed string
			}{
				{"A", tot.Eligible, tt.wantA},
				{"G", tot.Gross, tt.wantG},
				{"F", fee, tt.wantF},
				{"N", net, tt.wantN},
			} {
				if c.got.StringFixed(2) != c.wantFixed || !c.got.Equal(dec(c.wantFixed)) {
					t.Errorf("%s = %s, want %s", c.what, c.got.String(), c.wantFixed)
				}
			}
			for i, want := range tt.wantLines {
				got := refund.LineRefund(tt.lines, tt.confirmed, i)
				if got.StringFixed(2) != want || !got.Equal(dec(want)) {
					t.Errorf("LineRefund(line %d) = %s, want %s", i, got.String(), want)
				}
			}
			for i, l := range tt.lines {
				if !l.Amount.Equal(amounts[i]) {
					t.Errorf("Compute changed line %d's amount from %s to %s", i, amounts[i], l.Amount)
				}
			}
		})
	}
}

// The fee of Totals not made by Compute (e.g. read back from the database) is computed from
// the rounded A.
func TestFeeOfStoredTotals(t *testing.T) {
	tests := []struct{ eligible, rate, want string }{
		{"1500.00", "0.02", "30.00"},
		{"33.33", "0.02", "0.67"}, // 0.6666 → 0.67
		{"0.25", "0.02", "0.01"},  // 0.005 → 0.01
		{"0.24", "0.02", "0.00"},  // 0.0048 → 0.00
		{"1494.00", "0.02", "29.88"},
	}
	for _, tt := range tests {
		got := refund.Totals{Eligible: dec(tt.eligible)}.Fee(dec(tt.rate))
		if got.StringFixed(2) != tt.want || !got.Equal(dec(tt.want)) {
			t.Errorf("Totals{Eligible: %s}.Fee(%s) = %s, want %s", tt.eligible, tt.rate, got, tt.want)
		}
	}
}
