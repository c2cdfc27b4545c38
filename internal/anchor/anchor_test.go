package anchor_test

import (
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"taxrefund/internal/anchor"
	"taxrefund/internal/seal"
)

// findings returns the report's findings about chain.
func findings(r anchor.Report, chain string) []anchor.Finding {
	var out []anchor.Finding
	for _, f := range r.Findings {
		if f.Chain == chain {
			out = append(out, f)
		}
	}
	return out
}

// sealedRows returns the rows of chain's seals, in seq order.
func (e *env) sealedRows(chain string) []string {
	e.t.Helper()
	rows, err := e.owner.Query(e.ctx, `SELECT row_id FROM seals WHERE chain = $1 ORDER BY seq`, chain)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, id)
	}
	return out
}

// TestResealedChainIsNamed: six journal transactions and audit events, a checkpoint after
// each. The control: the untouched chains verify and match all six checkpoints. Then, per
// sealed column, the tables' owner (a superuser with triggers off) changes that column
// of one row and re-seals the whole chain: the chain alone verifies (the attack works
// against it), but the check against the checkpoints fails with a re-sealed finding that
// names exactly that row's seal, and the other chain is untouched.
func TestResealedChainIsNamed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for range 6 {
		e.add()
		if cps := e.checkpoint(); len(cps) != 2 {
			t.Fatalf("checkpoint: %d lines, want one per chain", len(cps))
		}
	}
	r := e.check(e.owner)
	if !r.OK() || len(r.Chains) != 2 {
		t.Fatalf("untouched chains: %+v", r)
	}
	for _, c := range r.Chains {
		if c.Checkpoints != 6 || c.Matched != 6 || c.Verify.Verified != 6 || c.Last == nil || c.Last.Seq != 6 {
			t.Fatalf("untouched %s chain: %d of %d checkpoints matched, %d seals verified, last %+v; want 6 of 6",
				c.Chain, c.Matched, c.Checkpoints, c.Verify.Verified, c.Last)
		}
	}
	journal, audit := e.sealedRows(seal.Journal), e.sealedRows(seal.Audit)
	entry := `(SELECT min(id) FROM journal_entries WHERE txn_id = $1::uuid)`
	cases := []struct {
		name, chain string
		index       int
		sql         string
	}{
		{"journal_txns.idem_key", seal.Journal, 2, `UPDATE journal_txns SET idem_key = idem_key || '-x' WHERE id = $1::uuid`},
		{"journal_txns.kind", seal.Journal, 0, `UPDATE journal_txns SET kind = 'PAYOUT' WHERE id = $1::uuid`},
		{"journal_txns.ref", seal.Journal, 3, `UPDATE journal_txns SET ref = 'TR-FORGED' WHERE id = $1::uuid`},
		{"journal_txns.effective_date", seal.Journal, 4, `UPDATE journal_txns SET effective_date = effective_date + 40 WHERE id = $1::uuid`},
		{"journal_txns.created_at", seal.Journal, 1, `UPDATE journal_txns SET created_at = created_at - interval '1 microsecond' WHERE id = $1::uuid`},
		{"journal_entries.txn_id", seal.Journal, 2, `UPDATE journal_entries SET txn_id = (SELECT id FROM journal_txns WHERE id > $1::uuid ORDER BY id LIMIT 1) WHERE id = ` + entry},
		{"journal_entries.account_id", seal.Journal, 5, `UPDATE journal_entries SET account_id = (SELECT id FROM accounts WHERE code = 'test:other') WHERE id = ` + entry},
		{"journal_entries.pending", seal.Journal, 1, `UPDATE journal_entries SET pending = NOT pending WHERE id = ` + entry},
		{"journal_entries.side", seal.Journal, 3, `UPDATE journal_entries SET side = CASE side WHEN 'D' THEN 'C' ELSE 'D' END WHERE id = ` + entry},
		{"journal_entries.amount", seal.Journal, 4, `UPDATE journal_entries SET amount = amount * 100 WHERE txn_id = $1::uuid`},
		{"audit_events.at", seal.Audit, 2, `UPDATE audit_events SET at = at + interval '1 microsecond' WHERE id = $1::bigint`},
		{"audit_events.actor", seal.Audit, 0, `UPDATE audit_events SET actor = 'taxrefund://store/S-2' WHERE id = $1::bigint`},
		{"audit_events.action", seal.Audit, 5, `UPDATE audit_events SET action = 'FORM_VOIDED' WHERE id = $1::bigint`},
		{"audit_events.object", seal.Audit, 3, `UPDATE audit_events SET object = 'TR-FORGED' WHERE id = $1::bigint`},
		{"audit_events.request_id", seal.Audit, 1, `UPDATE audit_events SET request_id = NULL WHERE id = $1::bigint`},
		{"audit_events.detail", seal.Audit, 4, `UPDATE audit_events SET detail = '{"n": 2}' WHERE id = $1::bigint`},
		{"seals.sealed_at", seal.Journal, 2, `UPDATE seals SET sealed_at = sealed_at - interval '1 hour' WHERE chain = 'journal' AND row_id = $1`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rows, other := journal, seal.Audit
			if c.chain == seal.Audit {
				rows, other = audit, seal.Journal
			}
			target := rows[c.index]
			tx := e.tamper(t, c.chain, c.sql, target)
			defer func() { _ = tx.Rollback(e.ctx) }()
			if v, err := seal.Verify(e.ctx, tx, c.chain); err != nil || v.Broken != nil || v.Verified != 6 {
				t.Fatalf("the re-sealed chain alone: %+v, %v; want it to verify (a consistent re-seal)", v, err)
			}
			r := e.check(tx)
			if r.OK() {
				t.Fatalf("Check passed a re-sealed %s chain", c.chain)
			}
			f := findings(r, c.chain)
			seq := int64(c.index + 1)
			if len(f) != 1 || f[0].Kind != anchor.Resealed || f[0].From != seq || f[0].To != seq || f[0].RowID != target ||
				!strings.Contains(f[0].Message, "re-sealed since the checkpoint") || !strings.Contains(f[0].Message, target) {
				t.Errorf("findings %+v; want one %q at seal %d (row %s)", f, anchor.Resealed, seq, target)
			}
			if f := findings(r, other); len(f) != 0 {
				t.Errorf("the %s chain: %+v; want no finding", other, f)
			}
		})
	}
}

// TestSparseCheckpointsBoundTheRange: with checkpoints after rows 2 and 5 only, a row 4
// changed and re-sealed is reported in the range after the last matching checkpoint:
// seals 3..5, from row 3.
func TestSparseCheckpointsBoundTheRange(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for i := 1; i <= 6; i++ {
		e.add()
		if i == 2 || i == 5 {
			e.checkpoint()
		}
	}
	if _, err := e.sealer.SealAll(e.ctx); err != nil {
		t.Fatal(err)
	}
	journal := e.sealedRows(seal.Journal)
	tx := e.tamper(t, seal.Journal, `UPDATE journal_txns SET ref = 'TR-FORGED' WHERE id = $1::uuid`, journal[3])
	r := e.check(tx)
	f := findings(r, seal.Journal)
	if len(f) != 1 || f[0].Kind != anchor.Resealed || f[0].From != 3 || f[0].To != 5 || f[0].RowID != journal[2] ||
		!strings.Contains(f[0].Message, "among seals 3..5") {
		t.Errorf("findings %+v; want re-sealed among seals 3..5 from row %s", f, journal[2])
	}
	for _, c := range r.Chains {
		if c.Chain == seal.Journal && (c.Matched != 1 || c.Last == nil || c.Last.Seq != 2) {
			t.Errorf("journal: %d matched, last %+v; want the checkpoint of seal 2", c.Matched, c.Last)
		}
	}
}

// TestChangedRowWithoutResealIsNamed: a row changed without re-sealing breaks the chain
// itself at that row, and the checkpoint's finding names the same row.
func TestChangedRowWithoutResealIsNamed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for range 4 {
		e.add()
	}
	e.checkpoint()
	journal := e.sealedRows(seal.Journal)
	su := e.superuser()
	tx, err := su.Begin(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(e.ctx) }()
	if _, err := tx.Exec(e.ctx, `SET LOCAL session_replication_role = replica`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(e.ctx, `UPDATE journal_txns SET created_at = created_at + interval '1 day' WHERE id = $1::uuid`, journal[1]); err != nil {
		t.Fatal(err)
	}
	r := e.check(tx)
	f := findings(r, seal.Journal)
	if len(f) != 1 || f[0].Kind != anchor.Changed || f[0].From != 2 || f[0].RowID != journal[1] {
		t.Errorf("findings %+v; want %q at seal 2 (row %s)", f, anchor.Changed, journal[1])
	}
	for _, c := range r.Chains {
		if c.Chain == seal.Journal && (c.Verify.Broken == nil || c.Verify.Broken.Seq != 2) {
			t.Errorf("journal verification: %+v; want broken at seal 2", c.Verify.Broken)
		}
	}
}

// TestTruncatedChainIsReported: the newest seal and its row removed leave a shorter
// chain that verifies by itself; the checkpoint that signed it says it is gone.
func TestTruncatedChainIsReported(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for range 3 {
		e.add()
	}
	e.checkpoint()
	journal := e.sealedRows(seal.Journal)
	su := e.superuser()
	tx, err := su.Begin(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(e.ctx) }()
	for _, sql := range []string{
		`SET LOCAL session_replication_role = replica`,
		`DELETE FROM seals WHERE chain = 'journal' AND seq = 3`,
		`DELETE FROM journal_entries WHERE txn_id = '` + journal[2] + `'::uuid`,
		`DELETE FROM journal_txns WHERE id = '` + journal[2] + `'::uuid`,
	} {
		if _, err := tx.Exec(e.ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	if v, err := seal.Verify(e.ctx, tx, seal.Journal); err != nil || v.Broken != nil || v.Verified != 2 {
		t.Fatalf("the truncated chain alone: %+v, %v; want 2 verified", v, err)
	}
	f := findings(e.check(tx), seal.Journal)
	if len(f) != 1 || f[0].Kind != anchor.Truncated || f[0].From != 3 || f[0].To != 3 || f[0].RowID != journal[2] || !strings.Contains(f[0].Message, "seals 3..3 are gone") {
		t.Errorf("findings %+v; want %q from seal 3", f, anchor.Truncated)
	}
}

// TestMissingSealIsReported: a seal in the middle removed with its row, a checkpoint
// after each row: the checkpoint of that seal names it missing, at that seal and row.
func TestMissingSealIsReported(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for range 3 {
		e.add()
		e.checkpoint()
	}
	journal := e.sealedRows(seal.Journal)
	su := e.superuser()
	tx, err := su.Begin(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(e.ctx) }()
	for _, sql := range []string{
		`SET LOCAL session_replication_role = replica`,
		`DELETE FROM seals WHERE chain = 'journal' AND seq = 2`,
		`DELETE FROM journal_entries WHERE txn_id = '` + journal[1] + `'::uuid`,
		`DELETE FROM journal_txns WHERE id = '` + journal[1] + `'::uuid`,
	} {
		if _, err := tx.Exec(e.ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	f := findings(e.check(tx), seal.Journal)
	if len(f) != 1 || f[0].Kind != anchor.Truncated || f[0].From != 2 || f[0].To != 2 || f[0].RowID != journal[1] ||
		!strings.Contains(f[0].Message, "seal 2 signed in") || !strings.Contains(f[0].Message, "missing from the chain") {
		t.Errorf("findings %+v; want seal 2 (row %s) missing", f, journal[1])
	}
}

// TestForgedCheckpointLines: lines appended to the checkpoint file by someone without
// the key are reported with their line numbers and take no part in the comparison: one
// signed by an unknown key claiming another head, a valid line with its seq changed, and
// a line that is not a checkpoint. The genuine checkpoints still match.
func TestForgedCheckpointLines(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for range 3 {
		e.add()
	}
	cps := e.checkpoint() // lines 1 and 2
	dir := t.TempDir()
	if _, _, err := anchor.EnsureKey(filepath.Join(dir, "k"), filepath.Join(dir, "p")); err != nil {
		t.Fatal(err)
	}
	other, err := anchor.LoadSigner(filepath.Join(dir, "k"))
	if err != nil {
		t.Fatal(err)
	}
	forgedHead := cps[0]
	forgedHead.Head = strings.Repeat("ab", 32)
	forgedHead = other.Sign(forgedHead)
	shifted := cps[0]
	shifted.Seq = 2
	if err := anchor.Append(e.cpFile, forgedHead, shifted); err != nil { // lines 3 and 4
		t.Fatal(err)
	}
	f, err := os.OpenFile(e.cpFile, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("{\"chain\": \"journal\", \"seq\": 3, \"head\": \"00\"\n"); err != nil { // line 5
		t.Fatal(err)
	}
	f.Close()
	r := e.check(e.owner)
	if r.OK() {
		t.Fatal("Check passed a checkpoint file with forged lines")
	}
	want := map[int]string{3: "not in the public key file", 4: "does not verify", 5: "not a checkpoint"}
	if len(r.Findings) != len(want) {
		t.Errorf("findings %+v; want %d", r.Findings, len(want))
	}
	for _, f := range r.Findings {
		if f.Kind != anchor.Forged || !strings.Contains(f.Message, want[f.Line]) || want[f.Line] == "" {
			t.Errorf("finding %+v; want %q on line %d", f, want[f.Line], f.Line)
		}
	}
	for _, c := range r.Chains {
		if c.Checkpoints != 1 || c.Matched != 1 {
			t.Errorf("%s: %d of %d checkpoints matched; want the genuine one", c.Chain, c.Matched, c.Checkpoints)
		}
	}
}

// TestKeyRotation: `keys` creates the key once (mode 0600, a second call keeps it); a
// key readable by others is refused; after a rotation the key file holds a new key, the
// public key file both, and checkpoints signed before and after the rotation all verify.
// Without the old public key, the old checkpoints could not be told from forgeries.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id1, created, err := anchor.EnsureKey(e.keyFile, e.pubFile)
	if err != nil || created || id1 != e.anchor.Signer.ID {
		t.Fatalf("EnsureKey on an existing key: %s, %v, %v; want %s kept", id1, created, err, e.anchor.Signer.ID)
	}
	if st, err := os.Stat(e.keyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", st.Mode().Perm(), err)
	}
	if err := os.Chmod(e.keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := anchor.LoadSigner(e.keyFile); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("LoadSigner of a key readable by others: %v; want a refusal", err)
	}
	if err := os.Chmod(e.keyFile, 0o600); err != nil {
		t.Fatal(err)
	}
	e.add()
	e.checkpoint() // lines 1, 2: key 1
	old, id2, err := anchor.RotateKey(e.keyFile, e.pubFile)
	if err != nil || old != id1 || id2 == id1 {
		t.Fatalf("RotateKey: %s → %s, %v", old, id2, err)
	}
	signer, err := anchor.LoadSigner(e.keyFile)
	if err != nil || signer.ID != id2 {
		t.Fatalf("the key file after rotation: %v, %v; want key %s", signer, err, id2)
	}
	if st, err := os.Stat(e.keyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("rotated key file mode %v, %v; want 0600", st.Mode().Perm(), err)
	}
	keys, err := anchor.LoadPublicKeys(e.pubFile)
	if err != nil || len(keys) != 2 || keys[id1] == nil || keys[id2] == nil {
		t.Fatalf("public keys after rotation: %v, %v; want %s and %s", keys, err, id1, id2)
	}
	e.anchor.Signer = signer
	e.add()
	e.checkpoint() // lines 3, 4: key 2
	lines, err := anchor.ReadFile(e.cpFile)
	if err != nil || len(lines) != 4 {
		t.Fatalf("checkpoint file: %d lines, %v", len(lines), err)
	}
	for i, l := range lines {
		if want := []string{id1, id1, id2, id2}[i]; l.Checkpoint.KeyID != want {
			t.Errorf("line %d signed by %s, want %s", l.N, l.Checkpoint.KeyID, want)
		}
	}
	r := e.check(e.owner)
	if !r.OK() {
		t.Fatalf("checkpoints across a rotation: %+v", r.Findings)
	}
	for _, c := range r.Chains {
		if c.Matched != 2 {
			t.Errorf("%s: %d checkpoints matched, want 2", c.Chain, c.Matched)
		}
	}
	// The control: without the old public key the old lines do not verify.
	onlyNew := anchor.PublicKeys{id2: keys[id2]}
	r2, err := anchor.Check(e.ctx, e.owner, lines, onlyNew)
	if err != nil {
		t.Fatal(err)
	}
	if len(r2.Findings) != 2 || r2.Findings[0].Kind != anchor.Forged {
		t.Errorf("without the old public key: %+v; want the two old lines reported", r2.Findings)
	}
	var pub ed25519.PublicKey = signer.Public()
	if anchor.KeyID(pub) != id2 {
		t.Errorf("KeyID of the new key %s, want %s", anchor.KeyID(pub), id2)
	}
}

// TestLatestOfAMonth: Latest picks, per chain, the last validly signed checkpoint of the
// month asked for (a month close names its month; a daily one its own), and skips a
// forged later one.
func TestLatestOfAMonth(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.add()
	at := func(s string) func() time.Time {
		return func() time.Time { tm, _ := time.Parse(time.RFC3339, s); return tm }
	}
	e.anchor.Now = at("2025-05-31T10:00:00Z")
	e.checkpoint()
	e.add()
	e.anchor.Now = at("2025-06-01T03:00:00Z")
	if err := e.anchor.CloseMonth(e.ctx, time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	e.add()
	e.anchor.Now = at("2025-06-02T03:00:00Z")
	e.checkpoint()
	lines, err := anchor.ReadFile(e.cpFile)
	if err != nil {
		t.Fatal(err)
	}
	forged := lines[len(lines)-1].Checkpoint
	forged.Month, forged.Time = "2025-05", forged.Time.Add(time.Hour)
	b, _ := json.Marshal(forged)
	lines = append(lines, anchor.Line{N: 99, Checkpoint: forged})
	_ = b
	keys, err := anchor.LoadPublicKeys(e.pubFile)
	if err != nil {
		t.Fatal(err)
	}
	may := anchor.Latest(lines, keys, "2025-05")
	for _, chain := range seal.Chains {
		c, ok := may[chain]
		if !ok || c.Reason != anchor.MonthClose || c.Seq != 2 {
			t.Errorf("latest %s checkpoint of 2025-05: %+v; want the close's, at seal 2", chain, c)
		}
	}
	june := anchor.Latest(lines, keys, "2025-06")
	if c := june[seal.Journal]; c.Seq != 3 || c.Reason != anchor.Manual {
		t.Errorf("latest journal checkpoint of 2025-06: %+v; want seal 3", c)
	}
	if got := anchor.Latest(lines, keys, "2025-04"); len(got) != 0 {
		t.Errorf("2025-04: %+v; want none", got)
	}
}

// TestCheckpointRefusesAResealedChain: after the owner re-sealed the journal chain
// (committed), the next checkpoint refuses to sign its head, naming the seal that no
// longer links to the signed one, and writes nothing: the latest checkpoint never vouches
// for a rewritten history. The control: before the attack, a further checkpoint over new
// rows is signed.
func TestCheckpointRefusesAResealedChain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for range 3 {
		e.add()
	}
	e.checkpoint()
	e.add()
	if cps := e.checkpoint(); len(cps) != 2 || cps[0].Seq != 4 {
		t.Fatalf("control: %+v; want the journal's seal 4 signed", cps)
	}
	journal := e.sealedRows(seal.Journal)
	tx := e.tamper(t, seal.Journal, `UPDATE journal_txns SET ref = 'TR-FORGED' WHERE id = $1::uuid`, journal[1])
	if err := tx.Commit(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.add()
	before, err := anchor.ReadFile(e.cpFile)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.anchor.Checkpoint(e.ctx, anchor.Daily, "")
	if err == nil || !strings.Contains(err.Error(), "journal chain: not signing") || !strings.Contains(err.Error(), "re-sealed") && !strings.Contains(err.Error(), "no longer links") {
		t.Errorf("checkpoint of a re-sealed chain: %v; want a refusal", err)
	}
	after, err := anchor.ReadFile(e.cpFile)
	if err != nil || len(after) != len(before) {
		t.Errorf("the checkpoint file went from %d to %d lines (%v); want nothing written", len(before), len(after), err)
	}
}

// TestCheckpointWaitsForTheQueue: while the server's sealer holds the sealer lock, a
// checkpoint does not sign a head that leaves queued rows out: it waits until every row
// queued before it is sealed, then signs the head that covers them. (Observed before it
// waited: a checkpoint at a server's start, racing its sealer, signed nothing.)
func TestCheckpointWaitsForTheQueue(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for range 3 {
		e.add()
	}
	tx, err := e.app.Begin(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(e.ctx) }()
	if _, err := tx.Exec(e.ctx, `SELECT pg_advisory_xact_lock($1)`, int64(0x7461787365616c)); err != nil {
		t.Fatal(err)
	}
	type result struct {
		cps []anchor.Checkpoint
		err error
	}
	done := make(chan result, 1)
	go func() {
		cps, err := e.anchor.Checkpoint(e.ctx, anchor.Daily, "")
		done <- result{cps, err}
	}()
	select {
	case r := <-done:
		t.Fatalf("the checkpoint returned while the rows were queued and the lock held: %+v, %v", r.cps, r.err)
	case <-time.After(500 * time.Millisecond):
	}
	_ = tx.Rollback(e.ctx) // the other sealer goes away; the checkpoint's own sealer seals
	r := <-done
	if r.err != nil || len(r.cps) != 2 || r.cps[0].Seq != 3 || r.cps[1].Seq != 3 {
		t.Errorf("checkpoint: %+v, %v; want both chains signed at seal 3", r.cps, r.err)
	}
}
