package money_test

import (
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"taxrefund/internal/money"
)

func TestParsePositiveAccepts(t *testing.T) {
	tests := []struct {
		in   string
		want string // money.Format of the result
	}{
		{"1", "1.00"},
		{"0.01", "0.01"},
		{"0.1", "0.10"},
		{"0.99", "0.99"},
		{"150", "150.00"},
		{"1234.50", "1234.50"},
		{"1234.5", "1234.50"},
		{"99999999.99", "99999999.99"},
		{"100000000", "100000000.00"},
		{"100000000.00", "100000000.00"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := money.ParsePositive(tt.in)
			if err != nil {
				t.Fatalf("ParsePositive(%q) error %v, want %s", tt.in, err, tt.want)
			}
			if s := money.Format(got); s != tt.want {
				t.Errorf("ParsePositive(%q) = %s, want %s", tt.in, s, tt.want)
			}
			if !got.Equal(decimal.RequireFromString(tt.want)) {
				t.Errorf("ParsePositive(%q) = %s, not equal to %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestParsePositiveRefuses(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"negative", "-1", money.ErrNegative},
		{"negative fraction", "-0.01", money.ErrNegative},
		{"negative with fen", "-5.00", money.ErrNegative},
		{"negative zero", "-0", money.ErrNegative},
		{"two minus signs", "--5", money.ErrFormat},
		{"negative exponent", "-1e9", money.ErrFormat},
		{"zero", "0", money.ErrRange},
		{"zero with fen", "0.00", money.ErrRange},
		{"zero with one fraction digit", "0.0", money.ErrRange},
		{"exponent", "1e9", money.ErrFormat},
		{"huge exponent", "1E1000000000", money.ErrFormat},
		{"exponent with fraction", "1.5e2", money.ErrFormat},
		{"NaN", "NaN", money.ErrFormat},
		{"nan", "nan", money.ErrFormat},
		{"Infinity", "Infinity", money.ErrFormat},
		{"Inf", "Inf", money.ErrFormat},
		{"three fraction digits", "12.345", money.ErrFormat},
		{"three fraction digits of zero", "12.000", money.ErrFormat},
		{"sub-fen", "0.001", money.ErrFormat},
		{"leading space", " 1", money.ErrFormat},
		{"trailing space", "1 ", money.ErrFormat},
		{"trailing newline", "1\n", money.ErrFormat},
		{"leading tab", "\t1", money.ErrFormat},
		{"plus sign", "+1", money.ErrFormat},
		{"leading zero", "01", money.ErrFormat},
		{"leading zeros before point", "00.50", money.ErrFormat},
		{"trailing point", "1.", money.ErrFormat},
		{"leading point", ".5", money.ErrFormat},
		{"two points", "1.2.3", money.ErrFormat},
		{"thousands separator", "1,000.00", money.ErrFormat},
		{"decimal comma", "1,50", money.ErrFormat},
		{"underscore", "1_000", money.ErrFormat},
		{"hex", "0x10", money.ErrFormat},
		{"empty", "", money.ErrFormat},
		{"Arabic-Indic digits", "١٢٣", money.ErrFormat},
		{"fullwidth digit", "１", money.ErrFormat},
		{"right-to-left mark", "1\u200f", money.ErrFormat},
		{"zero-width space", "\u200b1", money.ErrFormat},
		{"NUL", "1\x00", money.ErrFormat},
		{"one fen above max", "100000000.01", money.ErrRange},
		{"one yuan above max", "100000001", money.ErrRange},
		{"largest nine digits", "999999999.99", money.ErrRange},
		{"ten integer digits", "1000000000", money.ErrFormat},
		{"currency sign", "¥1", money.ErrFormat},
		{"currency code", "1 CNY", money.ErrFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := money.ParsePositive(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParsePositive(%q) = %s, %v; want error %v", tt.in, got, err, tt.want)
			}
			if !got.IsZero() {
				t.Errorf("ParsePositive(%q) returned %s with its error, want the zero value", tt.in, got)
			}
		})
	}
}

// A 10 MB string must be refused before any parsing, without allocating in proportion to it.
func TestParsePositiveRefusesHugeInputFast(t *testing.T) {
	const size = 10 << 20
	for _, tt := range []struct {
		name string
		in   string
	}{
		{"digits", strings.Repeat("9", size)},
		{"one then zeros", "1" + strings.Repeat("0", size-1)},
		{"amount then fraction zeros", "1." + strings.Repeat("0", size-2)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			start := time.Now()
			_, err := money.ParsePositive(tt.in)
			elapsed := time.Since(start)
			runtime.ReadMemStats(&after)

			if !errors.Is(err, money.ErrFormat) {
				t.Fatalf("ParsePositive(%d bytes) error %v, want ErrFormat", len(tt.in), err)
			}
			if elapsed > 50*time.Millisecond {
				t.Errorf("ParsePositive(%d bytes) took %v, want it refused at once", len(tt.in), elapsed)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<10 {
				t.Errorf("ParsePositive(%d bytes) allocated %d bytes, want < 64 KiB", len(tt.in), alloc)
			}
		})
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		in   decimal.Decimal
		want string
	}{
		{decimal.New(150, 0), "150.00"},
		{decimal.RequireFromString("150"), "150.00"},
		{decimal.RequireFromString("0.5"), "0.50"},
		{decimal.RequireFromString("1234.5"), "1234.50"},
		{decimal.RequireFromString("0.01"), "0.01"},
		{decimal.Zero, "0.00"},
		{decimal.New(100_000_000, 0), "100000000.00"},
	}
	for _, tt := range tests {
		if got := money.Format(tt.in); got != tt.want {
			t.Errorf("Format(%s) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRoundHalfUp(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"0.005", "0.01"},
		{"0.0049", "0.00"},
		{"0.004999999999", "0.00"},
		{"2.675", "2.68"}, // 2.675 as a float64 is 2.67499999…, which rounds down
		{"2.665", "2.67"},
		{"0.015", "0.02"},
		{"0.025", "0.03"}, // half-even would give 0.02
		{"1.125", "1.13"}, // half-even would give 1.12
		{"12.3449", "12.34"},
		{"12.345", "12.35"},
		{"150", "150.00"},
		{"0", "0.00"},
	}
	for _, tt := range tests {
		got := money.Round(decimal.RequireFromString(tt.in))
		if got.StringFixed(2) != tt.want || !got.Equal(decimal.RequireFromString(tt.want)) {
			t.Errorf("Round(%s) = %s, want %s", tt.in, got.StringFixed(2), tt.want)
		}
	}
}

var maxAmount = decimal.New(100_000_000, 0)

func FuzzParsePositive(f *testing.F) {
	for _, s := range []string{
		"1", "0.01", "1234.50", "100000000.00", "100000000.01", "99999999.99",
		"-1", "0", "0.00", "1e9", "1E1000000000", "NaN", "Infinity", "12.345",
		" 1", "1 ", "+1", "01", "1.", ".5", "١٢٣", "1\u200f", "1\x00", "0.5", "9.9",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := money.ParsePositive(s)
		if err != nil {
			if !errors.Is(err, money.ErrFormat) && !errors.Is(err, money.ErrRange) && !errors.Is(err, money.ErrNegative) {
				t.Fatalf("ParsePositive(%q) error %v is neither ErrFormat, ErrRange nor ErrNegative", s, err)
			}
			if errors.Is(err, money.ErrNegative) && (len(s) < 2 || s[0] != '-' || len(s) > 17) {
				t.Fatalf("ParsePositive(%q) says negative", s)
			}
			return
		}
		if !d.IsPositive() {
			t.Fatalf("ParsePositive(%q) = %s, not > 0", s, d)
		}
		if d.GreaterThan(maxAmount) {
			t.Fatalf("ParsePositive(%q) = %s, above 100000000", s, d)
		}
		if !d.Equal(d.Truncate(2)) {
			t.Fatalf("ParsePositive(%q) = %s, more than 2 decimal places", s, d)
		}
		for _, r := range s {
			if (r < '0' || r > '9') && r != '.' {
				t.Fatalf("ParsePositive(%q) accepted the character %q", s, r)
			}
		}
		formatted := money.Format(d)
		back, err := money.ParsePositive(formatted)
		if err != nil {
			t.Fatalf("ParsePositive(%q) = %s, but its Format %q does not re-parse: %v", s, d, formatted, err)
		}
		if !back.Equal(d) {
			t.Fatalf("ParsePositive(%q) = %s, but Format %q re-parses to %s", s, d, formatted, back)
		}
	})
}
