package immediate_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"taxrefund/internal/forms"
	"taxrefund/internal/immediate"
	"taxrefund/internal/ledger"
	"taxrefund/internal/params"
	"taxrefund/internal/refund"
)

// holdLines locks the form_lines rows of form in a transaction of its own, so that a
// verification of that form waits at its last statements, after the completion's
// journal entries (and any accounts it created) are written but not committed. It
// returns the transaction and its backend pid.
func (e *env) holdLines(form forms.Form) (pgx.Tx, int32) {
	e.t.Helper()
	tx, err := e.pool.Begin(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	if _, err := tx.Exec(e.ctx, `SELECT 1 FROM form_lines WHERE form_id = $1 FOR UPDATE`, form.ID); err != nil {
		e.t.Fatal(err)
	}
	var pid int32
	if err := tx.QueryRow(e.ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		e.t.Fatal(err)
	}
	return tx, pid
}

// waitBlocked waits until some session waits on a lock held by the backend pid.
func (e *env) waitBlocked(pid int32) {
	e.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		if e.count(`SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))`, pid) > 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatal("the verification never waited on the held lock")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestCompletionRolledBackPoisonsAccountCache: the first completion of an agency creates
// its receivable, fee_income, agency_payable and card_captures accounts inside the
// verification's transaction (OnExport calls ledger.Store.Accounts with the tx), and the
// ledger store caches their ids at once. When that transaction does not commit (here the
// caller gives up: its context is cancelled while the transaction waits on a lock; a
// retried deadlock does the same), the cache keeps ids of accounts that do not exist.
// Expected (DOMAIN.md §6, §8): the failed verification leaves nothing behind and the next
// completion, capture and desk payout of the agency work. Actual: every later journal
// transaction on those accounts fails on journal_entries_account_id_fkey, in this
// process, until it restarts.
func TestCompletionRolledBackPoisonsAccountCache(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	doc := passport("P8000008", "GB")
	a, _ := e.prepaid(doc)
	b, _ := e.prepaid(doc)
	c, _ := e.prepaid(doc)
	plain := e.issue("S-CXL-1", doc) // no prepayment: an ordinary refund
	e.clock.Set(localNoon(t, "2026-03-20"))

	lock, pid := e.holdLines(a)
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() {
		_, err := e.forms.Verify(ctx, forms.VerifyRequest{
			Idem: forms.Idempotency{Caller: "customs/TFU/officer-3", RequestID: [16]byte{1}, Hash: forms.HashOf([]byte(a.Number))},
			Port: "TFU", Officer: "officer-3", Number: a.Number, Presented: doc, Confirmed: all(a),
		})
		done <- err
	}()
	e.waitBlocked(pid)
	cancel() // the officer's client gives up
	errA := <-done
	if errA == nil {
		t.Fatal("the cancelled verification succeeded")
	}
	if err := lock.Rollback(e.ctx); err != nil {
		t.Fatal(err)
	}
	if st := e.formState(a.Number); st != refund.Issued {
		t.Fatalf("form a is %s after its cancelled verification, want ISSUED", st)
	}
	if n := e.count(`SELECT count(*) FROM accounts WHERE code = 'agency:AG-CD:receivable'`); n != 0 {
		t.Fatalf("the cancelled verification left %d receivable account rows", n)
	}

	// The next completion of the agency.
	v, err := e.verify("TFU", b.Number, doc, all(b))
	if err != nil {
		t.Errorf("verify b at TFU after a cancelled completion: %v; want REFUNDED", err)
	} else if v.State != refund.Refunded {
		t.Errorf("b is %s, want REFUNDED", v.State)
	}
	// An ordinary refund at an AG-CD airport desk.
	e.mustVerify("TFU", plain, doc, nil)
	if _, err := e.settle("TFU-01", doc, plain.Number); err != nil {
		t.Errorf("settle an ordinary form at TFU-01 after a cancelled completion: %v", err)
	}
	// A breach captured, then paid at the desk (c verified at CTU).
	e.mustVerify("CTU", c, doc, nil)
	e.clock.Set(localMidnight(t, "2026-04-01"))
	// Due: c (breached at CTU) and a, whose completion was cancelled and which was never
	// confirmed since.
	if n, err := e.imm.Captures(e.ctx, "test"); err != nil || n != 2 {
		t.Errorf("capture a and c after a cancelled completion: %d %v; want 2 captured", n, err)
	}
	if _, err := e.settle("CTU-01", doc, c.Number); err != nil {
		t.Errorf("settle c at CTU-01 after a cancelled completion: %v", err)
	}

	// The same database through a fresh process (a new ledger.Store) completes b: the
	// fault is the cache, not the data.
	if e.formState(b.Number) == refund.Issued {
		e.clock.Set(localNoon(t, "2026-03-25"))
		fresh := ledger.NewStore()
		par := params.NewCache(e.pool, 0)
		log := slog.New(slog.DiscardHandler)
		f2 := forms.New(forms.Deps{Pool: e.pool, Ledger: fresh, Keys: e.keys, Params: par, Now: e.clock.Now, Log: log})
		immediate.New(immediate.Deps{Pool: e.pool, Ledger: fresh, Keys: e.keys, Params: par, Forms: f2, Now: e.clock.Now, Log: log})
		v, err := f2.Verify(e.ctx, forms.VerifyRequest{
			Idem: forms.Idempotency{Caller: "customs/TFU/officer-3", RequestID: [16]byte{2}, Hash: forms.HashOf([]byte(b.Number))},
			Port: "TFU", Officer: "officer-3", Number: b.Number, Presented: doc, Confirmed: all(b),
		})
		if err != nil || v.State != refund.Refunded {
			t.Errorf("b through a fresh ledger store: %v %v", v.State, err)
		} else {
			t.Logf("b completes through a fresh ledger store (as after a restart)")
		}
	}
	e.checkInvariants("after the cancelled completion")
}

// TestConcurrentFirstCompletions verifies prepaid forms of one agency at TFU while the
// agency's first completion is still open (not yet committed): each must complete.
// Actual: the others reuse the cached ids of accounts the first transaction created but
// has not committed, and fail on journal_entries_account_id_fkey (an Internal error at
// the API), unless they happen to write the same balance shard and wait. This is what
// the real binary showed when forty immediate refunds were verified eight at a time.
func TestConcurrentFirstCompletions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	doc := passport("P8100008", "GB")
	first, _ := e.prepaid(doc)
	const others = 4
	rest := make([]forms.Form, others)
	for i := range rest {
		rest[i], _ = e.prepaid(doc)
	}
	e.clock.Set(localNoon(t, "2026-03-20"))

	lock, pid := e.holdLines(first)
	firstDone := make(chan error, 1)
	go func() {
		_, err := e.verify("TFU", first.Number, doc, all(first))
		firstDone <- err
	}()
	e.waitBlocked(pid)
	errs := make(chan error, others)
	for _, f := range rest {
		go func() {
			_, err := e.verify("TFU", f.Number, doc, all(f))
			errs <- err
		}()
	}
	time.Sleep(time.Second) // the others run while the first is open
	if err := lock.Rollback(e.ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-firstDone; err != nil {
		t.Fatalf("first completion: %v", err)
	}
	failed := 0
	for range others {
		if err := <-errs; err != nil {
			failed++
			t.Errorf("a completion concurrent with the agency's first: %v; want REFUNDED", err)
		}
	}
	t.Logf("%d of %d completions concurrent with the first failed", failed, others)
	e.checkInvariants("concurrent first completions")
}
