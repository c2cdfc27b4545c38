package loadgen

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// tidy vacuums and analyzes the database pool is connected to before a measured window,
// so that every window, baseline or service, starts from the state autovacuum keeps a
// live database in: statistics that know the rows the earlier windows and the
// preparation added, and no dead rows left by them. Without it a server running with
// autovacuum off (as PostgreSQL services on some test machines are) measured each window
// against whatever the ones before it left: the desk mix's service rounds ran at 122–124
// visits/s there and at 172/s on a server with autovacuum on (BENCH.md). It returns the
// note the result carries.
func tidy(ctx context.Context, pool *pgxpool.Pool, log io.Writer) (string, error) {
	var auto string
	if err := pool.QueryRow(ctx, `SELECT current_setting('autovacuum')`).Scan(&auto); err != nil {
		return "", fmt.Errorf("read autovacuum: %w", err)
	}
	start := time.Now()
	fmt.Fprintf(log, "loadgen: vacuum and analyze before the window (autovacuum is %s)...\n", auto)
	if _, err := pool.Exec(ctx, `VACUUM (ANALYZE)`); err != nil {
		return "", fmt.Errorf("vacuum before the window: %w", err)
	}
	took := time.Since(start).Round(100 * time.Millisecond)
	if auto != "on" {
		return fmt.Sprintf("autovacuum is off on this PostgreSQL: the database was vacuumed and analyzed before the window (%s)", took), nil
	}
	return fmt.Sprintf("the database was vacuumed and analyzed before the window (%s)", took), nil
}
