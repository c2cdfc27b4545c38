package dbtest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"taxrefund/internal/db"
	"taxrefund/internal/fault"
	"taxrefund/internal/invariants"
)

// WantFault fails unless err is a *fault.Error of kind k and reason; fields, when given,
// must be exactly the violations' fields, in order. It returns the fault.
func WantFault(t testing.TB, err error, k fault.Kind, reason string, fields ...string) *fault.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s %s %q", k, reason, fields)
	}
	fe, ok := fault.As(err)
	if !ok {
		t.Fatalf("got %T %v, want a *fault.Error %s %s", err, err, k, reason)
	}
	if fe.Kind != k || fe.Reason != reason {
		t.Fatalf("got %s %s (%v), want %s %s", fe.Kind, fe.Reason, err, k, reason)
	}
	if len(fields) > 0 {
		var got []string
		for _, v := range fe.Violations {
			got = append(got, v.Field)
		}
		if fmt.Sprint(got) != fmt.Sprint(fields) {
			t.Errorf("%s: violations name %q, want %q", reason, got, fields)
		}
	}
	return fe
}

// SQLState returns err's PostgreSQL error code (SQLSTATE), or "" if err is not a
// PostgreSQL error.
func SQLState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// CheckInvariants fails the test on any DOMAIN.md §8 invariant violation (invariants.Check).
func CheckInvariants(t testing.TB, ctx context.Context, q db.DBTX) {
	t.Helper()
	vs, err := invariants.Check(ctx, q)
	if err != nil {
		t.Fatalf("invariants: %v", err)
	}
	for _, v := range vs {
		t.Errorf("invariant %s violated: %s", v.Invariant, v.Detail)
	}
}
