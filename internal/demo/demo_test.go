package demo_test

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"taxrefund/internal/db"
	"taxrefund/internal/dbtest"
	"taxrefund/internal/demo"
)

// TestForms: on the seeded demo registry, the demo makes three forms in each of the
// previous and the current Shanghai month (one paid, one verified, one issued); a second
// run changes nothing; the ledger invariants hold.
func TestForms(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool := dbtest.NewPool(t)
	if err := db.Seed(ctx, pool); err != nil {
		t.Fatal(err)
	}
	keys := dbtest.Keyring(t)
	// 2026-12-01 01:00 in Shanghai (still 2026-11-30 in UTC): this month is December.
	now := time.Date(2026, 11, 30, 17, 0, 0, 0, time.UTC)
	first, err := demo.Forms(ctx, pool, keys, slog.New(slog.DiscardHandler), now)
	if err != nil {
		t.Fatal(err)
	}
	again, err := demo.Forms(ctx, pool, keys, slog.New(slog.DiscardHandler), now)
	if err != nil || !slices.Equal(first, again) || len(first) != 6 {
		t.Fatalf("forms %v, then %v (%v); want the same 6", first, again, err)
	}
	rows, err := pool.Query(db.WithParty(ctx, "system", "test"), `SELECT to_char(issued_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM'), state, count(*) FROM forms GROUP BY 1, 2 ORDER BY 1, 2`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var month, state string
		var n int
		if err := rows.Scan(&month, &state, &n); err != nil {
			t.Fatal(err)
		}
		got = append(got, month+" "+state+" "+string(rune('0'+n)))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{"2026-11 ISSUED 1", "2026-11 REFUNDED 1", "2026-11 VERIFIED 1", "2026-12 ISSUED 1", "2026-12 REFUNDED 1", "2026-12 VERIFIED 1"}
	if !slices.Equal(got, want) {
		t.Errorf("forms by Shanghai month and state: %v, want %v", got, want)
	}
	dbtest.CheckInvariants(t, ctx, pool)
}
