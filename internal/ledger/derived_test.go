package ledger_test

import (
	"testing"

	"taxrefund/internal/ledger"
)

// The pending layer of the refund expense and payable (every form's pending transfer) is
// the sum of their pending entries, not a maintained balance row
// (migrations/00017_issue_accounts_unlocked.sql): a pending transfer between them writes
// no balance row, and the balance checks refuse and find the same things as before.
func TestDerivedPendingLayer(t *testing.T) {
	t.Parallel()
	b := newBook(t)
	ids, err := b.store.Accounts(b.ctx, b.pool, ledger.RefundExpense, ledger.RefundPayable)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range ids {
		b.ids[k] = v
	}
	exp, pay := ledger.RefundExpense, ledger.RefundPayable
	var derived int
	if err := b.pool.QueryRow(b.ctx, `SELECT count(*) FROM ledger_derived_pending WHERE account_id = ANY($1)`,
		[]int32{ids[exp], ids[pay]}).Scan(&derived); err != nil {
		t.Fatal(err)
	}
	if derived != 2 {
		t.Fatalf("%d of the refund accounts have a derived pending layer, want 2", derived)
	}
	balanceRows := func() int {
		t.Helper()
		var n int
		if err := b.pool.QueryRow(b.ctx, `SELECT count(*) FROM account_balances WHERE account_id = ANY($1)`,
			[]int32{ids[exp], ids[pay]}).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	p1 := b.pending(exp, pay, "150.00")
	b.pending(exp, pay, "20.00")
	if n := balanceRows(); n != 0 {
		t.Errorf("two pending transfers between the refund accounts wrote %d balance rows, want 0", n)
	}
	b.requireBalance(exp, "0", "170.00")
	b.requireBalance(pay, "0", "-170.00")
	requireNoViolations(t, b)

	// Posting moves the posted layer, which stays maintained; the pending one stays derived.
	if err := b.resolve(p1, "100.00"); err != nil {
		t.Fatal(err)
	}
	b.requireBalance(exp, "100.00", "20.00")
	b.requireBalance(pay, "-100.00", "-20.00")
	var pendingCols string
	if err := b.pool.QueryRow(b.ctx, `SELECT coalesce(sum(pending_dr + pending_cr), 0)::text FROM account_balances WHERE account_id = ANY($1)`,
		[]int32{ids[exp], ids[pay]}).Scan(&pendingCols); err != nil {
		t.Fatal(err)
	}
	if n := balanceRows(); n == 0 || pendingCols != "0" {
		t.Errorf("after a posting: %d balance rows with pending %s, want some rows, pending 0", n, pendingCols)
	}
	b.post(b.txn(entry(accA, ledger.Debit, "1.00", false), entry(accB, ledger.Credit, "1.00", false)))
	requireNoViolations(t, b)
	before := b.counts()

	// The same statement-level trigger refuses an unbalanced pending transaction.
	err = b.rawEntries(`('authority:refund_expense', true, 'D', '10.00'), ('travellers:refund_payable', true, 'C', '9.99')`)
	requireCode(t, err, "23514", "")

	exec := func(sql string, args ...any) error {
		tx, err := b.pool.Begin(b.ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback(b.ctx) }()
		_, err = tx.Exec(b.ctx, sql, args...)
		return err
	}
	pendingTransfer := `WITH t AS (INSERT INTO journal_txns (id, idem_key, kind, ref, effective_date)
		VALUES (gen_random_uuid(), gen_random_uuid()::text, 'RAW', 'raw', '2026-03-10') RETURNING id)
		INSERT INTO pending_transfers (id, debit_account, credit_account, amount) SELECT id, $1, $2, 1.00 FROM t`
	// A pending transfer names accounts that exist and stay: a derived one or one with a
	// balance row (the foreign keys' constraint names are kept).
	fresh, err := b.store.Accounts(b.ctx, b.pool, "test:fresh")
	if err != nil {
		t.Fatal(err)
	}
	requireCode(t, exec(pendingTransfer, fresh["test:fresh"], ids[pay]), "23503", "pending_transfers_debit_account_fkey")
	requireCode(t, exec(pendingTransfer, ids[exp], -1), "23503", "pending_transfers_credit_account_fkey")
	if err := exec(pendingTransfer, b.ids[accA], ids[pay]); err != nil {
		t.Errorf("a pending transfer between an account with a balance row and a derived one: %v", err)
	}
	b.requireUnchanged(before, "the refused statements")

	// What keeps those accounts: neither kind of row goes, nor the accounts.
	// (account_balances' foreign key or ledger_derived_pending's, whichever fires first)
	requireCode(t, exec(`DELETE FROM accounts WHERE id = $1`, ids[exp]), "23503", "")
	requireCode(t, exec(`DELETE FROM ledger_derived_pending WHERE account_id = $1`, ids[exp]), "42501", "")
	requireCode(t, exec(`TRUNCATE ledger_derived_pending`), "42501", "")
	requireCode(t, exec(`DELETE FROM account_balances WHERE account_id = $1`, b.ids[accA]), "42501", "")
	requireCode(t, exec(`TRUNCATE account_balances`), "42501", "")

	// A pending amount put into a balance row of a derived account behind the trigger's
	// back is found, as on any other account.
	mustExec := func(sql string, args ...any) {
		t.Helper()
		if _, err := b.pool.Exec(b.ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	mustExec(`UPDATE account_balances SET pending_dr = pending_dr + 5.00 WHERE account_id = $1 AND shard = (SELECT min(shard) FROM account_balances WHERE account_id = $1)`, ids[exp])
	requireViolation(t, b, "balances_match_entries", exp)
	requireViolation(t, b, "pending_matches_open_transfers", exp)
	mustExec(`UPDATE account_balances SET pending_dr = pending_dr - 5.00 WHERE account_id = $1 AND shard = (SELECT min(shard) FROM account_balances WHERE account_id = $1)`, ids[exp])
	requireNoViolations(t, b)
}
