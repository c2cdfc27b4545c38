// Package pgenv finds or starts a PostgreSQL server for development and tests
// and makes sure a database exists on it. It is used by cmd/pgenv, which
// `make run` and `make test` wrap around the real commands.
package pgenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// LocalPort is where pgenv looks for a server when DATABASE_URL is unset: the
// usual system PostgreSQL, with trust authentication for user postgres.
const LocalPort = 5432

// URL returns the connection string for database db as user postgres, with
// no password, on 127.0.0.1:port: the system server or the private cluster.
func URL(port int, db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// probeTimeout bounds one connection attempt made to look at a server.
const probeTimeout = 3 * time.Second

// Probe opens (and closes) a real connection, so a port that accepts TCP but
// refuses us (wrong auth, not PostgreSQL) does not count as a usable server.
func Probe(ctx context.Context, connString string) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// WithDatabase returns connString naming database name, unless it already
// names one (then it is returned unchanged). It accepts both URLs and
// keyword/value strings, as pgx and libpq do.
func WithDatabase(connString, name string) (string, error) {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return "", err
	}
	if cfg.Database != "" {
		return connString, nil
	}
	if strings.HasPrefix(connString, "postgres://") || strings.HasPrefix(connString, "postgresql://") {
		u, err := url.Parse(connString)
		if err != nil {
			return "", err
		}
		u.Path, u.RawPath = "/"+name, ""
		return u.String(), nil
	}
	quoted := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(name)
	return fmt.Sprintf("%s dbname='%s'", connString, quoted), nil
}

// EnsureDatabase creates the database named by connString if it does not
// exist, connecting to the "postgres" maintenance database to do so, and
// returns its name if it created it. It never drops anything.
func EnsureDatabase(ctx context.Context, connString string) (created string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return "", err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err == nil {
		return "", conn.Close(ctx)
	}
	if pgCode(err) != "3D000" { // invalid_catalog_name: the database does not exist
		return "", err
	}

	name := cfg.Database
	cfg.Database = "postgres"
	conn, err = pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return "", fmt.Errorf("connect to maintenance database: %w", err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	if pgCode(err) == "42P04" { // duplicate_database: someone else just created it
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return name, nil
}

func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}
