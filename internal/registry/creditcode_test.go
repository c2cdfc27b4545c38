package registry_test

import (
	"strings"
	"testing"

	"taxrefund/internal/registry"
)

// seedCodes are the unified social credit codes of seeds/demo.sql's stores, each valid
// (check characters recomputed by hand from GB 32100-2015: weights 3^i mod 31).
var seedCodes = []string{
	"91500103AY4CL12THR", "915001033BJ1XG612X", "91500103DD272HD1T8", "91500103J3Y7LLJY1P",
	"91500103JJC171HU4A", "915001039D4H3J9HTR", "91510104M53JJL6B3L", "91510104HN2J1K6FM5",
	"91510104HDQAEJXEB6", "9151010497R5NQ72JX", "915101049GFWAPE9KU", "9151010423GD5QA4XL",
}

// alphabet is GB 32100-2015's character set, written out here: 0-9 and A-Y without I, O,
// S, V, Z.
const alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"

func TestValidCreditCode(t *testing.T) {
	t.Parallel()
	type tc struct {
		name string
		code string
		want bool
	}
	cases := []tc{
		// A code often quoted as an example; its check character is 3.
		{"published example", "91350100M000100Y43", true},
		// Σ value × weight = 0, so the check is 31 − 0 = 31, written as 0.
		{"check 31 written as 0", "000000000000000000", true},
		{"check 31 written as 31", "00000000000000000Y", false},
		// Σ = 1 × 1, so the check is 30: Y, the alphabet's last character.
		{"check 30 is Y", "10000000000000000Y", true},
		{"wrong check character", "91500103AY4CL12THX", false},
		{"check character off by one", "91500103AY4CL12THQ", false},
		{"17 characters", "91500103AY4CL12TH", false},
		{"19 characters", "91500103AY4CL12THR0", false},
		{"valid code with a trailing space", "91500103AY4CL12THR ", false},
		{"empty", "", false},
		{"lowercase", "91500103ay4cl12thr", false},
		{"lowercase check character only", "91500103AY4CL12THr", false},
		{"two body characters swapped", "91500103YA4CL12THR", false},
		// 18 bytes but not 18 characters of the alphabet: a full-width digit is 3 bytes.
		{"full-width digit", "915001３AY4CL12TH", false},
		{"space inside", "91500103 Y4CL12THR", false},
		{"hyphen inside", "91500103-Y4CL12THR", false},
	}
	for i, c := range seedCodes {
		cases = append(cases, tc{"seed code " + string(rune('a'+i)), c, true})
	}
	// A forbidden letter in the body invalidates the code whatever the check character.
	for _, bad := range "IOSVZ" {
		body := "91500103" + string(bad) + "Y4CL12TH"
		for _, check := range alphabet + "IOSVZ" {
			cases = append(cases, tc{"forbidden " + string(bad) + " check " + string(check), body + string(check), false})
		}
		// ... and as the check character of a valid body.
		cases = append(cases, tc{"forbidden " + string(bad) + " as check", "91500103AY4CL12TH" + string(bad), false})
	}
	for _, c := range cases {
		if got := registry.ValidCreditCode(c.code); got != c.want {
			t.Errorf("%s: ValidCreditCode(%q) = %v, want %v", c.name, c.code, got, c.want)
		}
	}
}

// TestValidCreditCodeDetectsEverySubstitution: 31 is prime and no weight is 0 mod 31, so
// changing any one character of a valid code to any other character of the alphabet
// must make it invalid.
func TestValidCreditCodeDetectsEverySubstitution(t *testing.T) {
	t.Parallel()
	n := 0
	for _, code := range append(seedCodes, "91350100M000100Y43") {
		for pos := range 18 {
			for _, c := range alphabet {
				if byte(c) == code[pos] {
					continue
				}
				changed := code[:pos] + string(c) + code[pos+1:]
				n++
				if registry.ValidCreditCode(changed) {
					t.Errorf("%s with position %d changed to %c (%s) is accepted", code, pos+1, c, changed)
				}
			}
		}
	}
	if want := 13 * 18 * 30; n != want {
		t.Fatalf("tried %d substitutions, want %d", n, want)
	}
	t.Logf("%d single-character substitutions of 13 valid codes, all refused", n)
}

// TestValidCreditCodeCheckCharacterIsUnique: for a 17-character body exactly one of the 31
// check characters is accepted.
func TestValidCreditCodeCheckCharacterIsUnique(t *testing.T) {
	t.Parallel()
	for _, code := range seedCodes {
		var ok []string
		for _, c := range alphabet {
			if registry.ValidCreditCode(code[:17] + string(c)) {
				ok = append(ok, string(c))
			}
		}
		if strings.Join(ok, "") != code[17:] {
			t.Errorf("body %s: accepted check characters %q, want only %q", code[:17], ok, code[17:])
		}
	}
}
