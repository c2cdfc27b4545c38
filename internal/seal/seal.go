// Package seal makes the ledger journal and the audit log tamper-evident. Each journal
// transaction and each audit event gets a seal: seq, the previous seal's hash, and
// hash = SHA-256(previous hash ‖ canonical content of the row). One sealer (an advisory
// lock keeps it single across servers) appends seals in batches from a queue the inserts
// fill, so writers never wait on the chain. Verify recomputes a chain from the rows as
// they are now and names the first link that no longer matches.
package seal

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
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

// genesis is the previous hash of a chain's first seal.
var genesis = make([]byte, sha256.Size)

// sealerLock is the advisory lock key that makes the sealer single.
const sealerLock = 0x7461787365616c // "taxseal"

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
	rows, err := tx.Query(ctx, `SELECT row_id FROM seal_queue WHERE chain = $1 ORDER BY queued LIMIT $2`, chain, batch)
	if err != nil {
		return 0, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	content, err := canonical(ctx, tx, chain, ids)
	if err != nil {
		return 0, err
	}
	var seq int64
	prev := genesis
	err = tx.QueryRow(ctx, `SELECT seq, hash FROM seals WHERE chain = $1 ORDER BY seq DESC LIMIT 1`, chain).Scan(&seq, &prev)
	if err != nil && err != pgx.ErrNoRows {
		return 0, err
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
		prev = link(prev, c)
		hashes[i] = prev
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO seals (chain, seq, row_id, prev_hash, hash)
		SELECT $1, s, r, p, h FROM unnest($2::bigint[], $3::text[], $4::bytea[], $5::bytea[]) AS u(s, r, p, h)`,
		chain, seqs, ids, prevs, hashes); err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM seal_queue WHERE chain = $1 AND row_id = ANY($2)`, chain, ids); err != nil {
		return 0, err
	}
	return len(ids), nil
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

// canonical returns the canonical content of the rows ids of chain, by id.
func canonical(ctx context.Context, q db.DBTX, chain string, ids []string) (map[string][]byte, error) {
	out := make(map[string][]byte, len(ids))
	switch chain {
	case Journal:
		rows, err := q.Query(ctx, `
			SELECT t.id::text, t.idem_key, t.kind, t.ref, to_char(t.effective_date, 'YYYY-MM-DD'),
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
			var id, key, kind, ref, date, account, side, amount string
			var entry int64
			var pending bool
			if err := rows.Scan(&id, &key, &kind, &ref, &date, &entry, &account, &pending, &side, &amount); err != nil {
				return nil, err
			}
			b, ok := out[id]
			if !ok {
				for _, f := range []string{"txn", id, key, kind, ref, date} {
					b = field(b, f)
				}
			}
			if entry != 0 {
				layer := "posted"
				if pending {
					layer = "pending"
				}
				for _, f := range []string{"entry", fmt.Sprint(entry), account, layer, side, amount} {
					b = field(b, f)
				}
			}
			out[id] = b
		}
		return out, rows.Err()
	case Audit:
		rows, err := q.Query(ctx, `
			SELECT id::text, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), actor, action, object,
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
			out[f[0]] = b
		}
		return out, rows.Err()
	}
	return nil, fmt.Errorf("unknown chain %q", chain)
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

// Verify recomputes chain from its rows as they are now, in pages, and returns the first
// broken link, if any: a row whose content changed, or a seal whose previous hash is not
// its predecessor's hash.
func Verify(ctx context.Context, q db.DBTX, chain string) (Result, error) {
	r := Result{Chain: chain}
	prev := genesis
	var after int64
	const page = 5000
	for {
		rows, err := q.Query(ctx, `SELECT seq, row_id, prev_hash, hash FROM seals WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3`, chain, after, page)
		if err != nil {
			return r, err
		}
		type sealRow struct {
			seq        int64
			id         string
			prev, hash []byte
		}
		list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (sealRow, error) {
			var x sealRow
			err := row.Scan(&x.seq, &x.id, &x.prev, &x.hash)
			return x, err
		})
		if err != nil {
			return r, err
		}
		if len(list) == 0 {
			return r, unsealed(ctx, q, &r)
		}
		ids := make([]string, len(list))
		for i, x := range list {
			ids[i] = x.id
		}
		content, err := canonical(ctx, q, chain, ids)
		if err != nil {
			return r, err
		}
		for _, x := range list {
			broken := func(reason string) (Result, error) {
				r.Broken = &Broken{Chain: chain, Seq: x.seq, RowID: x.id, Reason: reason}
				return r, nil
			}
			if x.seq != after+1 {
				return broken(fmt.Sprintf("seal %d is missing", after+1))
			}
			if string(x.prev) != string(prev) {
				return broken("its previous hash is not the hash of the seal before it")
			}
			c, ok := content[x.id]
			if !ok {
				return broken("the sealed row is gone")
			}
			prev = link(prev, c)
			if string(prev) != string(x.hash) {
				return broken("the row's content no longer matches its seal")
			}
			after = x.seq
			r.Verified++
			r.Seq, r.Head = x.seq, hex.EncodeToString(x.hash)
		}
	}
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
