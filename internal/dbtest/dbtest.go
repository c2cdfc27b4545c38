// Package dbtest gives tests their own PostgreSQL database: a fresh clone of a migrated
// template per call (pgtestdb), on the server named by TEST_DATABASE_URL (or
// DATABASE_URL). It never drops a database it did not create. Only tests import it.
package dbtest

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"io/fs"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver pgtestdb uses
	"github.com/peterldowns/pgtestdb"

	"taxrefund/internal/db"
	"taxrefund/migrations"
)

// URL returns the server URL for tests, skipping the test when none is configured.
func URL(t testing.TB) string {
	t.Helper()
	url := os.Getenv("TEST_DATABASE_URL")
	if url == "" {
		url = os.Getenv("DATABASE_URL")
	}
	if url == "" {
		t.Skip("TEST_DATABASE_URL is not set: run the tests with `make test`")
	}
	return url
}

// NewURL returns the URL of a fresh, migrated database of this test's own. It is dropped
// when the test passes and kept (its URL logged) when it fails.
func NewURL(t testing.TB) string {
	t.Helper()
	cfg, err := pgconn.ParseConfig(URL(t))
	if err != nil {
		t.Fatalf("TEST_DATABASE_URL: %v", err)
	}
	conf := pgtestdb.Config{
		DriverName: "pgx",
		Host:       cfg.Host,
		Port:       strconv.Itoa(int(cfg.Port)),
		User:       cfg.User,
		Password:   cfg.Password,
		Database:   cfg.Database,
		Options:    "sslmode=disable",
		// Tests that kill connections (or leak them on failure) still clean up.
		ForceTerminateConnections: true,
		// The migrations create the service's role (taxrefund_app), which needs CREATEROLE.
		TestRole: &pgtestdb.Role{Username: "taxrefund_test", Password: "taxrefund_test", Capabilities: "NOSUPERUSER NOCREATEDB CREATEROLE"},
	}
	return pgtestdb.Custom(t, conf, migrator{}).URL()
}

// NewPool returns a pool on a fresh, migrated database of this test's own, connected as
// the database's owner (fixtures insert reference data, tests may corrupt rows).
func NewPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return OpenPool(t, NewURL(t), "")
}

// OpenPool opens a pool on url as role ("" for the URL's user, db.AppRole for what the
// service runs as), closed when the test ends.
func OpenPool(t testing.TB, url, role string, opts ...db.Option) *pgxpool.Pool {
	t.Helper()
	pool, err := db.OpenAs(context.Background(), url, 32, role, opts...)
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// migrator applies the embedded goose migrations to pgtestdb's template database.
type migrator struct{}

// Hash identifies the template by the migrations' names and contents.
func (migrator) Hash() (string, error) {
	h := sha256.New()
	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		return "", err
	}
	sort.Strings(names)
	for _, n := range names {
		b, err := fs.ReadFile(migrations.FS, n)
		if err != nil {
			return "", err
		}
		h.Write([]byte(n))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// Migrate runs the migrations.
func (migrator) Migrate(ctx context.Context, sqlDB *sql.DB, _ pgtestdb.Config) error {
	return db.MigrateSQL(ctx, sqlDB, slog.New(slog.DiscardHandler))
}
