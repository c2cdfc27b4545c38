package loadgen

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"
)

// ResetDatabase drops and recreates the database named in url, so that a benchmark starts
// from an empty schema. To keep it from ever touching real data it only accepts a name
// starting with "taxrefund_bench".
func ResetDatabase(ctx context.Context, url string, w io.Writer) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	name := cfg.Database
	if !strings.HasPrefix(name, "taxrefund_bench") {
		return fmt.Errorf("reset-db drops only benchmark databases (taxrefund_bench...), not %q", name)
	}
	cfg.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to the maintenance database: %w", err)
	}
	defer conn.Close(ctx)
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, `DROP DATABASE IF EXISTS `+ident+` WITH (FORCE)`); err != nil {
		return fmt.Errorf("drop %s: %w", name, err)
	}
	if _, err := conn.Exec(ctx, `CREATE DATABASE `+ident); err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	fmt.Fprintf(w, "loadgen: database %s reset\n", name)
	return nil
}
