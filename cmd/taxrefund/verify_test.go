package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"taxrefund/internal/anchor"
	"taxrefund/internal/db"
	"taxrefund/internal/dbtest"
	"taxrefund/internal/seal"
)

// TestVerifyCommandAgainstCheckpoints: `taxrefund keys` makes the key, checkpoints are
// signed with it, and `taxrefund verify` reports the chains and the checkpoints that
// match (exit 0). Then the tables' owner changes a journal transaction's created_at and
// re-seals the whole journal chain, committed: verify exits non-zero, says the chain was
// re-sealed since the checkpoint and names that transaction's seal and row.
func TestVerifyCommandAgainstCheckpoints(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url := dbtest.NewURL(t)
	dir := t.TempDir()
	vars := map[string]string{"DATABASE_URL": url, "TAXREFUND_JOURNAL_KEY": filepath.Join(dir, "journal.key"),
		"TAXREFUND_JOURNAL_PUBKEYS": filepath.Join(dir, "journal.pub"), "TAXREFUND_CHECKPOINTS": filepath.Join(dir, "checkpoints.log")}
	getenv := func(k string) string { return vars[k] }
	cmd := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(ctx, append([]string{"taxrefund"}, args...), getenv, &out, &errOut)
		// Not a terminal: no progress line (progress_test.go has the terminal's).
		if args[0] == "verify" && strings.Contains(errOut.String(), "seals checked") {
			t.Errorf("verify wrote progress to a non-terminal stderr: %q", errOut.String())
		}
		return out.String(), err
	}
	if out, err := cmd("keys"); err != nil || !strings.Contains(out, "(created)") {
		t.Fatalf("taxrefund keys: %v\n%s", err, out)
	}
	if out, err := cmd("keys"); err != nil || !strings.Contains(out, "(kept)") {
		t.Fatalf("taxrefund keys again: %v\n%s; want the key kept", err, out)
	}

	owner := dbtest.OpenPool(t, url, "")
	app := dbtest.OpenPool(t, url, db.AppRole)
	if _, err := owner.Exec(ctx, `INSERT INTO accounts (code) VALUES ('test:debit'), ('test:credit')`); err != nil {
		t.Fatal(err)
	}
	signer, err := anchor.LoadSigner(vars["TAXREFUND_JOURNAL_KEY"])
	if err != nil {
		t.Fatal(err)
	}
	a := &anchor.Anchor{Pool: app, Signer: signer, File: vars["TAXREFUND_CHECKPOINTS"], Sealer: &seal.Sealer{Pool: app, Log: slog.New(slog.DiscardHandler)}}
	var ids []string
	for i := range 3 {
		var id string
		if err := owner.QueryRow(ctx, `INSERT INTO journal_txns (id, idem_key, kind, ref, effective_date)
			VALUES (gen_random_uuid(), 'verify-' || $1::text, 'TEST', 'ref', DATE '2025-06-10') RETURNING id::text`, fmt.Sprint(i)).Scan(&id); err != nil {
			t.Fatal(err)
		}
		if _, err := owner.Exec(ctx, `INSERT INTO journal_entries (txn_id, account_id, pending, side, amount)
			SELECT $1::uuid, a.id, false, CASE a.code WHEN 'test:debit' THEN 'D' ELSE 'C' END, 5.00 FROM accounts a WHERE a.code LIKE 'test:%'`, id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		if _, err := a.Checkpoint(ctx, anchor.Manual, ""); err != nil {
			t.Fatal(err)
		}
	}
	out, err := cmd("verify")
	if err != nil || !strings.Contains(out, "journal: 3 seals verified") || !strings.Contains(out, "journal: 3 of 3 signed checkpoints match") {
		t.Fatalf("taxrefund verify of an untouched chain: %v\n%s", err, out)
	}

	// The owner's attack, committed: a changed row, the whole chain re-sealed.
	ocfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	scfg, err := pgx.ParseConfig(dbtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	scfg.Database = ocfg.Database
	su, err := pgx.ConnectConfig(ctx, scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(ctx)
	tx, err := su.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `UPDATE journal_txns SET created_at = created_at - interval '3 days' WHERE id = $1::uuid`, ids[1]); err != nil {
		t.Fatal(err)
	}
	prev := make([]byte, sha256.Size)
	var seqs []int64
	var prevs, hashes [][]byte
	if err := seal.Walk(ctx, tx, seal.Journal, func(x seal.Sealed) error {
		h := x.Next(prev)
		seqs, prevs, hashes = append(seqs, x.Seq), append(prevs, prev), append(hashes, h)
		prev = h
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i := range seqs {
		if _, err := tx.Exec(ctx, `UPDATE seals SET prev_hash = $2, hash = $3 WHERE chain = 'journal' AND seq = $1`, seqs[i], prevs[i], hashes[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if r, err := seal.Verify(ctx, owner, seal.Journal); err != nil || r.Broken != nil {
		t.Fatalf("the re-sealed chain alone: %+v, %v; want it consistent", r.Broken, err)
	}
	out, err = cmd("verify")
	if err == nil {
		t.Fatalf("taxrefund verify of a re-sealed chain exited 0:\n%s", out)
	}
	if !strings.Contains(out, "RE-SEALED: journal: re-sealed since the checkpoint") || !strings.Contains(out, "seal 2 (row "+ids[1]+")") {
		t.Errorf("taxrefund verify of a re-sealed chain:\n%s\nwant it re-sealed since the checkpoint, first differing at seal 2 (row %s)", out, ids[1])
	}
	if !strings.Contains(out, "journal: 1 of 3 signed checkpoints match") {
		t.Errorf("taxrefund verify:\n%s\nwant 1 of 3 checkpoints matching", out)
	}

	// A rotation keeps the old public key: the old checkpoints are still judged, not
	// reported as forged.
	if out, err := cmd("keys", "-rotate"); err != nil || !strings.Contains(out, "replaces "+signer.ID) {
		t.Fatalf("taxrefund keys -rotate: %v\n%s", err, out)
	}
	out, _ = cmd("verify")
	if strings.Contains(out, "FORGED") || !strings.Contains(out, "RE-SEALED") {
		t.Errorf("verify after a rotation:\n%s\nwant the same re-sealed finding and no forged line", out)
	}
}
