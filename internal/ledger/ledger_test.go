package ledger_test

import (
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"taxrefund/internal/ledger"
)

func amt(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func entry(account string, side ledger.Side, amount string, pending bool) ledger.Entry {
	return ledger.Entry{Account: account, Side: side, Amount: amt(amount), Pending: pending}
}

const (
	accA = "test:a"
	accB = "test:b"
	accC = "test:c"
)

func TestTxnValidate(t *testing.T) {
	t.Parallel()
	D, C := ledger.Debit, ledger.Credit
	tests := []struct {
		name    string
		entries []ledger.Entry
		ok      bool
	}{
		{"balanced posted", []ledger.Entry{entry(accA, D, "150.00", false), entry(accB, C, "150.00", false)}, true},
		{"balanced pending", []ledger.Entry{entry(accA, D, "150.00", true), entry(accB, C, "150.00", true)}, true},
		{"balanced, one debit against two credits", []ledger.Entry{
			entry(accA, D, "150.00", false), entry(accB, C, "120.00", false), entry(accC, C, "30.00", false)}, true},
		{"each layer balanced", []ledger.Entry{
			entry(accA, C, "150.00", true), entry(accB, D, "150.00", true),
			entry(accA, D, "100.00", false), entry(accB, C, "100.00", false)}, true},
		{"no entries", nil, false},
		{"unbalanced by one fen", []ledger.Entry{entry(accA, D, "150.00", false), entry(accB, C, "149.99", false)}, false},
		{"debit only", []ledger.Entry{entry(accA, D, "150.00", false)}, false},
		{"zero amounts", []ledger.Entry{entry(accA, D, "0", false), entry(accB, C, "0", false)}, false},
		{"zero value decimal", []ledger.Entry{{Account: accA, Side: D}, {Account: accB, Side: C}}, false},
		{"negative amounts", []ledger.Entry{entry(accA, D, "-10.00", false), entry(accB, C, "-10.00", false)}, false},
		{"negative debit balancing a credit the other way", []ledger.Entry{entry(accA, D, "-10.00", false), entry(accB, D, "10.00", false)}, false},
		{"three decimals", []ledger.Entry{entry(accA, D, "10.005", false), entry(accB, C, "10.005", false)}, false},
		{"a thousandth", []ledger.Entry{entry(accA, D, "0.001", false), entry(accB, C, "0.001", false)}, false},
		{"bad side", []ledger.Entry{entry(accA, 'X', "10.00", false), entry(accB, C, "10.00", false)}, false},
		{"lower-case side", []ledger.Entry{entry(accA, 'd', "10.00", false), entry(accB, C, "10.00", false)}, false},
		{"balanced across layers, not in each", []ledger.Entry{entry(accA, D, "10.00", true), entry(accB, C, "10.00", false)}, false},
		{"posted layer balanced, pending not", []ledger.Entry{
			entry(accA, D, "10.00", false), entry(accB, C, "10.00", false), entry(accA, D, "5.00", true)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			txn := ledger.Txn{ID: ledger.NewID(), IdemKey: "test:" + tt.name, Kind: "TEST", Ref: "r", EffectiveDate: time.Now(), Entries: tt.entries}
			err := txn.Validate()
			if tt.ok && err != nil {
				t.Errorf("Validate() = %v, want nil", err)
			}
			if !tt.ok && err == nil {
				t.Errorf("Validate() = nil, want an error")
			}
		})
	}
}

func TestNewPending(t *testing.T) {
	t.Parallel()
	txn, p := ledger.NewPending("k", "FORM_ISSUED", "TR1", time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC), accA, accB, amt("150.00"))
	if err := txn.Validate(); err != nil {
		t.Fatal(err)
	}
	if p.ID != txn.ID || p.Debit != accA || p.Credit != accB || !p.Amount.Equal(amt("150.00")) {
		t.Errorf("pending %+v of txn %s", p, txn.ID)
	}
	want := []ledger.Entry{entry(accA, ledger.Debit, "150.00", true), entry(accB, ledger.Credit, "150.00", true)}
	requireEntries(t, txn.Entries, want)
}

// requireEntries compares entries in order, amounts by value.
func requireEntries(t *testing.T, got, want []ledger.Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("entries %v, want %v", got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Account != w.Account || g.Side != w.Side || g.Pending != w.Pending || !g.Amount.Equal(w.Amount) {
			t.Errorf("entry %d: %+v, want %+v", i, g, w)
		}
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	day := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	_, p := ledger.NewPending("k", "FORM_ISSUED", "TR1", day, accA, accB, amt("150.00"))
	D, C := ledger.Debit, ledger.Credit

	t.Run("post more than pending", func(t *testing.T) {
		for _, posted := range []string{"150.01", "151", "1000000"} {
			if _, _, err := ledger.Resolve(p, "r", "X", "TR1", day, amt(posted)); err == nil {
				t.Errorf("Resolve(post %s of 150.00) = nil error", posted)
			}
		}
	})
	t.Run("post negative", func(t *testing.T) {
		if _, _, err := ledger.Resolve(p, "r", "X", "TR1", day, amt("-0.01")); err == nil {
			t.Error("Resolve(post -0.01) = nil error")
		}
	})
	t.Run("post 0 voids", func(t *testing.T) {
		txn, res, err := ledger.Resolve(p, "r", "FORM_VOIDED", "TR1", day, decimal.Zero)
		if err != nil {
			t.Fatal(err)
		}
		requireEntries(t, txn.Entries, []ledger.Entry{entry(accA, C, "150.00", true), entry(accB, D, "150.00", true)})
		if res.PendingID != p.ID || !res.Posted.IsZero() || res.TxnID != txn.ID {
			t.Errorf("resolution %+v", res)
		}
	})
	t.Run("post partial", func(t *testing.T) {
		txn, res, err := ledger.Resolve(p, "r", "EXPORT_CONFIRMED", "TR1", day, amt("99.99"))
		if err != nil {
			t.Fatal(err)
		}
		requireEntries(t, txn.Entries, []ledger.Entry{
			entry(accA, C, "150.00", true), entry(accB, D, "150.00", true),
			entry(accA, D, "99.99", false), entry(accB, C, "99.99", false),
		})
		if err := txn.Validate(); err != nil {
			t.Errorf("the posting is not balanced per layer: %v", err)
		}
		if !res.Posted.Equal(amt("99.99")) || res.PendingID != p.ID {
			t.Errorf("resolution %+v", res)
		}
	})
	t.Run("post all", func(t *testing.T) {
		txn, _, err := ledger.Resolve(p, "r", "EXPORT_CONFIRMED", "TR1", day, amt("150.00"))
		if err != nil {
			t.Fatal(err)
		}
		requireEntries(t, txn.Entries, []ledger.Entry{
			entry(accA, C, "150.00", true), entry(accB, D, "150.00", true),
			entry(accA, D, "150.00", false), entry(accB, C, "150.00", false),
		})
	})
	t.Run("balanced extra entries ride along", func(t *testing.T) {
		txn, _, err := ledger.Resolve(p, "r", "X", "TR1", day, amt("150.00"),
			entry(accB, D, "150.00", false), entry(accC, C, "150.00", false))
		if err != nil {
			t.Fatal(err)
		}
		if len(txn.Entries) != 6 {
			t.Errorf("%d entries, want 6", len(txn.Entries))
		}
	})
	t.Run("unbalanced extra entries are refused", func(t *testing.T) {
		if _, _, err := ledger.Resolve(p, "r", "X", "TR1", day, amt("150.00"), entry(accC, C, "1.00", false)); err == nil {
			t.Error("Resolve with an unbalanced extra entry = nil error")
		}
	})
	t.Run("a sub-fen posting is refused", func(t *testing.T) {
		if _, _, err := ledger.Resolve(p, "r", "X", "TR1", day, amt("10.005")); err == nil {
			t.Error("Resolve(post 10.005) = nil error")
		}
	})
}
