package forms

import (
	"context"
	"strings"
	"testing"

	"taxrefund/internal/dbtest"
)

// The lock batch's check for an outstanding prepayment probes prepayments by form_id
// under the service's generic plans even before prepayments has statistics (a new
// database): its first form hashed every PREPAID prepayment on each call then.
func TestOutstandingCheckProbesByFormWithoutStatistics(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.NewPool(t)
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SET plan_cache_mode = force_generic_plan`); err != nil {
		t.Fatal(err)
	}
	var analyzed bool
	if err := conn.QueryRow(ctx, `SELECT reltuples >= 0 FROM pg_class WHERE relname = 'prepayments'`).Scan(&analyzed); err != nil {
		t.Fatal(err)
	}
	if analyzed {
		t.Fatal("prepayments has statistics already: the test needs a table never analyzed")
	}
	if _, err := conn.Exec(ctx, `PREPARE outstanding(text[]) AS `+outstandingByNumberSQL); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, `EXPLAIN (COSTS OFF) EXECUTE outstanding('{TR1}')`)
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	text := strings.Join(plan, "\n")
	if !strings.Contains(text, "Index Scan using prepayments_form_id_key") || strings.Contains(text, "Hash") || strings.Contains(text, "capture_due") {
		t.Errorf("the outstanding check's generic plan does not probe prepayments by form_id:\n%s", text)
	}
}
