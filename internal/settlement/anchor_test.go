package settlement_test

import (
	"log/slog"
	"path/filepath"
	"testing"

	"taxrefund/internal/anchor"
	"taxrefund/internal/fault"
	"taxrefund/internal/seal"
)

// TestCloseMonthSignsTheChainHeads: with an anchor, closing October seals what is queued
// and appends a month-close checkpoint of 2026-10 per chain whose head is the chain's
// head; declarations of October then carry those checkpoints (before the close, none was
// signed for October) and the checks pass. A checkpoint that cannot be written answers
// UNAVAILABLE (retry with the same request_id), the month staying closed.
func TestCloseMonthSignsTheChainHeads(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.paid("S-JFB-1", "CKG-01", local(2026, 10, 5, 10, 0), local(2026, 10, 6, 10, 0), item{"1000.00", "0.13"})
	e.clock.Set(local(2026, 11, 3, 10, 0))
	dir := t.TempDir()
	keyFile, pubFile, cpFile := filepath.Join(dir, "journal.key"), filepath.Join(dir, "journal.pub"), filepath.Join(dir, "checkpoints.log")
	if _, _, err := anchor.EnsureKey(keyFile, pubFile); err != nil {
		t.Fatal(err)
	}
	signer, err := anchor.LoadSigner(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := anchor.LoadPublicKeys(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	a := &anchor.Anchor{Pool: e.pool, Signer: signer, Keys: keys, File: cpFile, Now: e.clock.Now,
		Sealer: &seal.Sealer{Pool: e.pool, Log: slog.New(slog.DiscardHandler)}}
	e.svc.SetAnchor(a)

	d, err := e.svc.Declare(e.ctx, key(cashierCQ, "declare 2026-10"), "AG-CQ", month(2026, 10))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Checkpoints) != 0 {
		t.Errorf("before the close: %+v; want no checkpoint of October", d.Checkpoints)
	}
	k := key(officer, "close oct")
	if _, err := e.svc.CloseMonth(e.ctx, k, month(2026, 10)); err != nil {
		t.Fatal(err)
	}
	if q := e.count(`SELECT count(*) FROM seal_queue`); q != 0 {
		t.Errorf("%d rows still queued after the close's checkpoint", q)
	}
	lines, err := anchor.ReadFile(cpFile)
	if err != nil || len(lines) != 2 {
		t.Fatalf("checkpoint file: %d lines, %v; want 2", len(lines), err)
	}
	for i, chain := range seal.Chains {
		c := lines[i].Checkpoint
		seq, head, err := seal.Head(e.ctx, e.pool, chain)
		if err != nil {
			t.Fatal(err)
		}
		if c.Chain != chain || c.Reason != anchor.MonthClose || c.Month != "2026-10" || c.Seq != seq || c.Head != head || seq == 0 || keys.Verify(c) != nil {
			t.Errorf("line %d: %+v; want the %s head %d %s of the close of 2026-10, validly signed", lines[i].N, c, chain, seq, head)
		}
	}
	got, err := e.svc.Get(e.ctx, d.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Checkpoints) != 2 || got.Checkpoints[0] != lines[0].Checkpoint || got.Checkpoints[1] != lines[1].Checkpoint {
		t.Errorf("the declaration's checkpoints: %+v; want the close's two", got.Checkpoints)
	}
	if r, err := anchor.Check(e.ctx, e.pool, lines, keys); err != nil || !r.OK() {
		t.Errorf("Check: %+v, %v", r.Findings, err)
	}

	// A checkpoint file that cannot be written (here: a directory).
	a.File = dir
	_, err = e.svc.CloseMonth(e.ctx, k, month(2026, 10))
	wantFault(t, err, fault.Unavailable, "CHECKPOINT_FAILED")
	if n := e.count(`SELECT count(*) FROM closed_months WHERE month = '2026-10-01'`); n != 1 {
		t.Errorf("October closed %d times, want once", n)
	}
}
