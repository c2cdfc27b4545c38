package ledger

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"taxrefund/internal/db"
)

// Querier is what the store needs of a pool, a connection or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Store writes journal transactions to PostgreSQL. Writes are queued onto a pgx.Batch so
// that a caller can send a whole business operation (its own rows and the ledger's) in
// one round trip, atomically.
type Store struct {
	mu  sync.RWMutex
	ids map[string]int32 // account code → id; accounts are never renamed or deleted
}

// NewStore returns a store with an empty account cache.
func NewStore() *Store {
	return &Store{ids: map[string]int32{}}
}

// Accounts returns the ids of the given account codes, creating missing accounts.
func (s *Store) Accounts(ctx context.Context, q Querier, codes ...string) (map[string]int32, error) {
	out := make(map[string]int32, len(codes))
	var missing []string
	s.mu.RLock()
	for _, c := range codes {
		if id, ok := s.ids[c]; ok {
			out[c] = id
		} else {
			missing = append(missing, c)
		}
	}
	s.mu.RUnlock()
	if len(missing) == 0 {
		return out, nil
	}
	sort.Strings(missing)
	// DO UPDATE (a no-op) rather than DO NOTHING: it waits for a concurrent creator of the
	// same code to commit and then returns that row, which DO NOTHING would skip.
	type account struct {
		id   int32
		code string
	}
	var found []account
	upsert := func() error {
		rows, err := q.Query(ctx, `
			INSERT INTO accounts (code) SELECT unnest($1::text[]) ORDER BY 1
			ON CONFLICT (code) DO UPDATE SET code = excluded.code
			RETURNING id, code`, missing)
		if err != nil {
			return err
		}
		found, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (account, error) {
			var v account
			err := r.Scan(&v.id, &v.code)
			return v, err
		})
		return err
	}
	_, inTx := q.(pgx.Tx)
	var err error
	if inTx {
		err = upsert() // the caller's transaction retries as a whole
	} else {
		// Two first uses of the same new accounts can deadlock on each other's
		// speculative inserts: the statement stands alone, so run it again.
		err = db.Retry(ctx, upsert)
	}
	if err != nil {
		return nil, fmt.Errorf("ensure accounts: %w", err)
	}
	// Inside a transaction the new rows may still roll back: cache only what a
	// committed statement created, or the cache would hand out ids of accounts that
	// never came to be.
	s.mu.Lock()
	for _, v := range found {
		if !inTx {
			s.ids[v.code] = v.id
		}
		out[v.code] = v.id
	}
	s.mu.Unlock()
	for _, c := range missing {
		if _, ok := out[c]; !ok {
			return nil, fmt.Errorf("ensure accounts: %s not created", c)
		}
	}
	return out, nil
}

// Queue appends the statements that write t (header and entries, in one statement each)
// to b. ids must hold every account t uses (see Accounts).
func (s *Store) Queue(b *pgx.Batch, t Txn, ids map[string]int32) error {
	if err := t.Validate(); err != nil {
		return err
	}
	n := len(t.Entries)
	accounts := make([]int32, n)
	pending := make([]bool, n)
	sides := make([]string, n)
	amounts := make([]decimal.Decimal, n)
	for i, e := range t.Entries {
		id, ok := ids[e.Account]
		if !ok {
			return fmt.Errorf("txn %s: account %s not resolved", t.IdemKey, e.Account)
		}
		accounts[i], pending[i], sides[i], amounts[i] = id, e.Pending, string(rune(e.Side)), e.Amount
	}
	b.Queue(`INSERT INTO journal_txns (id, idem_key, kind, ref, effective_date) VALUES ($1, $2, $3, $4, $5)`,
		t.ID, t.IdemKey, t.Kind, t.Ref, t.EffectiveDate)
	b.Queue(`INSERT INTO journal_entries (txn_id, account_id, pending, side, amount)
		SELECT $1, a, p, s::"char", m FROM unnest($2::int[], $3::bool[], $4::text[], $5::numeric[]) AS e(a, p, s, m)`,
		t.ID, accounts, pending, sides, amounts)
	return nil
}

// QueuePending appends the record of pending transfer p (whose transaction must be queued
// before it).
func (s *Store) QueuePending(b *pgx.Batch, p Pending, ids map[string]int32) {
	b.Queue(`INSERT INTO pending_transfers (id, debit_account, credit_account, amount) VALUES ($1, $2, $3, $4)`,
		p.ID, ids[p.Debit], ids[p.Credit], p.Amount)
}

// QueueResolution appends the resolution record r (its transaction must be queued before
// it). A second resolution of the same transfer fails on the primary key.
func (s *Store) QueueResolution(b *pgx.Batch, r Resolution) {
	outcome := "POSTED"
	if r.Posted.IsZero() {
		outcome = "VOIDED"
	}
	b.Queue(`INSERT INTO pending_resolutions (pending_id, outcome, posted_amount, txn_id) VALUES ($1, $2, $3, $4)`,
		r.PendingID, outcome, r.Posted, r.TxnID)
}

// Balance is an account's balance, debit minus credit, per layer: the maintained one,
// and for the pending layer of the accounts every form writes (ledger_derived_pending,
// migrations/00017) the sum of their pending entries.
type Balance struct {
	Posted  decimal.Decimal
	Pending decimal.Decimal
}

// Balance returns the balance of the account code (zero if it has none).
func (s *Store) Balance(ctx context.Context, q Querier, code string) (Balance, error) {
	rows, err := q.Query(ctx, `
		SELECT coalesce(sum(b.posted_dr - b.posted_cr), 0), coalesce(sum(b.pending_dr - b.pending_cr), 0)
		  FROM accounts a JOIN ledger_balances b ON b.account_id = a.id
		 WHERE a.code = $1`, code)
	if err != nil {
		return Balance{}, fmt.Errorf("balance %s: %w", code, err)
	}
	bal, err := pgx.CollectExactlyOneRow(rows, func(r pgx.CollectableRow) (Balance, error) {
		var b Balance
		err := r.Scan(&b.Posted, &b.Pending)
		return b, err
	})
	if err != nil {
		return Balance{}, fmt.Errorf("balance %s: %w", code, err)
	}
	return bal, nil
}
