package authority_test

import (
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/google/uuid"

	authorityv1 "taxrefund/api/taxrefund/authority/v1"
	settlementv1 "taxrefund/api/taxrefund/settlement/v1"
	"taxrefund/internal/anchor"
	"taxrefund/internal/auth"
	"taxrefund/internal/seal"
)

// TestMonthlyReportAndDeclarationCarryTheCheckpoint: once CloseMonth has signed October's
// chain heads, MonthlyReport of 2026-10 and GetDeclaration of an October declaration carry
// those checkpoints field by field, signatures that verify included; before the close
// neither carries any, and a month without a checkpoint (September) carries none.
func TestMonthlyReportAndDeclarationCarryTheCheckpoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dir := t.TempDir()
	keyFile, pubFile := filepath.Join(dir, "journal.key"), filepath.Join(dir, "journal.pub")
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
	cpFile := filepath.Join(dir, "checkpoints.log")
	e.settle.SetAnchor(&anchor.Anchor{Pool: e.pool, Signer: signer, Keys: keys, File: cpFile, Now: e.clock.Now,
		Sealer: &seal.Sealer{Pool: e.pool, Log: slog.New(slog.DiscardHandler)}})
	cq, _ := e.fixture()
	official := auth.NewContext(e.ctx, auth.Party{Role: auth.RoleAuthority, Office: "sat", URI: "taxrefund://authority/sat"})
	report := func(month string) *authorityv1.MonthlyReportResponse {
		t.Helper()
		r, err := e.h.MonthlyReport(official, &authorityv1.MonthlyReportRequest{Month: month})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if cps := report("2026-10").GetCheckpoints(); len(cps) != 0 {
		t.Errorf("report before the close: %v; want none", cps)
	}
	if _, err := e.h.CloseMonth(official, &authorityv1.CloseMonthRequest{RequestId: uuid.NewString(), Month: "2026-10"}); err != nil {
		t.Fatal(err)
	}
	lines, err := anchor.ReadFile(cpFile)
	if err != nil || len(lines) != 2 {
		t.Fatalf("checkpoint file: %d lines, %v", len(lines), err)
	}
	d, err := e.h.GetDeclaration(official, &authorityv1.GetDeclarationRequest{DeclarationId: cq})
	if err != nil {
		t.Fatal(err)
	}
	for what, cps := range map[string][]*settlementv1.Checkpoint{"report": report("2026-10").GetCheckpoints(), "declaration": d.GetDeclaration().GetCheckpoints()} {
		if len(cps) != 2 {
			t.Fatalf("%s: %d checkpoints, want 2", what, len(cps))
		}
		for i, c := range cps {
			back := anchor.Checkpoint{Time: c.GetSignedAt().AsTime(), Chain: c.GetChain(), Seq: c.GetSeq(), RowID: c.GetRowId(), Head: c.GetHead(),
				Reason: c.GetReason(), Month: c.GetMonth(), KeyID: c.GetKeyId(), Signature: c.GetSignature()}
			if back != lines[i].Checkpoint || keys.Verify(back) != nil || back.Reason != anchor.MonthClose || back.Month != "2026-10" {
				t.Errorf("%s checkpoint %d: %+v; want line %d %+v, validly signed", what, i, back, lines[i].N, lines[i].Checkpoint)
			}
		}
	}
	if cps := report("2026-09").GetCheckpoints(); len(cps) != 0 {
		t.Errorf("report of 2026-09: %v; want none", cps)
	}
}
