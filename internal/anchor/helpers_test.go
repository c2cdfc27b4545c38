package anchor_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"taxrefund/internal/anchor"
	"taxrefund/internal/db"
	"taxrefund/internal/dbtest"
	"taxrefund/internal/seal"
)

// env is a fresh database whose journal and audit rows are written by the owner, sealed
// by the service's role, and anchored with a key and checkpoint file of the test's own.
type env struct {
	t        *testing.T
	ctx      context.Context
	url      string
	owner    *pgxpool.Pool
	app      *pgxpool.Pool
	keyFile  string
	pubFile  string
	cpFile   string
	anchor   *anchor.Anchor
	rows     int
	sealer   *seal.Sealer
	superCon *pgx.Conn
}

func newEnv(t *testing.T) *env {
	t.Helper()
	url := dbtest.NewURL(t)
	dir := t.TempDir()
	e := &env{t: t, url: url, owner: dbtest.OpenPool(t, url, ""), app: dbtest.OpenPool(t, url, db.AppRole),
		keyFile: filepath.Join(dir, "journal.key"), pubFile: filepath.Join(dir, "journal.pub"), cpFile: filepath.Join(dir, "checkpoints.log")}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	e.ctx = db.WithParty(ctx, "system", "anchor-test")
	if _, err := e.owner.Exec(e.ctx, `INSERT INTO accounts (code) VALUES ('test:debit'), ('test:credit'), ('test:other')`); err != nil {
		t.Fatal(err)
	}
	if _, _, err := anchor.EnsureKey(e.keyFile, e.pubFile); err != nil {
		t.Fatal(err)
	}
	signer, err := anchor.LoadSigner(e.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	e.sealer = &seal.Sealer{Pool: e.app, Log: slog.New(slog.DiscardHandler)}
	e.anchor = &anchor.Anchor{Pool: e.app, Signer: signer, File: e.cpFile, Sealer: e.sealer}
	return e
}

// add writes one journal transaction of two entries and one audit event, as the
// service would, and returns the transaction's id.
func (e *env) add() string {
	e.t.Helper()
	e.rows++
	id := fmt.Sprintf("00000000-0000-4000-8000-%012d", e.rows)
	for _, sql := range []string{
		`INSERT INTO journal_txns (id, idem_key, kind, ref, effective_date) VALUES ($1::uuid, 'key-' || $1::text, 'TEST', 'ref-' || $1::text, DATE '2025-06-10')`,
		`INSERT INTO journal_entries (txn_id, account_id, pending, side, amount)
		 SELECT $1::uuid, a.id, false, CASE a.code WHEN 'test:debit' THEN 'D' ELSE 'C' END, 12.34 FROM accounts a WHERE a.code IN ('test:debit', 'test:credit') ORDER BY a.id`,
		`INSERT INTO audit_events (actor, action, object, request_id, detail) VALUES ('taxrefund://store/S-1', 'TEST', $1::text, gen_random_uuid(), '{"n": 1}')`,
	} {
		if _, err := e.owner.Exec(e.ctx, sql, id); err != nil {
			e.t.Fatalf("%s: %v", sql, err)
		}
	}
	return id
}

// checkpoint seals what is queued and signs the heads.
func (e *env) checkpoint() []anchor.Checkpoint {
	e.t.Helper()
	cps, err := e.anchor.Checkpoint(e.ctx, anchor.Manual, "")
	if err != nil {
		e.t.Fatalf("checkpoint: %v", err)
	}
	return cps
}

// check reads the checkpoint and public key files and checks the chains as q sees them.
func (e *env) check(q db.DBTX) anchor.Report {
	e.t.Helper()
	lines, err := anchor.ReadFile(e.cpFile)
	if err != nil {
		e.t.Fatal(err)
	}
	keys, err := anchor.LoadPublicKeys(e.pubFile)
	if err != nil {
		e.t.Fatal(err)
	}
	r, err := anchor.Check(e.ctx, q, lines, keys)
	if err != nil {
		e.t.Fatalf("Check: %v", err)
	}
	return r
}

// superuser connects as TEST_DATABASE_URL's user, a superuser who can switch every
// trigger off: the tables' owner of the attack.
func (e *env) superuser() *pgx.Conn {
	e.t.Helper()
	owner, err := pgx.ParseConfig(e.url)
	if err != nil {
		e.t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(dbtest.URL(e.t))
	if err != nil {
		e.t.Fatal(err)
	}
	cfg.Database = owner.Database
	conn, err := pgx.ConnectConfig(e.ctx, cfg)
	if err != nil {
		e.t.Fatalf("connect as the superuser: %v", err)
	}
	e.t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// tamper runs sql (with $1 the row's id) in a transaction of the superuser with triggers
// off, then re-seals the whole chain: every seal's hashes recomputed from the rows as they
// are now, so that the chain is consistent again. It returns the open transaction.
func (e *env) tamper(t *testing.T, chain, sql, rowID string) pgx.Tx {
	t.Helper()
	if e.superCon == nil {
		e.superCon = e.superuser()
	}
	tx, err := e.superCon.Begin(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	if _, err := tx.Exec(e.ctx, `SET LOCAL session_replication_role = replica`); err != nil {
		t.Fatal(err)
	}
	tag, err := tx.Exec(e.ctx, sql, rowID)
	if err != nil || tag.RowsAffected() == 0 {
		t.Fatalf("tamper %q: %v (%d rows)", sql, err, tag.RowsAffected())
	}
	reseal(t, e.ctx, tx, chain)
	return tx
}

// reseal rewrites every seal of chain to what the rows hash to now.
func reseal(t *testing.T, ctx context.Context, tx pgx.Tx, chain string) {
	t.Helper()
	type link struct {
		seq        int64
		prev, hash []byte
	}
	var links []link
	prev := make([]byte, sha256.Size)
	if err := seal.Walk(ctx, tx, chain, func(x seal.Sealed) error {
		h := x.Next(prev)
		if h == nil {
			return fmt.Errorf("seal %d: %s", x.Seq, x.Problem)
		}
		links = append(links, link{x.Seq, prev, h})
		prev = h
		return nil
	}); err != nil {
		t.Fatalf("reseal: %v", err)
	}
	for _, l := range links {
		if _, err := tx.Exec(ctx, `UPDATE seals SET prev_hash = $3, hash = $4 WHERE chain = $1 AND seq = $2`, chain, l.seq, l.prev, l.hash); err != nil {
			t.Fatalf("reseal: %v", err)
		}
	}
}
