package loadgen

import (
	"context"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgxpool"

	"taxrefund/internal/invariants"
)

// doublePayouts counts forms paid more than once, or for more than customs confirmed:
// a form in more than one payout, a payout row of a form that names another payout, or
// payout shares of a form above its confirmed gross refund.
const doublePayouts = `
	SELECT count(*) FROM (
		SELECT pf.form_id
		  FROM payout_forms pf JOIN forms f ON f.id = pf.form_id
		 GROUP BY pf.form_id, f.confirmed_gross, f.payout_id
		HAVING count(*) > 1 OR sum(pf.gross_refund) > f.confirmed_gross
		    OR bool_or(pf.payout_id IS DISTINCT FROM f.payout_id)) x`

// Check runs the invariants of DOMAIN.md §8 over the whole database and counts double
// payouts; any violation is an error.
func Check(ctx context.Context, pool *pgxpool.Pool, w io.Writer) error {
	violations, err := invariants.Check(ctx, pool)
	if err != nil {
		return err
	}
	var doubles int64
	if err := pool.QueryRow(ctx, doublePayouts).Scan(&doubles); err != nil {
		return fmt.Errorf("count double payouts: %w", err)
	}
	var forms, payouts int64
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM forms), (SELECT count(*) FROM payouts)`).Scan(&forms, &payouts); err != nil {
		return err
	}
	for i, v := range violations {
		if i == 20 {
			fmt.Fprintf(w, "  ... and %d more\n", len(violations)-20)
			break
		}
		fmt.Fprintf(w, "  %s: %s\n", v.Invariant, v.Detail)
	}
	fmt.Fprintf(w, "check: %d forms, %d payouts: %d invariant violations, %d double payouts\n", forms, payouts, len(violations), doubles)
	if len(violations) > 0 || doubles > 0 {
		return fmt.Errorf("check failed: %d invariant violations, %d double payouts", len(violations), doubles)
	}
	return nil
}
