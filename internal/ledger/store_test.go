package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"taxrefund/internal/db"
	"taxrefund/internal/dbtest"
	"taxrefund/internal/ledger"
)

var day = time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)

// book is a fresh database with the ledger's store and accounts test:a, test:b, test:c.
type book struct {
	t     *testing.T
	ctx   context.Context
	pool  *pgxpool.Pool
	store *ledger.Store
	ids   map[string]int32
	n     int
}

func newBook(t *testing.T) *book {
	t.Helper()
	pool := dbtest.NewPool(t)
	store := ledger.NewStore()
	ids, err := store.Accounts(context.Background(), pool, accA, accB, accC)
	if err != nil {
		t.Fatal(err)
	}
	return &book{t: t, ctx: context.Background(), pool: pool, store: store, ids: ids}
}

// txn returns a transaction with a fresh idempotency key.
func (b *book) txn(entries ...ledger.Entry) ledger.Txn {
	b.n++
	return ledger.Txn{ID: ledger.NewID(), IdemKey: fmt.Sprintf("test:txn:%d", b.n), Kind: "TEST", Ref: "test", EffectiveDate: day, Entries: entries}
}

// send queues fn's writes on a batch and sends it on the pool (one implicit transaction).
func (b *book) send(fn func(*pgx.Batch) error) error {
	batch := &pgx.Batch{}
	if err := fn(batch); err != nil {
		return err
	}
	return db.SendBatch(b.ctx, b.pool, batch)
}

// post writes txn and fails the test on error.
func (b *book) post(txn ledger.Txn) {
	b.t.Helper()
	if err := b.send(func(batch *pgx.Batch) error { return b.store.Queue(batch, txn, b.ids) }); err != nil {
		b.t.Fatalf("post %s: %v", txn.IdemKey, err)
	}
}

// pending writes a pending transfer of amount from debit to credit.
func (b *book) pending(debit, credit, amount string) ledger.Pending {
	b.t.Helper()
	b.n++
	txn, p := ledger.NewPending(fmt.Sprintf("test:pending:%d", b.n), "TEST_PENDING", "test", day, debit, credit, amt(amount))
	if err := b.send(func(batch *pgx.Batch) error {
		if err := b.store.Queue(batch, txn, b.ids); err != nil {
			return err
		}
		b.store.QueuePending(batch, p, b.ids)
		return nil
	}); err != nil {
		b.t.Fatalf("pending: %v", err)
	}
	return p
}

// resolve posts amount of p (0 voids it) and returns the error of the batch.
func (b *book) resolve(p ledger.Pending, posted string) error {
	b.n++
	txn, res, err := ledger.Resolve(p, fmt.Sprintf("test:resolve:%d", b.n), "TEST_RESOLVE", "test", day, amt(posted))
	if err != nil {
		return err
	}
	return b.send(func(batch *pgx.Batch) error {
		if err := b.store.Queue(batch, txn, b.ids); err != nil {
			return err
		}
		b.store.QueueResolution(batch, res)
		return nil
	})
}

func (b *book) requireBalance(account, posted, pending string) {
	b.t.Helper()
	got, err := b.store.Balance(b.ctx, b.pool, account)
	if err != nil {
		b.t.Fatal(err)
	}
	if !got.Posted.Equal(amt(posted)) || !got.Pending.Equal(amt(pending)) {
		b.t.Errorf("%s: balance %s/%s (posted/pending), want %s/%s", account, got.Posted, got.Pending, posted, pending)
	}
}

// ledgerCounts are the row counts of the ledger's tables.
func (b *book) counts() [5]int64 {
	b.t.Helper()
	var c [5]int64
	err := b.pool.QueryRow(b.ctx, `SELECT (SELECT count(*) FROM journal_txns), (SELECT count(*) FROM journal_entries),
		(SELECT count(*) FROM pending_transfers), (SELECT count(*) FROM pending_resolutions),
		(SELECT coalesce(sum(posted_dr + posted_cr + pending_dr + pending_cr) * 100, 0)::bigint FROM account_balances)`).
		Scan(&c[0], &c[1], &c[2], &c[3], &c[4])
	if err != nil {
		b.t.Fatal(err)
	}
	return c
}

func (b *book) requireUnchanged(before [5]int64, what string) {
	b.t.Helper()
	if now := b.counts(); now != before {
		b.t.Errorf("after %s: txns/entries/pending/resolutions/balances %v, were %v", what, now, before)
	}
}

// requireCode fails unless err is a PostgreSQL error with the SQLSTATE code (and, when
// constraint is not empty, on that constraint).
func requireCode(t *testing.T, err error, code, constraint string) {
	t.Helper()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		t.Errorf("got %v, want SQLSTATE %s", err, code)
		return
	}
	if pgErr.Code != code || (constraint != "" && pgErr.ConstraintName != constraint) {
		t.Errorf("got SQLSTATE %s on %q (%s), want %s on %q", pgErr.Code, pgErr.ConstraintName, pgErr.Message, code, constraint)
	}
}

// rawEntries inserts a transaction header and, in one statement, the entries given as
// (account, pending, side, amount) SQL values, in a transaction that is rolled back. It
// returns the error of the entries' statement (or of the set-up, wrapped).
func (b *book) rawEntries(values string) error {
	tx, err := b.pool.Begin(b.ctx)
	if err != nil {
		return fmt.Errorf("set-up: %w", err)
	}
	defer tx.Rollback(b.ctx)
	id := ledger.NewID()
	if _, err := tx.Exec(b.ctx, `INSERT INTO journal_txns (id, idem_key, kind, ref, effective_date) VALUES ($1, $2, 'RAW', 'raw', '2026-03-10')`, id, id.String()); err != nil {
		return fmt.Errorf("set-up: %w", err)
	}
	q := `INSERT INTO journal_entries (txn_id, account_id, pending, side, amount)
		SELECT $1, a.id, v.pending, v.side::"char", v.amount::numeric
		  FROM (VALUES ` + values + `) AS v(code, pending, side, amount) JOIN accounts a ON a.code = v.code`
	_, err = tx.Exec(b.ctx, q, id)
	return err
}

// The balance trigger refuses a statement that leaves any transaction unbalanced in
// either layer, whatever the Go code does.
func TestDBRefusesUnbalancedEntries(t *testing.T) {
	t.Parallel()
	b := newBook(t)
	before := b.counts()
	tests := []struct {
		name, values string
		ok           bool
	}{
		{"balanced (the control)", `('test:a', false, 'D', '10.00'), ('test:b', false, 'C', '10.00')`, true},
		{"balanced pending", `('test:a', true, 'D', '10.00'), ('test:b', true, 'C', '10.00')`, true},
		{"one fen short", `('test:a', false, 'D', '10.00'), ('test:b', false, 'C', '9.99')`, false},
		{"debit only", `('test:a', false, 'D', '10.00')`, false},
		{"credit only", `('test:b', true, 'C', '10.00')`, false},
		{"balanced across layers, not in each", `('test:a', true, 'D', '10.00'), ('test:b', false, 'C', '10.00')`, false},
		{"posted balanced, pending not", `('test:a', false, 'D', '10.00'), ('test:b', false, 'C', '10.00'), ('test:c', true, 'D', '1.00')`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := b.rawEntries(tt.values)
			if tt.ok {
				if err != nil {
					t.Errorf("balanced entries refused: %v", err)
				}
				return
			}
			requireCode(t, err, "23514", "")
			if err != nil && !strings.Contains(err.Error(), "not balanced") {
				t.Errorf("error %v does not say the transaction is not balanced", err)
			}
		})
	}

	t.Run("balanced, but over two statements", func(t *testing.T) {
		tx, err := b.pool.Begin(b.ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(b.ctx)
		id := ledger.NewID()
		if _, err := tx.Exec(b.ctx, `INSERT INTO journal_txns (id, idem_key, kind, ref, effective_date) VALUES ($1, 'two-statements', 'RAW', 'raw', '2026-03-10')`, id); err != nil {
			t.Fatal(err)
		}
		_, err = tx.Exec(b.ctx, `INSERT INTO journal_entries (txn_id, account_id, pending, side, amount) VALUES ($1, $2, false, 'D', 10.00)`, id, b.ids[accA])
		requireCode(t, err, "23514", "")
	})

	t.Run("two transactions in one statement, each unbalanced, together balanced", func(t *testing.T) {
		tx, err := b.pool.Begin(b.ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(b.ctx)
		id1, id2 := ledger.NewID(), ledger.NewID()
		if _, err := tx.Exec(b.ctx, `INSERT INTO journal_txns (id, idem_key, kind, ref, effective_date)
			VALUES ($1, 'one', 'RAW', 'raw', '2026-03-10'), ($2, 'two', 'RAW', 'raw', '2026-03-10')`, id1, id2); err != nil {
			t.Fatal(err)
		}
		_, err = tx.Exec(b.ctx, `INSERT INTO journal_entries (txn_id, account_id, pending, side, amount)
			VALUES ($1, $3, false, 'D', 10.00), ($2, $4, false, 'C', 10.00)`, id1, id2, b.ids[accA], b.ids[accB])
		requireCode(t, err, "23514", "")
	})
	b.requireUnchanged(before, "the rolled-back inserts")
}

// Entries name an existing transaction and existing accounts: the balance trigger checks
// the transaction, and account_balances' foreign key the accounts
// (migrations/00009_write_cost.sql dropped journal_entries' own foreign keys).
func TestDBRefusesEntriesOfUnknownTransactionOrAccount(t *testing.T) {
	t.Parallel()
	b := newBook(t)
	before := b.counts()
	exec := func(sql string, args ...any) error {
		tx, err := b.pool.Begin(b.ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(b.ctx)
		_, err = tx.Exec(b.ctx, sql, args...)
		return err
	}
	t.Run("no header", func(t *testing.T) {
		err := exec(`INSERT INTO journal_entries (txn_id, account_id, pending, side, amount)
			VALUES ($1, $2, false, 'D', 10.00), ($1, $3, false, 'C', 10.00)`, ledger.NewID(), b.ids[accA], b.ids[accB])
		requireCode(t, err, "23503", "")
	})
	t.Run("unknown account", func(t *testing.T) {
		id := ledger.NewID()
		err := exec(`WITH t AS (INSERT INTO journal_txns (id, idem_key, kind, ref, effective_date)
			VALUES ($1, $2, 'RAW', 'raw', '2026-03-10') RETURNING id)
			INSERT INTO journal_entries (txn_id, account_id, pending, side, amount)
			SELECT t.id, a, false, s::"char", 10.00 FROM t, (VALUES ($3::int, 'D'), (-1, 'C')) AS e(a, s)`, id, id.String(), b.ids[accA])
		requireCode(t, err, "23503", "account_balances_account_id_fkey")
	})
	b.requireUnchanged(before, "the refused entries")
	t.Run("an account with entries cannot be deleted", func(t *testing.T) {
		b.post(b.txn(entry(accA, ledger.Debit, "1.00", false), entry(accB, ledger.Credit, "1.00", false)))
		err := exec(`DELETE FROM accounts WHERE id = $1`, b.ids[accA])
		requireCode(t, err, "23503", "account_balances_account_id_fkey")
	})
}

// Amounts are positive numbers of fen up to 10^12: NaN (which sorts above every number),
// zero, negatives, 10^13 and a thousandth are refused by the CHECK constraints.
func TestDBAmountChecks(t *testing.T) {
	t.Parallel()
	b := newBook(t)
	p := b.pending(accA, accB, "150.00")
	before := b.counts()
	for _, bad := range []string{"NaN", "0", "-1", "1e13", "1000000000000.01", "0.001", "10.005"} {
		t.Run(bad, func(t *testing.T) {
			err := b.rawEntries(`('test:a', false, 'D', '` + bad + `'), ('test:b', false, 'C', '` + bad + `')`)
			requireCode(t, err, "23514", "journal_entries_amount_check")

			_, err = b.pool.Exec(b.ctx, `WITH t AS (INSERT INTO journal_txns (id, idem_key, kind, ref, effective_date)
				VALUES (gen_random_uuid(), 'bad-pending-' || $1::text, 'RAW', 'raw', '2026-03-10') RETURNING id)
				INSERT INTO pending_transfers (id, debit_account, credit_account, amount) SELECT id, $2, $3, $1::text::numeric FROM t`,
				bad, b.ids[accA], b.ids[accB])
			requireCode(t, err, "23514", "pending_transfers_amount_check")

			_, err = b.pool.Exec(b.ctx, `WITH t AS (INSERT INTO journal_txns (id, idem_key, kind, ref, effective_date)
				VALUES (gen_random_uuid(), 'bad-resolution-' || $1::text, 'RAW', 'raw', '2026-03-10') RETURNING id)
				INSERT INTO pending_resolutions (pending_id, outcome, posted_amount, txn_id) SELECT $2, 'POSTED', $1::text::numeric, id FROM t`,
				bad, p.ID)
			if bad == "0" {
				// 0 is a valid posted amount, but only with the outcome VOIDED.
				requireCode(t, err, "23514", "pending_resolutions_check")
			} else {
				requireCode(t, err, "23514", "")
			}
		})
	}
	b.requireUnchanged(before, "the refused amounts")
	for _, good := range []string{"0.01", "1000000000000", "1000000000000.00", "150.1"} {
		if err := b.rawEntries(`('test:a', false, 'D', '` + good + `'), ('test:b', false, 'C', '` + good + `')`); err != nil {
			t.Errorf("amount %s refused: %v", good, err)
		}
	}
}

// journal_txns, journal_entries, pending_transfers and pending_resolutions are
// append-only.
func TestDBJournalIsAppendOnly(t *testing.T) {
	t.Parallel()
	b := newBook(t)
	b.post(b.txn(entry(accA, ledger.Debit, "10.00", false), entry(accB, ledger.Credit, "10.00", false)))
	p := b.pending(accA, accB, "150.00")
	if err := b.resolve(p, "100.00"); err != nil {
		t.Fatal(err)
	}
	before := b.counts()
	var snapshot string
	snap := func() string {
		var s string
		if err := b.pool.QueryRow(b.ctx, `SELECT
			(SELECT string_agg(id::text || kind || idem_key, ',' ORDER BY id) FROM journal_txns) ||
			(SELECT string_agg(id::text || side::text || amount::text || pending::text, ',' ORDER BY id) FROM journal_entries) ||
			(SELECT string_agg(id::text || amount::text, ',' ORDER BY id) FROM pending_transfers) ||
			(SELECT string_agg(pending_id::text || outcome || posted_amount::text, ',' ORDER BY pending_id) FROM pending_resolutions)`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	snapshot = snap()
	for _, stmt := range []string{
		`UPDATE journal_txns SET kind = 'CHANGED'`,
		`UPDATE journal_txns SET effective_date = effective_date + 1`,
		`DELETE FROM journal_txns WHERE kind = 'TEST'`,
		`UPDATE journal_entries SET amount = amount + 1`,
		`UPDATE journal_entries SET side = CASE side WHEN 'D' THEN 'C'::"char" ELSE 'D'::"char" END`,
		`DELETE FROM journal_entries`,
		`UPDATE pending_transfers SET amount = 1`,
		`DELETE FROM pending_transfers`,
		`UPDATE pending_resolutions SET posted_amount = 150.00`,
		`DELETE FROM pending_resolutions`,
		`TRUNCATE journal_entries`,
		`TRUNCATE pending_resolutions`,
	} {
		_, err := b.pool.Exec(b.ctx, stmt)
		requireCode(t, err, "42501", "")
	}
	for _, stmt := range []string{`TRUNCATE journal_txns CASCADE`, `TRUNCATE pending_transfers CASCADE`} {
		if _, err := b.pool.Exec(b.ctx, stmt); err == nil {
			t.Errorf("%s succeeded", stmt)
		}
	}
	b.requireUnchanged(before, "the refused changes")
	if now := snap(); now != snapshot {
		t.Errorf("journal changed:\n%s\n%s", snapshot, now)
	}
}

// A pending transfer resolves at most once (the primary key of pending_resolutions), and
// never for more than its amount (a trigger), even when the Go checks are bypassed.
func TestDBPendingResolvesOnce(t *testing.T) {
	t.Parallel()
	b := newBook(t)
	p := b.pending(accA, accB, "150.00")
	b.requireBalance(accA, "0", "150.00")
	if err := b.resolve(p, "0"); err != nil {
		t.Fatalf("void: %v", err)
	}
	b.requireBalance(accA, "0", "0")
	b.requireBalance(accB, "0", "0")
	before := b.counts()

	requireCode(t, b.resolve(p, "0"), "23505", "pending_resolutions_pkey")
	requireCode(t, b.resolve(p, "150.00"), "23505", "pending_resolutions_pkey")
	b.requireUnchanged(before, "second resolutions")
	b.requireBalance(accA, "0", "0")

	// Posting more than the pending amount, with entries balanced per layer so that only
	// the resolution trigger stands in the way.
	q := b.pending(accA, accB, "150.00")
	before = b.counts()
	txn := b.txn(
		entry(accA, ledger.Credit, "150.00", true), entry(accB, ledger.Debit, "150.00", true),
		entry(accA, ledger.Debit, "150.01", false), entry(accB, ledger.Credit, "150.01", false))
	err := b.send(func(batch *pgx.Batch) error {
		if err := b.store.Queue(batch, txn, b.ids); err != nil {
			return err
		}
		b.store.QueueResolution(batch, ledger.Resolution{PendingID: q.ID, Posted: amt("150.01"), TxnID: txn.ID})
		return nil
	})
	requireCode(t, err, "23514", "")
	b.requireUnchanged(before, "a posting above the pending amount")
	b.requireBalance(accA, "0", "150.00")

	// Posting all of it is fine, once.
	if err := b.resolve(q, "150.00"); err != nil {
		t.Fatalf("post all: %v", err)
	}
	b.requireBalance(accA, "150.00", "0")
	b.requireBalance(accB, "-150.00", "0")
	requireCode(t, b.resolve(q, "1.00"), "23505", "pending_resolutions_pkey")
	requireNoViolations(t, b)
}

// The same money fact (idempotency key) is never written twice.
func TestDBIdempotencyKeyOnce(t *testing.T) {
	t.Parallel()
	b := newBook(t)
	txn := b.txn(entry(accA, ledger.Debit, "10.00", false), entry(accB, ledger.Credit, "10.00", false))
	b.post(txn)
	before := b.counts()
	again := txn
	again.ID = ledger.NewID()
	err := b.send(func(batch *pgx.Batch) error { return b.store.Queue(batch, again, b.ids) })
	requireCode(t, err, "23505", "journal_txns_idem_key_key")
	b.requireUnchanged(before, "the same idempotency key again")
	b.requireBalance(accA, "10.00", "0")
}

// Balances are maintained by the journal trigger: after transactions queued with
// Store.Queue and sent with db.SendBatch (some in one batch, some concurrently), Balance
// is what the entries say.
func TestStoreBalancesMaintained(t *testing.T) {
	t.Parallel()
	b := newBook(t)
	D, C := ledger.Debit, ledger.Credit
	b.requireBalance(accA, "0", "0")
	b.requireBalance("test:never-used", "0", "0")

	// Three transactions in one batch.
	if err := b.send(func(batch *pgx.Batch) error {
		for _, txn := range []ledger.Txn{
			b.txn(entry(accA, D, "100.00", false), entry(accB, C, "100.00", false)),
			b.txn(entry(accB, D, "30.00", false), entry(accC, C, "30.00", false)),
			b.txn(entry(accA, D, "0.01", false), entry(accB, C, "0.01", false)),
		} {
			if err := b.store.Queue(batch, txn, b.ids); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	b.requireBalance(accA, "100.01", "0")
	b.requireBalance(accB, "-70.01", "0")
	b.requireBalance(accC, "-30.00", "0")

	// A pending transfer, posted in part.
	p := b.pending(accA, accC, "50.00")
	b.requireBalance(accA, "100.01", "50.00")
	b.requireBalance(accC, "-30.00", "-50.00")
	if err := b.resolve(p, "20.00"); err != nil {
		t.Fatal(err)
	}
	b.requireBalance(accA, "120.01", "0")
	b.requireBalance(accC, "-50.00", "0")

	// 16 concurrent transactions, each on its own connection (each takes a shard no other holds).
	const n = 16
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, n)
	txns := make([]ledger.Txn, n)
	for i := range txns {
		txns[i] = b.txn(entry(accA, D, "1.00", false), entry(accB, C, "1.00", false))
	}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs <- b.send(func(batch *pgx.Batch) error { return b.store.Queue(batch, txns[i], b.ids) })
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	b.requireBalance(accA, "136.01", "0")
	b.requireBalance(accB, "-86.01", "0")
	var shards int
	if err := b.pool.QueryRow(b.ctx, `SELECT count(*) FROM account_balances WHERE account_id = $1`, b.ids[accA]).Scan(&shards); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s is kept in %d shard rows", accA, shards)
	requireNoViolations(t, b)
}

// Queue refuses an invalid transaction and one whose account was not resolved, before
// anything reaches the database.
func TestStoreQueueRefuses(t *testing.T) {
	t.Parallel()
	s := ledger.NewStore()
	ids := map[string]int32{accA: 1, accB: 2}
	batch := &pgx.Batch{}
	bad := ledger.Txn{ID: ledger.NewID(), IdemKey: "k", Entries: []ledger.Entry{entry(accA, ledger.Debit, "1.00", false), entry(accB, ledger.Credit, "2.00", false)}}
	if err := s.Queue(batch, bad, ids); err == nil {
		t.Error("Queue of an unbalanced txn = nil error")
	}
	unknown := ledger.Txn{ID: ledger.NewID(), IdemKey: "k", Entries: []ledger.Entry{entry(accA, ledger.Debit, "1.00", false), entry(accC, ledger.Credit, "1.00", false)}}
	if err := s.Queue(batch, unknown, ids); err == nil {
		t.Error("Queue with an unresolved account = nil error")
	}
	if batch.Len() != 0 {
		t.Errorf("refused txns queued %d statements", batch.Len())
	}
}

// Accounts creates missing accounts once and returns the same ids to every store.
func TestStoreAccounts(t *testing.T) {
	t.Parallel()
	b := newBook(t)
	again, err := ledger.NewStore().Accounts(b.ctx, b.pool, accC, accA, "test:d")
	if err != nil {
		t.Fatal(err)
	}
	if again[accA] != b.ids[accA] || again[accC] != b.ids[accC] || again["test:d"] == 0 || len(again) != 3 {
		t.Errorf("second store got %v, first %v", again, b.ids)
	}
	var n int
	if err := b.pool.QueryRow(b.ctx, `SELECT count(*) FROM accounts`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Errorf("%d accounts, want 4", n)
	}
	if _, err := ledger.NewStore().Accounts(b.ctx, b.pool, "Not A Code"); err == nil {
		t.Error("an invalid account code was accepted")
	}
}

// Two requests creating the same new account at the same moment both get its id: here
// another transaction has inserted it and commits only once Accounts waits on it.
func TestStoreAccountsWhileAnotherTransactionCreatesThem(t *testing.T) {
	t.Parallel()
	pool := dbtest.NewPool(t)
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var id int32
	if err := tx.QueryRow(ctx, `INSERT INTO accounts (code) VALUES ('test:new') RETURNING id`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	type result struct {
		ids map[string]int32
		err error
	}
	done := make(chan result, 1)
	go func() {
		ids, err := ledger.NewStore().Accounts(ctx, pool, "test:new")
		done <- result{ids, err}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Accounts never waited on the other transaction")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("Accounts while another transaction created the account: %v; want id %d", r.err, id)
	}
	if r.ids["test:new"] != id {
		t.Errorf("got id %d, want %d", r.ids["test:new"], id)
	}
}

// 30 stores ask for the same new accounts at once, 10 rounds: every call gets the ids.
func TestStoreAccountsConcurrentFirstUse(t *testing.T) {
	t.Parallel()
	pool := dbtest.NewPool(t)
	ctx := context.Background()
	const rounds, n = 10, 30
	failed := 0
	for round := range rounds {
		codes := []string{fmt.Sprintf("test:x%d", round), fmt.Sprintf("test:y%d", round)}
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[i] = ledger.NewStore().Accounts(ctx, pool, codes...)
			}()
		}
		close(start)
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				failed++
				if failed == 1 {
					t.Errorf("first failure: %v", err)
				}
			}
		}
	}
	t.Logf("%d rounds of %d concurrent first uses of two accounts: %d calls failed", rounds, n, failed)
	if failed > 0 {
		t.Errorf("%d of %d calls failed, want none", failed, rounds*n)
	}
}

func requireNoViolations(t *testing.T, b *book) {
	t.Helper()
	vs, err := ledger.Check(b.ctx, b.pool)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		t.Errorf("violation %s: %s", v.Invariant, v.Detail)
	}
}

// requireViolation fails unless Check reports the invariant, naming want in the detail.
func requireViolation(t *testing.T, b *book, invariant, want string) {
	t.Helper()
	vs, err := ledger.Check(b.ctx, b.pool)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if v.Invariant == invariant && strings.Contains(v.Detail, want) {
			return
		}
	}
	t.Errorf("Check found %v, want %s naming %q", vs, invariant, want)
}

// Check finds nothing on a good ledger, and finds each kind of corruption.
func TestCheck(t *testing.T) {
	t.Parallel()
	b := newBook(t)
	D, C := ledger.Debit, ledger.Credit
	b.post(b.txn(entry(accA, D, "100.00", false), entry(accB, C, "100.00", false)))
	p := b.pending(accA, accC, "50.00")
	if err := b.resolve(p, "20.00"); err != nil {
		t.Fatal(err)
	}
	b.pending(accB, accC, "7.00") // left open
	requireNoViolations(t, b)

	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := b.pool.Exec(b.ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}

	t.Run("maintained posted balance off", func(t *testing.T) {
		exec(`UPDATE account_balances SET posted_dr = posted_dr + 0.01 WHERE account_id = $1 AND shard = (SELECT min(shard) FROM account_balances WHERE account_id = $1)`, b.ids[accA])
		requireViolation(t, b, "balances_match_entries", accA)
		exec(`UPDATE account_balances SET posted_dr = posted_dr - 0.01 WHERE account_id = $1 AND shard = (SELECT min(shard) FROM account_balances WHERE account_id = $1)`, b.ids[accA])
		requireNoViolations(t, b)
	})
	t.Run("maintained pending balance off", func(t *testing.T) {
		exec(`UPDATE account_balances SET pending_cr = pending_cr + 7.00 WHERE account_id = $1 AND shard = (SELECT min(shard) FROM account_balances WHERE account_id = $1)`, b.ids[accC])
		requireViolation(t, b, "balances_match_entries", accC)
		requireViolation(t, b, "pending_matches_open_transfers", accC)
		exec(`UPDATE account_balances SET pending_cr = pending_cr - 7.00 WHERE account_id = $1 AND shard = (SELECT min(shard) FROM account_balances WHERE account_id = $1)`, b.ids[accC])
		requireNoViolations(t, b)
	})
	t.Run("a balance row for an account with no entries", func(t *testing.T) {
		ids, err := b.store.Accounts(b.ctx, b.pool, "test:empty")
		if err != nil {
			t.Fatal(err)
		}
		exec(`INSERT INTO account_balances (account_id, shard, posted_dr) VALUES ($1, 0, 5.00)`, ids["test:empty"])
		requireViolation(t, b, "balances_match_entries", "test:empty")
		exec(`UPDATE account_balances SET posted_dr = 0 WHERE account_id = $1`, ids["test:empty"])
		requireNoViolations(t, b)
	})
	t.Run("agency receivable not equal to the authority's payable", func(t *testing.T) {
		ids, err := b.store.Accounts(b.ctx, b.pool, ledger.Receivable("AG-T"), ledger.AgencyPayable("AG-T"), ledger.Cash("AG-T", "D1"))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range ids {
			b.ids[k] = v
		}
		b.post(b.txn(entry(ledger.Receivable("AG-T"), D, "10.00", false), entry(ledger.AgencyPayable("AG-T"), C, "10.00", false)))
		requireNoViolations(t, b)
		b.post(b.txn(entry(ledger.Receivable("AG-T"), D, "1.00", false), entry(ledger.Cash("AG-T", "D1"), C, "1.00", false)))
		requireViolation(t, b, "receivable_equals_payable", "AG-T")
	})
}

// With the balance trigger off (as only the table owner can do), an unbalanced
// transaction gets in, and Check reports it.
func TestCheckFindsUnbalancedJournal(t *testing.T) {
	t.Parallel()
	b := newBook(t)
	if _, err := b.pool.Exec(b.ctx, `ALTER TABLE journal_entries DISABLE TRIGGER journal_entries_apply`); err != nil {
		t.Skipf("cannot disable the trigger: %v", err)
	}
	tx, err := b.pool.Begin(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(b.ctx)
	id := ledger.NewID()
	if _, err := tx.Exec(b.ctx, `INSERT INTO journal_txns (id, idem_key, kind, ref, effective_date) VALUES ($1, 'unbalanced', 'RAW', 'raw', '2026-03-10')`, id); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(b.ctx, `INSERT INTO journal_entries (txn_id, account_id, pending, side, amount) VALUES ($1, $2, false, 'D', 10.00)`, id, b.ids[accA]); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(b.ctx); err != nil {
		t.Fatal(err)
	}
	requireViolation(t, b, "journal_balanced", id.String())
	requireViolation(t, b, "balances_match_entries", accA)
}
