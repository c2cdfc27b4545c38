// Package seal makes the ledger journal and the audit log tamper-evident. Each journal
// transaction and each audit event gets a seal: seq, the previous seal's hash, and
// hash = SHA-256(previous hash ‖ canonical content of the seal and its row). One sealer
// (an advisory lock keeps it single across servers) appends seals in batches from a
// queue the inserts fill, so writers never wait on the chain. Verify recomputes a chain
// from the rows as they are now and names the first link that no longer matches.
//
// A seal records its format, the version of what its hash covers, so that a seal keeps
// being verified the way it was made when a later format covers more:
//
//   - Format 1: a journal transaction's id, idempotency key, kind, ref and effective date
//     and its entries (id, account code, pending or posted, side, amount); an audit
//     event's every column.
//   - Format 2 (what the sealer writes): every column that carries meaning. Format 1's
//     fields plus the transaction's created_at, after the format and the seal's own
//     sealed_at.
//
// The chain alone shows changes to rows, not a chain re-sealed by whoever owns the
// tables: package anchor signs the heads outside the database for that.
package seal

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"taxrefund/internal/db"
)

// The chains.
const (
	Journal = "journal"
	Audit   = "audit"
)

// Chains lists the chains in sealing order.
var Chains = []string{Journal, Audit}

// Seal formats (see the package documentation).
const (
	Format1 = 1
	Format2 = 2
	// Current is the format the sealer writes.
	Current = Format2
)

// genesis is the previous hash of a chain's first seal.
var genesis = make([]byte, sha256.Size)

// sealerLock is the advisory lock key that makes the sealer single.
const sealerLock = 0x7461787365616c // "taxseal"

// utcMicros renders a timestamptz in SQL as the seals hash it: UTC, microseconds.
const utcMicros = `'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'`

// Sealer appends seals.
type Sealer struct {
	Pool *pgxpool.Pool
	Log  *slog.Logger
	// Batch bounds the rows one round seals per chain (default 2000).
	Batch int
}

// SealOnce seals what is queued, up to Batch rows per chain, and returns how many rows
// it sealed. It does nothing (0, nil) while another sealer holds the lock.
func (s *Sealer) SealOnce(ctx context.Context) (int, error) {
	batch := s.Batch
	if batch <= 0 {
		batch = 2000
	}
	total := 0
	err := db.InTx(ctx, s.Pool, func(tx pgx.Tx) error {
		total = 0
		var mine bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, sealerLock).Scan(&mine); err != nil || !mine {
			return err
		}
		for _, chain := range Chains {
			n, err := sealChain(ctx, tx, chain, batch)
			if err != nil {
				return fmt.Errorf("seal %s: %w", chain, err)
			}
			total += n
		}
		return nil
	})
	return total, err
}

func sealChain(ctx context.Context, tx pgx.Tx, chain string, batch int) (int, error) {
	queued, ids, err := nextQueued(ctx, tx, chain, batch)
	if err != nil || len(queued) == 0 {
		return 0, err
	}
	if len(ids) == 0 {
		_, err := tx.Exec(ctx, `DELETE FROM seal_queue WHERE queued = ANY($1)`, queued)
		return 0, err
	}
	content, err := canonical(ctx, tx, chain, ids)
	if err != nil {
		return 0, err
	}
	// The seals are inserted with sealed_at = now(), the transaction's start: the same
	// instant, as text, goes into their hashes.
	var seq int64
	var sealedAt string
	prev := genesis
	err = tx.QueryRow(ctx, `SELECT to_char(now() AT TIME ZONE 'UTC', `+utcMicros+`), coalesce(s.seq, 0), s.hash
		FROM (SELECT 1) AS one LEFT JOIN LATERAL (SELECT seq, hash FROM seals WHERE chain = $1 ORDER BY seq DESC LIMIT 1) s ON true`, chain).
		Scan(&sealedAt, &seq, &prev)
	if err != nil {
		return 0, err
	}
	if prev == nil {
		prev = genesis
	}
	seqs := make([]int64, len(ids))
	prevs := make([][]byte, len(ids))
	hashes := make([][]byte, len(ids))
	for i, id := range ids {
		c, ok := content[id]
		if !ok {
			return 0, fmt.Errorf("queued %s row %s not found", chain, id)
		}
		seq++
		seqs[i], prevs[i] = seq, prev
		b, err := sealContent(Current, sealedAt, c)
		if err != nil {
			return 0, err
		}
		prev = link(prev, b)
		hashes[i] = prev
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO seals (chain, seq, row_id, prev_hash, hash, format, sealed_at)
		SELECT $1, s, r, p, h, $6, now() FROM unnest($2::bigint[], $3::text[], $4::bytea[], $5::bytea[]) AS u(s, r, p, h)`,
		chain, seqs, ids, prevs, hashes, Current); err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM seal_queue WHERE queued = ANY($1)`, queued); err != nil {
		return 0, err
	}
	return len(ids), nil
}

// nextQueued returns the next batch of a chain's queue entries (their queue numbers, to
// delete once sealed) and the rows they name that are still to seal, each once, in queue
// order. The queue has no unique index on (chain, row_id) (it cost every journal and
// audit insert an index entry, migrations/00018): a row queued twice, or queued again
// once sealed, is sealed once and its extra entries dropped with the rest of the batch.
func nextQueued(ctx context.Context, tx pgx.Tx, chain string, batch int) ([]int64, []string, error) {
	rows, err := tx.Query(ctx, `
		SELECT q.queued, q.row_id, EXISTS (SELECT 1 FROM seals s WHERE s.chain = q.chain AND s.row_id = q.row_id)
		  FROM (SELECT queued, chain, row_id FROM seal_queue WHERE chain = $1 ORDER BY queued LIMIT $2) q
		 ORDER BY q.queued`, chain, batch)
	if err != nil {
		return nil, nil, err
	}
	var queued []int64
	var ids []string
	seen := map[string]bool{}
	var n int64
	var id string
	var sealed bool
	_, err = pgx.ForEachRow(rows, []any{&n, &id, &sealed}, func() error {
		queued = append(queued, n)
		if !sealed && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
		return nil
	})
	return queued, ids, err
}

// link is SHA-256(prev ‖ content).
func link(prev, content []byte) []byte {
	h := sha256.New()
	h.Write(prev)
	h.Write(content)
	return h.Sum(nil)
}

// SealAll seals rounds until the queue is empty (or another sealer holds the lock) and
// returns how many rows it sealed.
func (s *Sealer) SealAll(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := s.SealOnce(ctx)
		total += n
		if err != nil || n == 0 {
			return total, err
		}
	}
}

// field writes one length-prefixed field, so that no two different rows share an encoding.
func field(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// rowContent is a row's canonical content under each format.
type rowContent struct{ v1, v2 []byte }

// sealContent is what a seal of format, sealed at sealedAt (UTC, microseconds), hashes
// after the previous hash.
func sealContent(format int, sealedAt string, c rowContent) ([]byte, error) {
	switch format {
	case Format1:
		return c.v1, nil
	case Format2:
		b := field(field(nil, "seal/2"), sealedAt)
		return append(b, c.v2...), nil
	}
	return nil, fmt.Errorf("unknown seal format %d", format)
}

// canonical returns the canonical content of the rows ids of chain, by id.
func canonical(ctx context.Context, q db.DBTX, chain string, ids []string) (map[string]rowContent, error) {
	out := make(map[string]rowContent, len(ids))
	switch chain {
	case Journal:
		rows, err := q.Query(ctx, `
			SELECT t.id::text, t.idem_key, t.kind, t.ref, to_char(t.effective_date, 'YYYY-MM-DD'),
			       to_char(t.created_at AT TIME ZONE 'UTC', `+utcMicros+`),
			       coalesce(e.id, 0), coalesce(a.code, ''), coalesce(e.pending, false), coalesce(e.side::text, ''), coalesce(to_char(e.amount, 'FM999999999999990.00'), '')
			  FROM journal_txns t
			  LEFT JOIN journal_entries e ON e.txn_id = t.id
			  LEFT JOIN accounts a ON a.id = e.account_id
			 WHERE t.id = ANY($1::uuid[])
			 ORDER BY t.id, e.id`, ids)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		for rows.Next() {
			var id, key, kind, ref, date, created, account, side, amount string
			var entry int64
			var pending bool
			if err := rows.Scan(&id, &key, &kind, &ref, &date, &created, &entry, &account, &pending, &side, &amount); err != nil {
				return nil, err
			}
			c, ok := out[id]
			if !ok {
				for _, f := range []string{"txn", id, key, kind, ref, date} {
					c.v1 = field(c.v1, f)
				}
				c.v2 = field(append([]byte(nil), c.v1...), created)
			}
			if entry != 0 {
				layer := "posted"
				if pending {
					layer = "pending"
				}
				for _, f := range []string{"entry", fmt.Sprint(entry), account, layer, side, amount} {
					c.v1 = field(c.v1, f)
					c.v2 = field(c.v2, f)
				}
			}
			out[id] = c
		}
		return out, rows.Err()
	case Audit:
		rows, err := q.Query(ctx, `
			SELECT id::text, to_char(at AT TIME ZONE 'UTC', `+utcMicros+`), actor, action, object,
			       coalesce(request_id::text, ''), detail::text
			  FROM audit_events WHERE id = ANY($1::bigint[])`, ids)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		for rows.Next() {
			var f [7]string
			if err := rows.Scan(&f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6]); err != nil {
				return nil, err
			}
			var b []byte
			b = field(b, "audit")
			for _, x := range f {
				b = field(b, x)
			}
			// Format 1 already covered every column of an audit event.
			out[f[0]] = rowContent{v1: b, v2: b}
		}
		return out, rows.Err()
	}
	return nil, fmt.Errorf("unknown chain %q", chain)
}

// Sealed is one stored seal with the content of its row as the row is now.
type Sealed struct {
	Chain  string
	Seq    int64
	RowID  string
	Format int
	// SealedAt is the seal's sealed_at, UTC with microseconds, as format 2 hashes it.
	SealedAt string
	// Prev and Hash are the hashes stored in the seal.
	Prev, Hash []byte
	// Problem says why the seal's hash cannot be recomputed (its row is gone, its format
	// unknown); empty when it can.
	Problem string
	content []byte
}

// Next returns the hash this seal would have after prev, over its row as it is now
// (nil when Problem is set).
func (s Sealed) Next(prev []byte) []byte {
	if s.Problem != "" {
		return nil
	}
	return link(prev, s.content)
}

// walkPage is how many seals Walk reads at a time.
const walkPage = 5000

type progressKey struct{}

// WithProgress returns ctx carrying count: every Walk under it (Verify, and the checks
// built on them) calls count(n) after each page of n seals, so that a long check can
// show how far it has come.
func WithProgress(ctx context.Context, count func(n int)) context.Context {
	return context.WithValue(ctx, progressKey{}, count)
}

// Walk calls fn with each seal of chain in seq order, from the first, with its row's
// content as it is now. It stops at fn's first error and returns it.
func Walk(ctx context.Context, q db.DBTX, chain string, fn func(Sealed) error) error {
	return WalkFrom(ctx, q, chain, 0, fn)
}

// WalkFrom is Walk from the seal after seq after.
func WalkFrom(ctx context.Context, q db.DBTX, chain string, after int64, fn func(Sealed) error) error {
	for {
		rows, err := q.Query(ctx, `
			SELECT seq, row_id, prev_hash, hash, format, to_char(sealed_at AT TIME ZONE 'UTC', `+utcMicros+`)
			  FROM seals WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3`, chain, after, walkPage)
		if err != nil {
			return err
		}
		list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Sealed, error) {
			x := Sealed{Chain: chain}
			err := row.Scan(&x.Seq, &x.RowID, &x.Prev, &x.Hash, &x.Format, &x.SealedAt)
			return x, err
		})
		if err != nil {
			return err
		}
		if len(list) == 0 {
			return nil
		}
		ids := make([]string, len(list))
		for i, x := range list {
			ids[i] = x.RowID
		}
		content, err := canonical(ctx, q, chain, ids)
		if err != nil {
			return err
		}
		for _, x := range list {
			if c, ok := content[x.RowID]; !ok {
				x.Problem = "the sealed row is gone"
			} else if x.content, err = sealContent(x.Format, x.SealedAt, c); err != nil {
				x.Problem = err.Error()
			}
			if err := fn(x); err != nil {
				return err
			}
			after = x.Seq
		}
		if count, ok := ctx.Value(progressKey{}).(func(int)); ok {
			count(len(list))
		}
	}
}

// Broken is the first link of a chain that no longer matches its rows.
type Broken struct {
	Chain  string
	Seq    int64
	RowID  string
	Reason string
}

// Result is a chain's verification.
type Result struct {
	Chain    string
	Verified int64
	// Head is the last seal's hash (hex) and Seq its number.
	Head   string
	Seq    int64
	Broken *Broken
}

// errBroken stops Walk at Verify's first broken link.
type errBroken struct{ b Broken }

func (e *errBroken) Error() string { return e.b.Reason }

// Verify recomputes chain from its rows as they are now, in pages, and returns the first
// broken link, if any: a row whose content changed, or a seal whose previous hash is not
// its predecessor's hash.
func Verify(ctx context.Context, q db.DBTX, chain string) (Result, error) {
	r, err := verifyFrom(ctx, q, chain, 0, genesis)
	if err != nil || r.Broken != nil {
		return r, err
	}
	return r, unsealed(ctx, q, &r)
}

// VerifyFrom verifies only the seals of chain after seal after, whose hash an earlier
// verification found to be prev: seal after must still be there with that hash, and each
// later seal must link to it and match its row as it is now. It reads what was sealed
// since, not all history, so it sees neither a change to a row sealed before (only Verify
// does) nor a row outside the chain (Verify's unsealed rows). Result.Verified counts the
// new seals; the head is seal after's when there are none.
func VerifyFrom(ctx context.Context, q db.DBTX, chain string, after int64, prev []byte) (Result, error) {
	if after == 0 {
		return verifyFrom(ctx, q, chain, 0, genesis)
	}
	r := Result{Chain: chain, Seq: after, Head: hex.EncodeToString(prev)}
	var hash []byte
	err := q.QueryRow(ctx, `SELECT hash FROM seals WHERE chain = $1 AND seq = $2`, chain, after).Scan(&hash)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		r.Broken = &Broken{Chain: chain, Seq: after, Reason: fmt.Sprintf("seal %d, verified before, is gone", after)}
		return r, nil
	case err != nil:
		return r, err
	case string(hash) != string(prev):
		r.Broken = &Broken{Chain: chain, Seq: after, Reason: fmt.Sprintf("seal %d's hash changed since it was verified", after)}
		return r, nil
	}
	return verifyFrom(ctx, q, chain, after, prev)
}

// verifyFrom walks chain's seals after seq after, the first linking to prev.
func verifyFrom(ctx context.Context, q db.DBTX, chain string, after int64, prev []byte) (Result, error) {
	r := Result{Chain: chain, Seq: after}
	if after > 0 {
		r.Head = hex.EncodeToString(prev)
	}
	err := WalkFrom(ctx, q, chain, after, func(x Sealed) error {
		broken := func(reason string) error {
			return &errBroken{Broken{Chain: chain, Seq: x.Seq, RowID: x.RowID, Reason: reason}}
		}
		if x.Seq != after+1 {
			return broken(fmt.Sprintf("seal %d is missing", after+1))
		}
		if string(x.Prev) != string(prev) {
			return broken("its previous hash is not the hash of the seal before it")
		}
		if x.Problem != "" {
			return broken(x.Problem)
		}
		prev = x.Next(prev)
		if string(prev) != string(x.Hash) {
			return broken("the row's content no longer matches its seal")
		}
		after = x.Seq
		r.Verified++
		r.Seq, r.Head = x.Seq, hex.EncodeToString(x.Hash)
		return nil
	})
	var eb *errBroken
	if errors.As(err, &eb) {
		r.Broken = &eb.b
		return r, nil
	}
	return r, err
}

// unsealedSQL finds a chain's rows that are neither sealed nor waiting in the queue: a
// row inserted with triggers off, or whose queue entry was deleted, would otherwise go
// unnoticed by a chain that only checks what it sealed.
var unsealedSQL = map[string]string{
	Journal: `SELECT count(*), coalesce(min(t.id::text), '') FROM journal_txns t
		WHERE NOT EXISTS (SELECT 1 FROM seals s WHERE s.chain = 'journal' AND s.row_id = t.id::text)
		  AND NOT EXISTS (SELECT 1 FROM seal_queue q WHERE q.chain = 'journal' AND q.row_id = t.id::text)`,
	Audit: `SELECT count(*), coalesce(min(e.id::text), '') FROM audit_events e
		WHERE NOT EXISTS (SELECT 1 FROM seals s WHERE s.chain = 'audit' AND s.row_id = e.id::text)
		  AND NOT EXISTS (SELECT 1 FROM seal_queue q WHERE q.chain = 'audit' AND q.row_id = e.id::text)`,
}

func unsealed(ctx context.Context, q db.DBTX, r *Result) error {
	var n int64
	var first string
	if err := q.QueryRow(ctx, unsealedSQL[r.Chain]).Scan(&n, &first); err != nil {
		return err
	}
	if n > 0 {
		r.Broken = &Broken{Chain: r.Chain, Seq: r.Seq + 1, RowID: first,
			Reason: fmt.Sprintf("%d rows are neither sealed nor queued for sealing", n)}
	}
	return nil
}

// Head returns a chain's current head: the last seal's number and hash (hex).
func Head(ctx context.Context, q db.DBTX, chain string) (int64, string, error) {
	var seq int64
	var hash []byte
	err := q.QueryRow(ctx, `SELECT seq, hash FROM seals WHERE chain = $1 ORDER BY seq DESC LIMIT 1`, chain).Scan(&seq, &hash)
	if err == pgx.ErrNoRows {
		return 0, "", nil
	}
	return seq, hex.EncodeToString(hash), err
}
