package wire_test

import (
	"testing"

	"taxrefund/internal/wire"
)

// TestAmountMessages: an amount's violation names the field as lines[i].amount and says
// what is wrong; a negative amount says it is not positive, with the value.
func TestAmountMessages(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"-5.00", "-5.00: must be positive"},
		{"0.00", "must be greater than 0 and at most 100000000.00"},
		{"1e3", `must be a plain decimal with at most 2 fraction digits, e.g. "1234.50"`},
	} {
		f := wire.NewFields()
		f.Amount("lines[0].amount", tt.in)
		if len(f.Violations) != 1 || f.Violations[0].Field != "lines[0].amount" || f.Violations[0].Description != tt.want {
			t.Errorf("Amount(%q): %+v, want lines[0].amount: %q", tt.in, f.Violations, tt.want)
		}
	}
}
