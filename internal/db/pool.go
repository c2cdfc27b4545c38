// Package db opens the PostgreSQL pool, migrates the schema and holds the sqlc queries.
package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	decimalcodec "github.com/jackc/pgx-shopspring-decimal"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	uuidcodec "github.com/vgarvardt/pgx-google-uuid/v5"

	"taxrefund/migrations"
	"taxrefund/seeds"
)

// AppRole is the database role the service acts as: it owns nothing and may not update
// or delete journal, audit or payout rows (migrations/00006_app_role.sql).
const AppRole = "taxrefund_app"

// ConnectTimeout bounds the opening of one connection (TCP, TLS and the start-up
// exchange) when the URL sets no connect_timeout. Acquiring a connection from the pool is
// bounded by the caller's context: every gRPC call has the server's deadline.
const ConnectTimeout = 5 * time.Second

// IdleTimeout is how long a pool keeps a connection nobody uses, when the URL sets no
// pool_max_conn_idle_time (pgxpool's own default is 30 minutes). A server that has gone
// quiet gives its connections back to PostgreSQL within IdleTimeout + idleCheck: four
// services' pools hold up to 4 × -max-conns of the server's max_connections (100 by
// default), which other clients (a second server, psql, pgbench) then lack.
const IdleTimeout = 30 * time.Second

// idleCheck is how often the pool looks for idle connections to close, when the URL sets
// no pool_health_check_period.
const idleCheck = 5 * time.Second

// Open connects a pool to url, with numeric columns decoded as decimal.Decimal, as the
// URL's user (the owner: migrations, seeds, tests' fixtures).
func Open(ctx context.Context, url string, maxConns int32) (*pgxpool.Pool, error) {
	return OpenAs(ctx, url, maxConns, "")
}

// OpenAs is Open acting as role when role is not empty (the service's pool runs as
// AppRole). It logs in as role itself when the server lets it (the URL's password, or
// trust), so that no statement of the service can RESET ROLE to a privileged user;
// otherwise it logs in as the URL's user and switches every connection with SET ROLE.
func OpenAs(ctx context.Context, url string, maxConns int32, role string, opts ...Option) (*pgxpool.Pool, error) {
	if role != "" {
		pool, err := open(ctx, url, maxConns, func(cfg *pgxpool.Config) {
			cfg.ConnConfig.User = role
			genericPlans(cfg)
			apply(cfg, opts)
		})
		if err == nil {
			return pool, nil
		}
		return open(ctx, url, maxConns, func(cfg *pgxpool.Config) {
			genericPlans(cfg)
			apply(cfg, opts)
			cfg.AfterConnect = chain(cfg.AfterConnect, func(ctx context.Context, conn *pgx.Conn) error {
				if _, err := conn.Exec(ctx, "SET ROLE "+pgx.Identifier{role}.Sanitize()); err != nil {
					return fmt.Errorf("set role %s: %w", role, err)
				}
				return nil
			})
		})
	}
	return open(ctx, url, maxConns, func(cfg *pgxpool.Config) { apply(cfg, opts) })
}

// Option adjusts a pool's configuration before it opens.
type Option func(*pgxpool.Config)

// WithTracer traces every statement of the pool's connections (otelpgx: a span per query,
// batch and connect, children of the call's span).
func WithTracer(t pgx.QueryTracer) Option {
	return func(cfg *pgxpool.Config) { cfg.ConnConfig.Tracer = t }
}

func apply(cfg *pgxpool.Config, opts []Option) {
	for _, o := range opts {
		o(cfg)
	}
}

// genericPlans makes the service's connections keep one plan per prepared statement
// (plan_cache_mode = force_generic_plan). By default PostgreSQL plans a statement afresh
// at every execution when its custom plans look cheaper than the generic one, which the
// desk's statements (number = ANY($1), id = ANY($1)) always did; and under row-level
// security each planning of a statement on forms or payouts also plans the policies, with
// their sub-selects and functions: about a third of PostgreSQL's time in the desk mix went
// to planning (BENCH.md). The service's statements are key look-ups and small range
// scans, whose generic plans use the same indexes. The pgbench baselines run the same way.
func genericPlans(cfg *pgxpool.Config) {
	cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_generic_plan"
}

func chain(a, b func(context.Context, *pgx.Conn) error) func(context.Context, *pgx.Conn) error {
	return func(ctx context.Context, c *pgx.Conn) error {
		if err := a(ctx, c); err != nil {
			return err
		}
		return b(ctx, c)
	}
}

func open(ctx context.Context, url string, maxConns int32, adjust func(*pgxpool.Config)) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	// A server that accepts TCP but never answers (a partition, a hung host) must fail a
	// new connection, not hold it for the kernel's minutes; connect_timeout in the URL wins.
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = ConnectTimeout
	}
	if !strings.Contains(url, "pool_max_conn_idle_time") {
		cfg.MaxConnIdleTime = IdleTimeout
	}
	if !strings.Contains(url, "pool_health_check_period") {
		cfg.HealthCheckPeriod = idleCheck
	}
	// A COMMIT whose wait for the synchronous standby was cancelled is not a success
	// (commit.go).
	cfg.ConnConfig.OnNotice = onNotice
	cfg.AfterConnect = func(_ context.Context, conn *pgx.Conn) error {
		decimalcodec.Register(conn.TypeMap())
		// google/uuid's UUID has no encode plan of pgx's own: without this codec every
		// uuid parameter went through driver.Valuer (format as text, fail to encode
		// that as binary, build the error, parse the text back, encode again), 5% of
		// the server's CPU in the desk mix (BENCH.md).
		uuidcodec.Register(conn.TypeMap())
		return nil
	}
	if adjust != nil {
		adjust(cfg)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("ping database: %w", err)
	}
	return pool, nil
}

// resetInterval is the least time between two resets of one pool (resetOnFailover).
const resetInterval = time.Second

// lastReset holds, per pool, when resetOnFailover last reset it (unix nanoseconds).
var lastReset sync.Map // *pgxpool.Pool -> *atomic.Int64

// resetOnFailover drops every connection of pool at once when err says the server went
// away or stopped being the primary (admin or crash shutdown, read-only transaction, a
// connection reset, refused or cut): its other connections are to that server too. Left
// alone, each would fail one call in turn (a connection used within the last second is
// not pinged before reuse), and each failed call costs its client a retry back-off: the
// window of a failover grew by seconds (BENCH.md). A caller's own deadline or cancel is
// no sign of a failover. Connections in use are closed when released; at most one reset
// per resetInterval.
func resetOnFailover(pool *pgxpool.Pool, err error) {
	if err == nil || !failoverSign(err) {
		return
	}
	resetLimited(pool)
}

// resetLimited resets pool unless it was reset within resetInterval.
func resetLimited(pool *pgxpool.Pool) {
	v, _ := lastReset.LoadOrStore(pool, new(atomic.Int64))
	last := v.(*atomic.Int64)
	now := time.Now().UnixNano()
	prev := last.Load()
	if now-prev < int64(resetInterval) || !last.CompareAndSwap(prev, now) {
		return
	}
	pool.Reset()
}

// failoverSign reports whether err comes from a server that is gone, shutting down or
// no longer the primary, rather than from the caller or the statement.
func failoverSign(err error) bool {
	if IsCallerGone(err) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "25006", "57P01", "57P02", "57P03":
			return true
		}
		return len(pgErr.Code) == 5 && pgErr.Code[:2] == "08"
	}
	var connErr *pgconn.ConnectError
	return errors.As(err, &connErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// Migrate applies every pending migration. It is safe to run from several processes at
// once: goose takes a session lock.
func Migrate(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	sqlDB := stdlib.OpenDBFromPool(pool)
	defer sqlDB.Close()
	return MigrateSQL(ctx, sqlDB, log)
}

// MigrateSQL is Migrate over a database/sql handle.
func MigrateSQL(ctx context.Context, sqlDB *sql.DB, log *slog.Logger) error {
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	provider, err := goose.NewProvider(goose.DialectPostgres, sqlDB, migrations.FS, goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	results, err := provider.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, r := range results {
		log.Info("migrated", "version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration)
	}
	return nil
}

// IsUniqueViolation reports whether err is a unique violation of the named constraint
// (or of any constraint when name is empty).
func IsUniqueViolation(err error, name string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && (name == "" || pgErr.ConstraintName == name)
}

// IsRetryable reports whether err is a serialization failure or a deadlock, after which
// the whole transaction may be run again.
func IsRetryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

// SeedRisk loads the risk rules' suggested thresholds (seeds/risk.sql). It is idempotent.
func SeedRisk(ctx context.Context, pool *pgxpool.Pool) error {
	if _, err := pool.Exec(ctx, seeds.Risk); err != nil {
		return fmt.Errorf("seed risk rules: %w", err)
	}
	return nil
}

// Seed loads the demo data. It is idempotent.
func Seed(ctx context.Context, pool *pgxpool.Pool) error {
	if _, err := pool.Exec(ctx, seeds.Demo); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	return nil
}
