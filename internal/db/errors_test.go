package db

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestErrorClasses(t *testing.T) {
	pg := func(code string) error { return fmt.Errorf("exec: %w", &pgconn.PgError{Code: code}) }
	cases := []struct {
		name                 string
		err                  error
		unavailable, timeout bool
	}{
		{"read-only transaction (demoted primary)", pg("25006"), true, false},
		{"admin shutdown", pg("57P01"), true, false},
		{"cannot connect now", pg("57P03"), true, false},
		{"connection failure class 08", pg("08006"), true, false},
		{"too many connections", pg("53300"), true, false},
		{"commit outcome unknown", fmt.Errorf("commit: %w", ErrCommitUnknown), true, false},
		{"connection reset", fmt.Errorf("read: %w", syscall.ECONNRESET), true, false},
		{"connection refused", fmt.Errorf("dial: %w", syscall.ECONNREFUSED), true, false},
		{"unexpected EOF", io.ErrUnexpectedEOF, true, false},
		{"statement timeout", pg("57014"), false, true},
		{"lock timeout", pg("55P03"), false, true},
		{"unique violation", pg("23505"), false, false},
		{"check violation", pg("23514"), false, false},
		{"serialization failure", pg("40001"), false, false},
		{"plain error", errors.New("boom"), false, false},
		{"caller cancelled", context.Canceled, false, false},
	}
	for _, c := range cases {
		if got := IsUnavailable(c.err); got != c.unavailable {
			t.Errorf("%s: IsUnavailable = %v, want %v", c.name, got, c.unavailable)
		}
		if got := IsStatementTimeout(c.err); got != c.timeout {
			t.Errorf("%s: IsStatementTimeout = %v, want %v", c.name, got, c.timeout)
		}
	}
}
