package anchor_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"taxrefund/internal/anchor"
	"taxrefund/internal/db"
	"taxrefund/internal/dbtest"
	"taxrefund/internal/seal"
)

// BenchmarkCheck measures what the checkpoints add to a verification: seal.Verify of a
// journal chain of 10,000 transactions (two entries each) against anchor.Check of the same
// chains with a checkpoint every 1,000 seals (which verifies and recomputes once more).
func BenchmarkCheck(b *testing.B) {
	ctx := db.WithParty(context.Background(), "system", "bench")
	url := dbtest.NewURL(b)
	owner := dbtest.OpenPool(b, url, "")
	app := dbtest.OpenPool(b, url, db.AppRole)
	const n = 10000
	for _, sql := range []string{
		`INSERT INTO accounts (code) VALUES ('test:debit'), ('test:credit')`,
		`INSERT INTO journal_txns (id, idem_key, kind, ref, effective_date)
		 SELECT md5('txn' || i)::uuid, 'bench-' || i, 'TEST', 'ref-' || i, DATE '2025-06-10' FROM generate_series(1, 10000) AS i`,
		`INSERT INTO journal_entries (txn_id, account_id, pending, side, amount)
		 SELECT md5('txn' || i)::uuid, a.id, false, CASE a.code WHEN 'test:debit' THEN 'D' ELSE 'C' END, i / 100.0
		   FROM generate_series(1, 10000) AS i CROSS JOIN accounts a WHERE a.code LIKE 'test:%'`,
	} {
		if _, err := owner.Exec(ctx, sql); err != nil {
			b.Fatal(err)
		}
	}
	dir := b.TempDir()
	keyFile, pubFile, cpFile := filepath.Join(dir, "k"), filepath.Join(dir, "p"), filepath.Join(dir, "c")
	if _, _, err := anchor.EnsureKey(keyFile, pubFile); err != nil {
		b.Fatal(err)
	}
	signer, err := anchor.LoadSigner(keyFile)
	if err != nil {
		b.Fatal(err)
	}
	a := &anchor.Anchor{Pool: app, Signer: signer, File: cpFile}
	sealer := &seal.Sealer{Pool: app, Log: slog.New(slog.DiscardHandler), Batch: 1000}
	for {
		k, err := sealer.SealOnce(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if k == 0 {
			break
		}
		if _, err := a.Checkpoint(ctx, anchor.Manual, ""); err != nil {
			b.Fatal(err)
		}
	}
	lines, err := anchor.ReadFile(cpFile)
	if err != nil {
		b.Fatal(err)
	}
	keys, err := anchor.LoadPublicKeys(pubFile)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("seal.Verify", func(b *testing.B) {
		for b.Loop() {
			if r, err := seal.Verify(ctx, owner, seal.Journal); err != nil || r.Verified != n {
				b.Fatalf("%+v, %v", r, err)
			}
		}
	})
	b.Run("anchor.Check", func(b *testing.B) {
		for b.Loop() {
			if r, err := anchor.Check(ctx, owner, lines, keys); err != nil || !r.OK() || r.Chains[0].Matched != n/1000 {
				b.Fatalf("%+v, %v", r, err)
			}
		}
	})
}
