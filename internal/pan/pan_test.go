package pan_test

import (
	"testing"

	"taxrefund/internal/pan"
)

// The card brands' published test numbers (Stripe, Adyen, PayPal and the brands' own
// test-card lists), each found bare, in a token, and grouped with spaces or dashes.
var testCards = []string{
	"4111111111111111",    // Visa
	"4012888888881881",    // Visa
	"4222222222222",       // Visa, 13 digits
	"5555555555554444",    // Mastercard
	"2223003122003222",    // Mastercard, 2-series
	"5105105105105100",    // Mastercard
	"378282246310005",     // American Express, 15 digits
	"371449635398431",     // American Express
	"6011111111111117",    // Discover
	"6011000990139424",    // Discover
	"3530111333300000",    // JCB
	"3566002020360505",    // JCB
	"6200000000000005",    // UnionPay
	"6250941006528599",    // UnionPay
	"36227206271667",      // Diners Club, 14 digits
	"30569309025904",      // Diners Club
	"6221261111111111113", // 19 digits, UnionPay range (Luhn-valid)
}

func TestFindsPublishedTestNumbers(t *testing.T) {
	for _, n := range testCards {
		for _, s := range []string{n, "tok_" + n, "tok" + n + "x", "a " + n + " b", group(n, " "), group(n, "-"), "tok_" + group(n, "-") + "_9"} {
			got, ok := pan.Find(s)
			if !ok || got != n {
				t.Errorf("Find(%q) = %q, %v; want %q, true", s, got, ok, n)
			}
		}
	}
}

// group writes n in groups of four joined by sep, as printed on a card.
func group(n, sep string) string {
	out := ""
	for i := 0; i < len(n); i += 4 {
		if i > 0 {
			out += sep
		}
		out += n[i:min(i+4, len(n))]
	}
	return out
}

// Near misses: Luhn-invalid runs, runs too short, digits split by other characters or
// by doubled separators, and an acquirer token of the usual shape.
func TestNearMissesPass(t *testing.T) {
	for _, s := range []string{
		"",
		"4111111111111112",           // Visa test number, last digit changed: Luhn-invalid
		"5555555555554445",           // Mastercard, Luhn-invalid
		"378282246310006",            // Amex, Luhn-invalid
		"411111111111",               // 12 digits
		"42424242",                   // short
		"4111.1111.1111.1111",        // dots are not card grouping: four 4-digit runs
		"4111_1111_1111_1111",        // underscores neither
		"4111  1111  1111  1111",     // doubled separators break the run
		"4111--1111--1111--1111",     // doubled dashes too
		"tok_5f2c9a7e81d04b",         // an ordinary token
		"tok_demo_0001",              // the README's token
		"tok_0123abcd_4567ef01",      // the load generator's shape
		"AGR-2026-12-05-0001",        // an agreement reference with a date
		"1500.00",                    // an amount
		"2026-12-05 17:03:11.123+08", // a timestamp
	} {
		if got, ok := pan.Find(s); ok {
			t.Errorf("Find(%q) = %q, true; want no card number", s, got)
		}
	}
}

// A long digit run hides a card number glued to other digits.
func TestLongRunWindows(t *testing.T) {
	if got, ok := pan.Find("99994111111111111111"); !ok || !pan.Luhn(got) {
		t.Errorf("Find(long run) = %q, %v; want a card number", got, ok)
	}
}

func TestLuhn(t *testing.T) {
	for s, want := range map[string]bool{"79927398713": true, "79927398710": false, "0": true, "": false, "12a4": false} {
		if got := pan.Luhn(s); got != want {
			t.Errorf("Luhn(%q) = %v, want %v", s, got, want)
		}
	}
}

func FuzzFind(f *testing.F) {
	for _, n := range testCards {
		f.Add(n)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := pan.Find(s)
		if ok && (len(got) < 13 || len(got) > 19 || !pan.Luhn(got)) {
			t.Fatalf("Find(%q) = %q: not a 13-19 digit Luhn-valid number", s, got)
		}
	})
}
