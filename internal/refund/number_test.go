package refund_test

import (
	"strings"
	"testing"

	"taxrefund/internal/refund"
)

const formAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

func TestNewFormNumber(t *testing.T) {
	const n = 10_000
	seen := make(map[string]bool, n)
	// used[i] is the set of symbols seen at random position i (after "TR").
	var used [16]map[byte]bool
	for i := range used {
		used[i] = map[byte]bool{}
	}
	for range n {
		s := refund.NewFormNumber()
		if seen[s] {
			t.Fatalf("NewFormNumber returned %s twice", s)
		}
		seen[s] = true
		if len(s) != 19 {
			t.Fatalf("NewFormNumber() = %q, length %d, want 19", s, len(s))
		}
		if !strings.HasPrefix(s, "TR") {
			t.Fatalf("NewFormNumber() = %q, want prefix TR", s)
		}
		if strings.ContainsAny(s[2:], "ILOUilou") {
			t.Fatalf("NewFormNumber() = %q contains I, L, O or U", s)
		}
		for j := 2; j < len(s); j++ {
			if strings.IndexByte(formAlphabet, s[j]) < 0 {
				t.Fatalf("NewFormNumber() = %q: %q is not in %s", s, s[j], formAlphabet)
			}
		}
		if !refund.ValidFormNumber(s) {
			t.Fatalf("ValidFormNumber(%q) = false for a fresh number", s)
		}
		for i := range 16 {
			used[i][s[2+i]] = true
		}
	}
	// 80 random bits make every symbol equally likely at each position: over 10,000 numbers
	// a symbol never seen at one position has probability about 32 × e^-312.
	for i, u := range used {
		if len(u) != 32 {
			t.Errorf("position %d used %d of the 32 symbols over %d numbers", 2+i, len(u), n)
		}
	}
}

// Every single-character substitution of a valid number is refused, whatever the byte.
func TestValidFormNumberRefusesEverySubstitution(t *testing.T) {
	for range 20 {
		valid := refund.NewFormNumber()
		for pos := range len(valid) {
			for b := range 256 {
				if byte(b) == valid[pos] {
					continue
				}
				mutated := []byte(valid)
				mutated[pos] = byte(b)
				if refund.ValidFormNumber(string(mutated)) {
					t.Fatalf("ValidFormNumber(%q) = true: %s with position %d changed from %q to %q",
						mutated, valid, pos, valid[pos], byte(b))
				}
			}
		}
	}
}

func TestValidFormNumberRefusesMalformed(t *testing.T) {
	valid := refund.NewFormNumber()
	tests := []struct{ name, in string }{
		{"empty", ""},
		{"prefix only", "TR"},
		{"lowercase", strings.ToLower(valid)},
		{"lowercase prefix", "tr" + valid[2:]},
		{"lowercase body", "TR" + strings.ToLower(valid[2:])},
		{"one symbol short", valid[:18]},
		{"one symbol long", valid + "0"},
		{"leading space", " " + valid},
		{"trailing space", valid + " "},
		{"trailing newline", valid + "\n"},
		{"hyphenated", valid[:10] + "-" + valid[10:]},
		{"other prefix", "TX" + valid[2:]},
	}
	for _, tt := range tests {
		if refund.ValidFormNumber(tt.in) {
			t.Errorf("%s: ValidFormNumber(%q) = true, want false", tt.name, tt.in)
		}
	}
	if !refund.ValidFormNumber(valid) {
		t.Fatalf("ValidFormNumber(%q) = false for a fresh number", valid)
	}
}
