package registry_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"taxrefund/internal/dbtest"
	"taxrefund/internal/idempotency"
	"taxrefund/internal/registry"
)

// official is the authority party every change is made by.
const official = "taxrefund://authority/sat-officer-7"

// env is a fresh database with dbtest.Registry's registry (blocks JFB and CXL, agencies
// AG-CQ and AG-CD, region SC-CQ, stores S-JFB-1, S-JFB-2, S-CXL-1, S-SUSP, S-EXIT) and the
// registry service on a settable clock.
type env struct {
	t     *testing.T
	ctx   context.Context
	pool  *pgxpool.Pool
	clock *dbtest.Clock
	svc   *registry.Service
}

// octNoon is 2026-10-10 12:00 in Asia/Shanghai.
var octNoon = time.Date(2026, 10, 10, 4, 0, 0, 0, time.UTC)

func newEnv(t *testing.T, now time.Time) *env {
	t.Helper()
	pool := dbtest.NewPool(t)
	dbtest.Registry(t, pool)
	clock := dbtest.NewClock(now)
	return &env{t: t, ctx: context.Background(), pool: pool, clock: clock, svc: registry.New(pool, clock.Now)}
}

// key is a fresh idempotency key of the official for a request with content.
func key(content string) idempotency.Key {
	return idempotency.Key{Caller: official, RequestID: uuid.New(), Hash: idempotency.Hash([]byte(content))}
}

// tables are what a refused change must leave untouched.
var tables = []string{"stores", "parameters", "audit_events", "idempotency_keys"}

func (e *env) counts() map[string]int {
	e.t.Helper()
	out := map[string]int{}
	for _, tbl := range tables {
		out[tbl] = e.count(`SELECT count(*) FROM ` + tbl)
	}
	return out
}

func (e *env) count(sql string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(e.ctx, sql, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func sameCounts(t *testing.T, what string, before, after map[string]int) {
	t.Helper()
	for _, tbl := range tables {
		if before[tbl] != after[tbl] {
			t.Errorf("%s: %s has %d rows before, %d after: a refused change wrote", what, tbl, before[tbl], after[tbl])
		}
	}
}

// auditEvent is one row of audit_events.
type auditEvent struct {
	Actor, Action, Object string
	RequestID             *uuid.UUID
	Detail                string
	At                    time.Time
}

// audit returns the audit events about object, oldest first.
func (e *env) audit(object string) []auditEvent {
	e.t.Helper()
	rows, err := e.pool.Query(e.ctx, `SELECT actor, action, object, request_id, detail::text, at FROM audit_events WHERE object = $1 ORDER BY id`, object)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []auditEvent
	for rows.Next() {
		var a auditEvent
		if err := rows.Scan(&a.Actor, &a.Action, &a.Object, &a.RequestID, &a.Detail, &a.At); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// wantFault fails unless err is a *fault.Error of kind k and reason; fields, when given,
// must be exactly the violations' fields, in order.
var wantFault = dbtest.WantFault

// date parses "YYYY-MM-DD" as a civil date (00:00 UTC).
func date(t *testing.T, s string) time.Time {
	t.Helper()
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
