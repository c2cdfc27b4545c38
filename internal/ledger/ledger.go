// Package ledger is the double-entry ledger of DOMAIN.md §8: balanced journal
// transactions in two layers (posted money and pending two-phase transfers), and their
// PostgreSQL store. The database enforces the same rules again: transactions balance,
// the journal is append-only, and a pending transfer resolves at most once.
package ledger

import (
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"
)

// Side is the side of an entry.
type Side byte

// Debit and Credit.
const (
	Debit  Side = 'D'
	Credit Side = 'C'
)

// Entry is one line of a journal transaction.
type Entry struct {
	Account string
	Side    Side
	Amount  decimal.Decimal
	// Pending entries belong to the two-phase layer: money promised, not yet owed.
	Pending bool
}

// Txn is a journal transaction: one money fact.
type Txn struct {
	ID uuid.UUID
	// IdemKey names the fact, e.g. "form:TR...:issue"; the same key is never written twice.
	IdemKey string
	Kind    string
	// Ref is what the fact is about: a form number, a payout id.
	Ref           string
	EffectiveDate time.Time
	Entries       []Entry
}

// Validate checks that every amount is a positive number of fen and that each layer
// balances.
func (t Txn) Validate() error {
	if len(t.Entries) == 0 {
		return fmt.Errorf("txn %s: no entries", t.IdemKey)
	}
	var posted, pending decimal.Decimal
	for _, e := range t.Entries {
		if !e.Amount.IsPositive() || !e.Amount.Equal(e.Amount.Round(2)) {
			return fmt.Errorf("txn %s: amount %s on %s is not a positive number of fen", t.IdemKey, e.Amount, e.Account)
		}
		signed := e.Amount
		if e.Side == Credit {
			signed = signed.Neg()
		} else if e.Side != Debit {
			return fmt.Errorf("txn %s: bad side %q", t.IdemKey, e.Side)
		}
		if e.Pending {
			pending = pending.Add(signed)
		} else {
			posted = posted.Add(signed)
		}
	}
	if !posted.IsZero() || !pending.IsZero() {
		return fmt.Errorf("txn %s: not balanced (posted %s, pending %s)", t.IdemKey, posted, pending)
	}
	return nil
}

// Pending is a two-phase transfer: created pending, later posted for an amount up to
// Amount (the rest released) or voided.
type Pending struct {
	// ID is the id of the transaction that created it.
	ID     uuid.UUID
	Debit  string
	Credit string
	Amount decimal.Decimal
}

// NewPending returns the transaction that creates a pending transfer of amount from debit
// to credit, and the transfer.
func NewPending(idemKey, kind, ref string, date time.Time, debit, credit string, amount decimal.Decimal) (Txn, Pending) {
	id := newID()
	return Txn{
			ID: id, IdemKey: idemKey, Kind: kind, Ref: ref, EffectiveDate: date,
			Entries: []Entry{
				{Account: debit, Side: Debit, Amount: amount, Pending: true},
				{Account: credit, Side: Credit, Amount: amount, Pending: true},
			},
		}, Pending{
			ID: id, Debit: debit, Credit: credit, Amount: amount,
		}
}

// Resolution resolves a pending transfer: Posted of its amount is posted, the rest is
// released. Posted zero voids it.
type Resolution struct {
	PendingID uuid.UUID
	Posted    decimal.Decimal
	TxnID     uuid.UUID
}

// Resolve returns the transaction that posts amount of p (0 voids it) and releases the
// rest, with its resolution record. extra entries (balanced on their own) may ride in the
// same transaction.
func Resolve(p Pending, idemKey, kind, ref string, date time.Time, posted decimal.Decimal, extra ...Entry) (Txn, Resolution, error) {
	if posted.IsNegative() || posted.GreaterThan(p.Amount) {
		return Txn{}, Resolution{}, fmt.Errorf("pending %s: cannot post %s of %s", p.ID, posted, p.Amount)
	}
	entries := []Entry{
		{Account: p.Debit, Side: Credit, Amount: p.Amount, Pending: true},
		{Account: p.Credit, Side: Debit, Amount: p.Amount, Pending: true},
	}
	if posted.IsPositive() {
		entries = append(entries,
			Entry{Account: p.Debit, Side: Debit, Amount: posted},
			Entry{Account: p.Credit, Side: Credit, Amount: posted})
	}
	entries = append(entries, extra...)
	t := Txn{ID: newID(), IdemKey: idemKey, Kind: kind, Ref: ref, EffectiveDate: date, Entries: entries}
	if err := t.Validate(); err != nil {
		return Txn{}, Resolution{}, err
	}
	return t, Resolution{PendingID: p.ID, Posted: posted, TxnID: t.ID}, nil
}

// newID returns a time-ordered UUID (v7), which keeps primary-key inserts at the right
// edge of the index.
func newID() uuid.UUID {
	return uuid.Must(uuid.NewV7())
}

// NewID returns a new time-ordered id for rows that reference journal transactions.
func NewID() uuid.UUID { return newID() }
