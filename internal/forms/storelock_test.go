package forms_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"taxrefund/internal/forms"
)

// TestIssueTakesNoLockOnStoreOrBlock: issuing a form reads its store and block without
// locking their rows (every form shares one of two blocks: a lock there serialised the
// writers, BENCH.md "Write cost: the floor"), and what the foreign keys kept still holds:
// a store or block is never deleted nor its code changed, a form's store and block never
// change.
func TestIssueTakesNoLockOnStoreOrBlock(t *testing.T) {
	t.Parallel()
	s := newSkeleton(t, noonMarch10)
	s.warmAccounts()
	form := s.mustIssue("S-JFB-1", s.sale(passport(defaultDoc), goods("300.00", "0.13")))

	// Another transaction holds the store's and the block's rows FOR UPDATE, which
	// conflicts with the FOR KEY SHARE a foreign key check takes: the issue must not wait.
	holder, err := s.pool.Begin(s.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = holder.Rollback(s.ctx) }()
	if _, err := holder.Exec(s.ctx, `SELECT 1 FROM stores WHERE code = 'S-JFB-1' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	if _, err := holder.Exec(s.ctx, `SELECT 1 FROM blocks WHERE code = 'JFB' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		app := s.sale(passport(defaultDoc), goods("400.00", "0.13"))
		_, err := s.svc.Issue(ctx, forms.IssueRequest{
			Idem:      forms.Idempotency{Caller: caller("S-JFB-1"), RequestID: uuid.New(), Hash: issueHash("S-JFB-1", app)},
			StoreCode: "S-JFB-1", Application: app,
		})
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatalf("issue while the store and block rows are held: %v (it waited for a lock on them?)", err)
	}
	if err := holder.Rollback(s.ctx); err != nil {
		t.Fatal(err)
	}

	refused := func(what, sql string, args ...any) {
		t.Helper()
		_, err := s.pool.Exec(s.ctx, sql, args...)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "23001" {
			t.Errorf("%s: got %v, want restrict_violation (23001)", what, err)
		}
	}
	refused("delete the store", `DELETE FROM stores WHERE code = 'S-JFB-1'`)
	refused("rename the store", `UPDATE stores SET code = 'S-JFB-9' WHERE code = 'S-JFB-1'`)
	refused("delete the block", `DELETE FROM blocks WHERE code = 'JFB'`)
	refused("rename the block", `UPDATE blocks SET code = 'JFX' WHERE code = 'JFB'`)
	refused("truncate the stores", `TRUNCATE stores CASCADE`)
	refused("move the form to another store", `UPDATE forms SET store_code = 'S-CXL-1' WHERE number = $1`, form.Number)
	refused("move the form to another block", `UPDATE forms SET block_code = 'CXL' WHERE number = $1`, form.Number)
	// A store's status still changes (exit, suspension): that is not its code.
	if _, err := s.pool.Exec(s.ctx, `UPDATE stores SET status = 'SUSPENDED' WHERE code = 'S-JFB-2'`); err != nil {
		t.Errorf("suspend a store: %v", err)
	}
}
