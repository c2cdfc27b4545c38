package seal_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"taxrefund/internal/db"
	"taxrefund/internal/dbtest"
	"taxrefund/internal/forms"
	"taxrefund/internal/ledger"
	"taxrefund/internal/params"
	"taxrefund/internal/refund"
	"taxrefund/internal/seal"
)

// now is 2025-06-10 10:00 in Shanghai.
var now = time.Date(2025, 6, 10, 2, 0, 0, 0, time.UTC)

// env is a fresh database with the test registry; the forms service runs as the
// application role, as the service does, and so does the sealer.
type env struct {
	t     *testing.T
	ctx   context.Context
	url   string
	owner *pgxpool.Pool
	app   *pgxpool.Pool
	forms *forms.Service
	seq   atomic.Int64
}

func newEnv(t *testing.T) *env {
	t.Helper()
	url := dbtest.NewURL(t)
	owner := dbtest.OpenPool(t, url, "")
	dbtest.Registry(t, owner)
	app := dbtest.OpenPool(t, url, db.AppRole)
	f := forms.New(forms.Deps{Pool: app, Ledger: ledger.NewStore(), Keys: dbtest.Keyring(t), Params: params.NewCache(app, 0),
		Now: func() time.Time { return now }, Log: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	// The forms are issued and voided as their store would (row-level security).
	ctx = db.WithParty(ctx, "store", "S-JFB-1")
	return &env{t: t, ctx: ctx, url: url, owner: owner, app: app, forms: f}
}

// issue issues a form of 1000.00 at 13% and 500.00 at 9% to a fresh French passport:
// one journal transaction (the pending refund) and one audit event.
func (e *env) issue() forms.Form {
	e.t.Helper()
	n := e.seq.Add(1)
	inv := fmt.Sprintf("INV-SEAL-%04d", n)
	app := refund.Application{
		Traveller: refund.Traveller{
			Document: refund.Document{Type: refund.Passport, Number: fmt.Sprintf("S%08d", n), IssuingCountry: "FR"},
			Expiry:   time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), Nationality: "FR", LastEntry: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC),
		},
		Invoices: []refund.Invoice{{Number: inv, Date: time.Date(2025, 6, 10, 0, 0, 0, 0, time.UTC)}},
		Lines: []refund.Line{
			{Description: "scarf", Category: refund.General, VATRate: decimal.RequireFromString("0.13"), Quantity: 1, Amount: decimal.RequireFromString("1000.00"), InvoiceNumber: inv},
			{Description: "tea", Category: refund.General, VATRate: decimal.RequireFromString("0.09"), Quantity: 1, Amount: decimal.RequireFromString("500.00"), InvoiceNumber: inv},
		},
	}
	f, err := e.forms.Issue(e.ctx, forms.IssueRequest{
		Idem:      forms.Idempotency{Caller: "taxrefund://store/S-JFB-1", RequestID: uuid.New(), Hash: []byte(inv)},
		StoreCode: "S-JFB-1", Application: app,
	})
	if err != nil {
		e.t.Fatalf("issue: %v", err)
	}
	return f
}

// void voids form f: a second journal transaction (the pending refund voided) and event.
func (e *env) void(f forms.Form) {
	e.t.Helper()
	if _, err := e.forms.Void(e.ctx, forms.VoidRequest{
		Idem:      forms.Idempotency{Caller: "taxrefund://store/S-JFB-1", RequestID: uuid.New(), Hash: []byte("void " + f.Number)},
		StoreCode: "S-JFB-1", Number: f.Number, Reason: "goods returned",
	}); err != nil {
		e.t.Fatalf("void: %v", err)
	}
}

// sealer is the service's sealer, as the application role.
func (e *env) sealer(batch int) *seal.Sealer {
	return &seal.Sealer{Pool: e.app, Log: slog.New(slog.DiscardHandler), Batch: batch}
}

// sealAll seals until nothing is queued and returns the rows sealed.
func (e *env) sealAll() int {
	e.t.Helper()
	total := 0
	for {
		n, err := e.sealer(0).SealOnce(e.ctx)
		if err != nil {
			e.t.Fatalf("SealOnce: %v", err)
		}
		if n == 0 {
			return total
		}
		total += n
	}
}

// count returns the result of a count query as the owner.
func (e *env) count(sql string, args ...any) int64 {
	e.t.Helper()
	var n int64
	if err := e.owner.QueryRow(e.ctx, sql, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// superuser connects to the test database as TEST_DATABASE_URL's user, a superuser, who
// can switch every trigger off for a session: the attacker of the tamper tests.
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
	var super bool
	if err := conn.QueryRow(e.ctx, `SELECT rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&super); err != nil || !super {
		e.t.Fatalf("TEST_DATABASE_URL's user is not a superuser (%v): the tamper tests need one", err)
	}
	return conn
}

// sealRow is a stored seal.
type sealRow struct {
	seq        int64
	rowID      string
	prev, hash []byte
	format     int
	sealedAt   string // UTC, microseconds
}

// seals reads a chain's seals in order.
func (e *env) seals(chain string) []sealRow {
	e.t.Helper()
	rows, err := e.owner.Query(e.ctx, `SELECT seq, row_id, prev_hash, hash, format,
		to_char(sealed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') FROM seals WHERE chain = $1 ORDER BY seq`, chain)
	if err != nil {
		e.t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (sealRow, error) {
		var s sealRow
		err := r.Scan(&s.seq, &s.rowID, &s.prev, &s.hash, &s.format, &s.sealedAt)
		return s, err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// The tests' own statement of what a seal covers (package seal's doc): hash =
// SHA-256(previous hash ‖ content), the content being length-prefixed fields. Format 1,
// a journal transaction: "txn", id, idempotency key, kind, ref, effective date, then per
// entry in id order "entry", id, account code, "posted"/"pending", side, amount with two
// decimals. An audit event: "audit", id, time (UTC, microseconds), actor, action, object,
// request id, detail. Format 2 (sealed): "seal/2", the seal's sealed_at (UTC,
// microseconds), then the row: a journal transaction as format 1 with its created_at (UTC,
// microseconds) after the effective date; an audit event as format 1. withEntries false
// leaves the entries out: the blind hash of the broken control.
func sealed(ctx context.Context, q db.DBTX, chain string, s sealRow) ([]byte, error) {
	c, err := content(ctx, q, chain, s.rowID, s.format, true)
	if err != nil || s.format == 1 {
		return c, err
	}
	field := func(b []byte, s string) []byte {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		return append(b, s...)
	}
	return append(field(field(nil, "seal/2"), s.sealedAt), c...), nil
}

func content(ctx context.Context, q db.DBTX, chain, id string, format int, withEntries bool) ([]byte, error) {
	field := func(b []byte, s string) []byte {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		return append(b, s...)
	}
	var b []byte
	switch chain {
	case seal.Journal:
		var key, kind, ref, date, created string
		if err := q.QueryRow(ctx, `SELECT idem_key, kind, ref, effective_date::text,
			to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') FROM journal_txns WHERE id = $1::uuid`, id).
			Scan(&key, &kind, &ref, &date, &created); err != nil {
			return nil, err
		}
		for _, f := range []string{"txn", id, key, kind, ref, date} {
			b = field(b, f)
		}
		if format == 2 {
			b = field(b, created)
		}
		if !withEntries {
			return b, nil
		}
		rows, err := q.Query(ctx, `SELECT e.id::text, a.code, CASE WHEN e.pending THEN 'pending' ELSE 'posted' END, e.side::text,
			to_char(e.amount, 'FM999999999999990.00') FROM journal_entries e JOIN accounts a ON a.id = e.account_id
			WHERE e.txn_id = $1::uuid ORDER BY e.id`, id)
		if err != nil {
			return nil, err
		}
		entries, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([5]string, error) {
			var x [5]string
			err := r.Scan(&x[0], &x[1], &x[2], &x[3], &x[4])
			return x, err
		})
		if err != nil {
			return nil, err
		}
		for _, x := range entries {
			b = field(b, "entry")
			for _, f := range x {
				b = field(b, f)
			}
		}
		return b, nil
	case seal.Audit:
		var f [6]string
		if err := q.QueryRow(ctx, `SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), actor, action, object,
			coalesce(request_id::text, ''), detail::text FROM audit_events WHERE id = $1::bigint`, id).Scan(&f[0], &f[1], &f[2], &f[3], &f[4], &f[5]); err != nil {
			return nil, err
		}
		b = field(field(b, "audit"), id)
		for _, x := range f {
			b = field(b, x)
		}
		return b, nil
	}
	return nil, fmt.Errorf("chain %q", chain)
}

// link is SHA-256(prev ‖ content).
func link(prev, content []byte) []byte {
	h := sha256.New()
	h.Write(prev)
	h.Write(content)
	return h.Sum(nil)
}

// tamperTx begins a transaction on su with the triggers off (session_replication_role =
// replica), as a superuser would to change rows behind the application's back; it is
// rolled back when the test ends unless committed.
func (e *env) tamperTx(t testing.TB, su *pgx.Conn) pgx.Tx {
	t.Helper()
	tx, err := su.Begin(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	if _, err := tx.Exec(e.ctx, `SET LOCAL session_replication_role = replica`); err != nil {
		t.Fatal(err)
	}
	return tx
}
