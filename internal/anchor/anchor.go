package anchor

import (
	"context"
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
	// Sealer, if set, seals what is queued first, so that a checkpoint at a month's close
	// covers every row written before it.
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
	if a.Sealer != nil {
		if _, err := a.Sealer.SealAll(ctx); err != nil {
			return nil, fmt.Errorf("seal before the checkpoint: %w", err)
		}
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
