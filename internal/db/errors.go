package db

import (
	"context"
	"errors"
	"io"
	"net"
	"regexp"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrCommitUnknown marks a transaction whose COMMIT outcome the server cannot know: the
// connection was lost while COMMIT was in flight, or PostgreSQL committed locally but
// cancelled the wait for the synchronous standby (the commit may be lost in a failover).
// The answer must not be a success: the caller retries with the same request_id and the
// idempotency record decides.
var ErrCommitUnknown = errors.New("commit outcome unknown")

// IsUnavailable reports whether err says the database cannot be reached or cannot take
// writes now (a connection refused, reset or lost; a primary that is shutting down or was
// demoted; too many connections), so that a retry with the same request_id, perhaps on
// another server or after a failover, is safe and may succeed.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrCommitUnknown) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "25006", // read_only_sql_transaction: a demoted primary or a standby
			"57P01", // admin_shutdown
			"57P02", // crash_shutdown
			"57P03", // cannot_connect_now: starting up or shutting down
			"53300", // too_many_connections
			"53400": // configuration_limit_exceeded
			return true
		}
		// Class 08: connection exceptions.
		return len(pgErr.Code) == 5 && pgErr.Code[:2] == "08"
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		return true
	}
	if pgconn.SafeToRetry(err) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

// IsStatementTimeout reports whether PostgreSQL cancelled a statement on its
// statement_timeout or lock_timeout (57014 query_canceled, 55P03 lock_not_available),
// rather than the caller going away.
func IsStatementTimeout(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return pgErr.Code == "57014" || pgErr.Code == "55P03"
}

// IsCallerGone reports whether err comes from the caller's context ending.
func IsCallerGone(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// closedMonthText finds the posting's date in the message of the closed-month trigger
// (migrations/00003_settlement.sql: "month of 2026-10-15 is closed: ...").
var closedMonthText = regexp.MustCompile(`\b([0-9]{4}-[0-9]{2})-[0-9]{2}\b`)

// IsClosedMonth reports whether err is the database refusing a posting into a closed
// accounting month (SQLSTATE TR002), and which month ("YYYY-MM", empty if unknown).
func IsClosedMonth(err error) (string, bool) {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "TR002" {
		return "", false
	}
	if m := closedMonthText.FindStringSubmatch(pgErr.Message); m != nil {
		return m[1], true
	}
	return "", true
}
