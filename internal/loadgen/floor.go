package loadgen

import (
	"context"
	_ "embed"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed floor.sql
var floorSchema string

//go:embed floor.pgbench
var floorScript string

// floorDatabase makes the floor's own database beside the benchmark's (named
// <database>_floor, only for a taxrefund_bench* database, as reset-db) and gives it a fresh
// floor schema (floor.sql: its tables are dropped and created again). It returns the
// floor database's URL.
func floorDatabase(ctx context.Context, databaseURL string, log io.Writer) (string, error) {
	u, err := url.Parse(databaseURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("the floor baseline needs DATABASE_URL as a postgres:// URL, got %q", databaseURL)
	}
	name := strings.TrimPrefix(u.Path, "/")
	if !strings.HasPrefix(name, "taxrefund_bench") {
		return "", fmt.Errorf("the floor baseline runs beside a benchmark database (taxrefund_bench...), not %q", name)
	}
	floor := name + "_floor"
	admin := *u
	admin.Path = "/postgres"
	conn, err := pgx.Connect(ctx, admin.String())
	if err != nil {
		return "", fmt.Errorf("connect to the maintenance database: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`, floor).Scan(&exists); err != nil {
		return "", err
	}
	if !exists {
		if _, err := conn.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{floor}.Sanitize()); err != nil {
			return "", fmt.Errorf("create %s: %w", floor, err)
		}
		fmt.Fprintf(log, "loadgen: floor database %s created\n", floor)
	}
	// Trigger calls are counted there too (there are none), as in the benchmark's database.
	if _, err := conn.Exec(ctx, `ALTER DATABASE `+pgx.Identifier{floor}.Sanitize()+` SET track_functions = 'pl'`); err != nil {
		fmt.Fprintf(log, "loadgen: floor: track_functions: %v\n", err)
	}
	fu := *u
	fu.Path = "/" + floor
	fc, err := pgx.Connect(ctx, fu.String())
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w", floor, err)
	}
	defer fc.Close(ctx)
	if _, err := fc.Exec(ctx, floorSchema); err != nil {
		return "", fmt.Errorf("floor schema: %w", err)
	}
	return fu.String(), nil
}

// openFloor opens a pool on the floor database.
func openFloor(ctx context.Context, floorURL string) (*pgxpool.Pool, error) {
	pool, err := pgxpool.New(ctx, floorURL)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}
