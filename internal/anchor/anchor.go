package anchor

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"taxrefund/internal/db"
	"taxrefund/internal/refund"
	"taxrefund/internal/seal"
)

// Anchor signs the chain heads and appends them to the checkpoint file.
type Anchor struct {
	Pool   db.DBTX
	Signer *Signer
	// File is the checkpoint file's path.
	File string
	// Keys verifies the checkpoints Latest returns: the public key file's keys.
	Keys PublicKeys
	// Sealer, if set, seals what is queued first; without it a checkpoint waits for the
	// server's sealer. Either way a checkpoint covers every row queued before it.
	Sealer *seal.Sealer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Log, if set, gets a line for every checkpoint that could not be made.
	Log *slog.Logger

	mu sync.Mutex
}

// Checkpoint signs the current head of every chain that has one and appends them to the
// file. month "" stands for the current month in Asia/Shanghai. It returns what it wrote.
func (a *Anchor) Checkpoint(ctx context.Context, reason, month string) ([]Checkpoint, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.Signer == nil {
		return nil, errors.New("no journal key: this process does not sign checkpoints")
	}
	if err := a.sealQueued(ctx); err != nil {
		return nil, fmt.Errorf("seal before the checkpoint: %w", err)
	}
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	t := now()
	if month == "" {
		month = refund.LocalDate(t).Format("2006-01")
	}
	var cps []Checkpoint
	for _, chain := range seal.Chains {
		var seq int64
		var row string
		var hash []byte
		err := a.Pool.QueryRow(ctx, `SELECT seq, row_id, hash FROM seals WHERE chain = $1 ORDER BY seq DESC LIMIT 1`, chain).Scan(&seq, &row, &hash)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("%s head: %w", chain, err)
		}
		if seq == 0 {
			continue // nothing sealed yet
		}
		if err := a.extends(ctx, chain, seq); err != nil {
			return nil, err
		}
		cps = append(cps, a.Signer.Sign(Checkpoint{Time: t, Chain: chain, Seq: seq, RowID: row, Head: fmt.Sprintf("%x", hash), Reason: reason, Month: month}))
	}
	if len(cps) == 0 {
		return nil, nil
	}
	if err := Append(a.File, cps...); err != nil {
		return nil, fmt.Errorf("checkpoint file: %w", err)
	}
	return cps, nil
}

// sealQueued returns once every row queued before it started is sealed, by a.Sealer (if
// set) or by the server's sealer, which may hold the sealer lock (a.Sealer then seals
// nothing), or run in another process.
func (a *Anchor) sealQueued(ctx context.Context) error {
	var upTo int64
	if err := a.Pool.QueryRow(ctx, `SELECT coalesce(max(queued), 0) FROM seal_queue`).Scan(&upTo); err != nil {
		return err
	}
	for {
		if a.Sealer != nil {
			if _, err := a.Sealer.SealAll(ctx); err != nil {
				return err
			}
		}
		var waiting bool
		if err := a.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM seal_queue WHERE queued <= $1)`, upTo).Scan(&waiting); err != nil || !waiting {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// KeyID is the signing key's id, "" without one.
func (a *Anchor) KeyID() string {
	if a.Signer == nil {
		return ""
	}
	return a.Signer.ID
}

// Round is Checkpoint as a background job's round (schedule.Every): a daily checkpoint.
func (a *Anchor) Round(ctx context.Context) (int, error) {
	cps, err := a.Checkpoint(ctx, Daily, "")
	return len(cps), err
}

// CloseMonth makes the checkpoint of a month's close.
func (a *Anchor) CloseMonth(ctx context.Context, month time.Time) error {
	_, err := a.Checkpoint(ctx, MonthClose, month.Format("2006-01"))
	if err != nil && a.Log != nil {
		a.Log.Error("checkpoint of a month's close failed", "month", month.Format("2006-01"), "error", err)
	}
	return err
}

// Latest returns the latest validly signed checkpoints of month ("YYYY-MM") in the
// checkpoint file, one per chain in seal.Chains order; Keys verifies them.
func (a *Anchor) Latest(month string) ([]Checkpoint, error) {
	lines, err := ReadFile(a.File)
	if err != nil {
		return nil, err
	}
	latest := Latest(lines, a.Keys, month)
	var out []Checkpoint
	for _, chain := range seal.Chains {
		if c, ok := latest[chain]; ok {
			out = append(out, c)
		}
	}
	return out, nil
}

// errStop ends a walk early.
var errStop = errors.New("stop")

// extends refuses to sign a head that does not extend the last head signed in the file:
// the seals after that checkpoint must link to its signed head and hash their rows as they
// are now. A chain re-sealed since is not signed again, so the latest checkpoint never
// vouches for a rewritten history (`taxrefund verify` names the rows).
func (a *Anchor) extends(ctx context.Context, chain string, head int64) error {
	lines, err := ReadFile(a.File)
	if err != nil {
		return err
	}
	keys := PublicKeys{a.Signer.ID: a.Signer.Public()}
	for id, k := range a.Keys {
		keys[id] = k
	}
	var last *Checkpoint
	for _, l := range lines {
		c := l.Checkpoint
		if l.Err == nil && c.Chain == chain && keys.Verify(c) == nil && (last == nil || c.Seq >= last.Seq) {
			last = &c
		}
	}
	if last == nil {
		return nil
	}
	refuse := func(why string) error {
		return fmt.Errorf("%s chain: not signing seal %d: %s since the checkpoint of %s (seal %d); run `taxrefund verify`",
			chain, head, why, last.Time.Format(time.RFC3339), last.Seq)
	}
	prev, err := hex.DecodeString(last.Head)
	if err != nil {
		return refuse("the signed head is not hex")
	}
	if head < last.Seq {
		return refuse(fmt.Sprintf("the chain ends at seal %d, shorter than signed", head))
	}
	if head == last.Seq {
		var hash []byte
		if err := a.Pool.QueryRow(ctx, `SELECT hash FROM seals WHERE chain = $1 AND seq = $2`, chain, head).Scan(&hash); err != nil {
			return err
		}
		if !bytes.Equal(hash, prev) {
			return refuse("its head was re-sealed")
		}
		return nil
	}
	next := last.Seq + 1
	err = seal.WalkFrom(ctx, a.Pool, chain, last.Seq, func(x seal.Sealed) error {
		switch {
		case x.Seq > head:
			return errStop
		case x.Seq != next:
			return refuse(fmt.Sprintf("seal %d is missing", next))
		case !bytes.Equal(x.Prev, prev):
			return refuse(fmt.Sprintf("seal %d no longer links to the signed head", x.Seq))
		case x.Problem != "":
			return refuse(fmt.Sprintf("seal %d: %s", x.Seq, x.Problem))
		}
		prev = x.Next(prev)
		if !bytes.Equal(prev, x.Hash) {
			return refuse(fmt.Sprintf("seal %d no longer matches its row (row %s)", x.Seq, x.RowID))
		}
		next++
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return err
	}
	if next <= head {
		return refuse(fmt.Sprintf("seal %d is missing", next))
	}
	return nil
}
