package forms_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"taxrefund/internal/forms"
	"taxrefund/internal/ledger"
)

// TestIssueTakesNoLockOnTheRefundAccounts: every form's pending transfer goes from the
// refund expense to the refund payable, the two accounts all forms share. Issuing locks
// neither their account rows (no foreign key check on them) nor any balance row of
// theirs (their pending layer is the sum of their entries, migrations/00017), so two
// forms in flight at once do not wait on each other: here another transaction writes a
// form's pending transfer between the two accounts and, still open, holds both account
// rows and every balance row of theirs FOR UPDATE; the issue goes through. The balances
// stay what the entries say.
func TestIssueTakesNoLockOnTheRefundAccounts(t *testing.T) {
	t.Parallel()
	s := newSkeleton(t, noonMarch10)
	s.warmAccounts()
	s.mustIssue("S-JFB-1", s.sale(passport(defaultDoc), goods("300.00", "0.13")))

	holder, err := s.pool.Begin(s.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = holder.Rollback(s.ctx) }()
	ids, err := s.ledger.Accounts(s.ctx, s.pool, ledger.RefundExpense, ledger.RefundPayable)
	if err != nil {
		t.Fatal(err)
	}
	txn, p := ledger.NewPending("test:form-in-flight", "FORM_ISSUED", "TR-IN-FLIGHT", s.today(),
		ledger.RefundExpense, ledger.RefundPayable, decimal.RequireFromString("50.00"))
	batch := &pgx.Batch{}
	if err := s.ledger.Queue(batch, txn, ids); err != nil {
		t.Fatal(err)
	}
	s.ledger.QueuePending(batch, p, ids)
	if err := holder.SendBatch(s.ctx, batch).Close(); err != nil {
		t.Fatalf("the form in flight: %v", err)
	}
	for _, sql := range []string{
		`SELECT 1 FROM accounts WHERE code IN ('authority:refund_expense', 'travellers:refund_payable') FOR UPDATE`,
		`SELECT 1 FROM account_balances b JOIN accounts a ON a.id = b.account_id
		  WHERE a.code IN ('authority:refund_expense', 'travellers:refund_payable') FOR UPDATE OF b`,
	} {
		if _, err := holder.Exec(s.ctx, sql); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	app := s.sale(passport(defaultDoc), goods("400.00", "0.13"))
	second, err := s.svc.Issue(ctx, forms.IssueRequest{
		Idem:      forms.Idempotency{Caller: caller("S-JFB-1"), RequestID: uuid.New(), Hash: issueHash("S-JFB-1", app)},
		StoreCode: "S-JFB-1", Application: app,
	})
	if err != nil {
		t.Fatalf("issue while another form's pending transfer holds the refund accounts: %v (it waited for a lock on them?)", err)
	}
	if err := holder.Commit(s.ctx); err != nil {
		t.Fatalf("the form in flight, after the issue: %v", err)
	}

	var rows int
	if err := s.pool.QueryRow(s.ctx, `SELECT count(*) FROM account_balances b JOIN accounts a ON a.id = b.account_id
		WHERE a.code IN ('authority:refund_expense', 'travellers:refund_payable')`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 0 {
		t.Errorf("issuing wrote %d balance rows of the refund accounts, want none", rows)
	}
	var issued decimal.Decimal
	if err := s.pool.QueryRow(s.ctx, `SELECT sum(gross_refund) FROM forms WHERE state = 'ISSUED'`).Scan(&issued); err != nil {
		t.Fatal(err)
	}
	if !second.Gross.IsPositive() {
		t.Errorf("second form's gross refund %s", second.Gross)
	}
	want := issued.Add(decimal.RequireFromString("50.00"))
	for code, sign := range map[string]int64{ledger.RefundExpense: 1, ledger.RefundPayable: -1} {
		bal, err := s.ledger.Balance(s.ctx, s.pool, code)
		if err != nil {
			t.Fatal(err)
		}
		if !bal.Posted.IsZero() || !bal.Pending.Equal(want.Mul(decimal.NewFromInt(sign))) {
			t.Errorf("%s: balance %s/%s (posted/pending), want 0/%s", code, bal.Posted, bal.Pending, want.Mul(decimal.NewFromInt(sign)))
		}
	}
	vs, err := ledger.Check(s.ctx, s.pool)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		t.Errorf("violation %s: %s", v.Invariant, v.Detail)
	}
}
