package loadgen

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"taxrefund/internal/dbtest"
	"taxrefund/seeds"
)

// benchDB returns a fresh migrated and seeded database with three bench stores.
func benchDB(t *testing.T) (*pgxpool.Pool, string) {
	t.Helper()
	url := dbtest.NewURL(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := pool.Exec(ctx, seeds.Demo); err != nil {
		t.Fatalf("seed: %v", err)
	}
	if err := Setup(ctx, pool, SetupConfig{Stores: 3, CertDir: t.TempDir(), Log: io.Discard}); err != nil {
		t.Fatalf("setup: %v", err)
	}
	// Idempotent.
	if err := Setup(ctx, pool, SetupConfig{Stores: 3, CertDir: t.TempDir(), Log: io.Discard}); err != nil {
		t.Fatalf("setup again: %v", err)
	}
	return pool, url
}

// The pgbench baselines write through the real tables and triggers and leave a consistent
// ledger: every invariant holds after them, and the desk baseline paid each prepared form
// exactly once.
func TestBaselinesKeepInvariants(t *testing.T) {
	if _, err := findPgbench(); err != nil {
		t.Skip(err)
	}
	pool, url := benchDB(t)
	ctx := context.Background()
	cfg := BaselineConfig{DatabaseURL: url, Concurrency: 2, Threads: 1, Duration: time.Second, Stores: 3,
		RateHint: 20, WorkDir: t.TempDir(), Log: io.Discard}

	cfg.Scenario = "issue"
	r, err := Baseline(ctx, pool, cfg)
	if err != nil {
		t.Fatalf("issue baseline: %v", err)
	}
	var forms, lines, invoices, idem, audit, entries int64
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM forms), (SELECT count(*) FROM form_lines),
		(SELECT count(*) FROM form_invoices), (SELECT count(*) FROM idempotency_keys), (SELECT count(*) FROM audit_events),
		(SELECT count(*) FROM journal_entries)`).Scan(&forms, &lines, &invoices, &idem, &audit, &entries); err != nil {
		t.Fatal(err)
	}
	if r.Ops == 0 || forms != r.Ops || idem != forms || audit != forms || entries != 2*forms || lines < forms || invoices < forms {
		t.Errorf("issue baseline: %d tx wrote %d forms, %d lines, %d invoices, %d idempotency records, %d audit events, %d entries",
			r.Ops, forms, lines, invoices, idem, audit, entries)
	}
	if r.Latency.P50 <= 0 || r.OpsPerSec <= 0 {
		t.Errorf("issue baseline result %+v: want throughput and latency", r)
	}

	cfg.Scenario = "desk"
	r, err = Baseline(ctx, pool, cfg)
	if err != nil {
		t.Fatalf("desk baseline: %v", err)
	}
	var paid, payouts int64
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM forms WHERE number LIKE 'TRBD%' AND state = 'REFUNDED'),
		(SELECT count(*) FROM payouts)`).Scan(&paid, &payouts); err != nil {
		t.Fatal(err)
	}
	// 20 tx/s × 1s over 2 clients: 10 forms each.
	if r.Ops != 20 || paid != 20 || payouts != 20 {
		t.Errorf("desk baseline: %d tx, %d forms paid, %d payouts; want 20 of each", r.Ops, paid, payouts)
	}
	// Again on the same database: it prepares forms of its own.
	time.Sleep(time.Second) // a new epoch
	if _, err := Baseline(ctx, pool, cfg); err != nil {
		t.Fatalf("desk baseline again: %v", err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM payouts`).Scan(&payouts); err != nil || payouts != 40 {
		t.Errorf("%d payouts after two desk baselines (%v), want 40", payouts, err)
	}
	var out strings.Builder
	if err := Check(ctx, pool, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
}

// Fill writes forms the invariants accept and tops up to the total asked for, with the
// triggers (an ordinary user) and without them (a superuser: the balances are then
// maintained by Fill itself).
func TestFillKeepsInvariants(t *testing.T) {
	pool, url := benchDB(t)
	ctx := context.Background()
	cfg := FillConfig{Total: 250, Batch: 100, Workers: 2, Stores: 3, Keys: testKeys(t), Log: io.Discard}
	if err := Fill(ctx, pool, cfg); err != nil {
		t.Fatal(err)
	}
	checkFilled(t, pool, 250)

	// The same database as the server's superuser (TEST_DATABASE_URL's user).
	su, err := pgxpool.ParseConfig(dbtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	own, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	su.ConnConfig.Database = own.Database
	var isSuper bool
	suPool, err := pgxpool.NewWithConfig(ctx, su)
	if err == nil {
		defer suPool.Close()
		err = suPool.QueryRow(ctx, `SELECT rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&isSuper)
	}
	if err != nil || !isSuper {
		t.Skipf("no superuser to fill without triggers (%v)", err)
	}
	cfg.Total = 600
	if err := Fill(ctx, suPool, cfg); err != nil {
		t.Fatal(err)
	}
	checkFilled(t, suPool, 600)
}

func checkFilled(t *testing.T, pool *pgxpool.Pool, want int64) {
	t.Helper()
	ctx := context.Background()
	n, err := countForms(ctx, pool)
	if err != nil || n != want {
		t.Fatalf("%d forms after fill (%v), want %d", n, err, want)
	}
	var blocks int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM forms f JOIN stores s ON s.code = f.store_code AND s.block_code = f.block_code`).Scan(&blocks); err != nil {
		t.Fatal(err)
	}
	if blocks != want {
		t.Errorf("%d of %d forms carry their store's block", blocks, want)
	}
	var out strings.Builder
	if err := Check(ctx, pool, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
}
