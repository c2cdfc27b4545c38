package refund_test

import (
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"taxrefund/internal/fault"
)

// dec parses a decimal written out in a test table.
func dec(s string) decimal.Decimal {
	return decimal.RequireFromString(s)
}

// date parses a "YYYY-MM-DD" civil date as the refund package holds it (00:00 UTC).
func date(t testing.TB, s string) time.Time {
	t.Helper()
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		t.Fatalf("bad test date %q: %v", s, err)
	}
	return d
}

// wantFault fails unless err is a *fault.Error of kind k with the reason and, when field is
// not empty, exactly one violation naming field.
func wantFault(t testing.TB, err error, k fault.Kind, reason, field string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s %s (field %q)", k, reason, field)
	}
	fe, ok := fault.As(err)
	if !ok {
		t.Fatalf("got %T %v, want a *fault.Error", err, err)
	}
	if fe.Kind != k || fe.Reason != reason {
		t.Errorf("got %s %s, want %s %s (%v)", fe.Kind, fe.Reason, k, reason, err)
	}
	if field == "" {
		return
	}
	if len(fe.Violations) != 1 || fe.Violations[0].Field != field {
		var fields []string
		for _, v := range fe.Violations {
			fields = append(fields, v.Field)
		}
		t.Errorf("got violations on %q, want exactly one on %q", fields, field)
	}
}
