package db_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/shopspring/decimal"

	"taxrefund/internal/db"
	"taxrefund/internal/dbtest"
)

// The service's uuid and decimal parameters are encoded by a plan for their type, not by
// pgx's driver.Valuer fallback (text out, a failed encode, text parsed back, encoded
// again), which cost 5% of the server's CPU in the desk mix for the uuids alone. (A
// non-nil *uuid.UUID still takes the fallback: pgx does not dereference a pointer that
// is itself a driver.Valuer. uuid.NullUUID has a plan.) A uuid round-trips unchanged.
func TestPoolEncodesUUIDsAndDecimalsDirectly(t *testing.T) {
	ctx := context.Background()
	pool, err := db.Open(ctx, dbtest.NewURL(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	m := conn.Conn().TypeMap()
	u := uuid.New()
	for _, c := range []struct {
		oid   uint32
		value any
	}{
		{pgtype.UUIDOID, u}, {pgtype.UUIDOID, uuid.NullUUID{UUID: u, Valid: true}}, {pgtype.UUIDArrayOID, []uuid.UUID{u}},
		{pgtype.NumericOID, decimal.RequireFromString("12.34")},
	} {
		for _, format := range []int16{pgtype.BinaryFormatCode, pgtype.TextFormatCode} {
			if plan := fmt.Sprintf("%T", m.PlanEncode(c.oid, format, c.value)); plan == "*pgtype.encodePlanDriverValuer" {
				t.Errorf("%T (format %d) is encoded through driver.Valuer", c.value, format)
			}
		}
	}
	var back uuid.UUID
	var text string
	if err := conn.QueryRow(ctx, `SELECT $1::uuid, $1::uuid::text`, u).Scan(&back, &text); err != nil {
		t.Fatal(err)
	}
	if back != u || text != u.String() {
		t.Errorf("uuid %s came back as %s (%s)", u, back, text)
	}
}

// TestPoolGivesIdleConnectionsBack: a pool keeps an unused connection IdleTimeout, not
// pgxpool's 30 minutes, so a quiet server leaves PostgreSQL's connections to others; a
// URL's own setting wins.
func TestPoolGivesIdleConnectionsBack(t *testing.T) {
	ctx := context.Background()
	url := dbtest.NewURL(t)
	pool, err := db.Open(ctx, url, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if got := pool.Config().MaxConnIdleTime; got != db.IdleTimeout {
		t.Errorf("idle timeout %s, want %s", got, db.IdleTimeout)
	}
	if got := pool.Config().HealthCheckPeriod; got > 10*time.Second {
		t.Errorf("idle connections looked for every %s: a quiet pool holds them that much longer", got)
	}
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	own, err := db.Open(ctx, url+sep+"pool_max_conn_idle_time=7m&pool_health_check_period=1m", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	if got := own.Config().MaxConnIdleTime; got != 7*time.Minute {
		t.Errorf("URL's idle timeout: got %s, want 7m", got)
	}
	if got := own.Config().HealthCheckPeriod; got != time.Minute {
		t.Errorf("URL's health check period: got %s, want 1m", got)
	}
}
