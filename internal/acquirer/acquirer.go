// Package acquirer delivers card instructions — releases and captures of immediate-refund
// pre-authorizations (DOMAIN.md §6) — to the card acquirer. Instructions are written to an
// outbox in the transaction of the ledger entries that need them; a dispatcher delivers
// each at least once, with its idempotency key, retrying with back-off, so the acquirer
// applies each exactly once. Instructions that keep failing are listed for officials.
package acquirer

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"
)

// Kind is what the acquirer is asked to do with a pre-authorization.
type Kind string

// The instruction kinds.
const (
	// Release frees the whole hold.
	Release Kind = "RELEASE"
	// Capture takes the whole prepayment from the card.
	Capture Kind = "CAPTURE"
	// PartialCapture takes Amount and frees the rest of the hold.
	PartialCapture Kind = "PARTIAL_CAPTURE"
)

// StuckAfter is how many failed attempts make an instruction need an official's attention.
const StuckAfter = 5

// Instruction is one release or capture.
type Instruction struct {
	ID int64
	// IdemKey is unique per instruction; the acquirer must apply a key once.
	IdemKey      string
	Kind         Kind
	PrepaymentID uuid.UUID
	CardToken    string
	Amount       decimal.Decimal
	Attempts     int32
	LastError    string
	CreatedAt    time.Time
	NextAttempt  time.Time
}

// Acquirer is a card acquirer. Deliver must be idempotent by the instruction's IdemKey: it
// may be called more than once for the same instruction.
type Acquirer interface {
	Deliver(ctx context.Context, in Instruction) error
}

// Queue appends an instruction to the outbox in b, the batch of the transaction that
// writes the ledger entries needing it.
func Queue(b *pgx.Batch, idemKey string, kind Kind, prepaymentID uuid.UUID, cardToken string, amount decimal.Decimal) {
	b.Queue(`INSERT INTO acquirer_outbox (idem_key, prepayment_id, kind, card_token, amount) VALUES ($1, $2, $3, $4, $5)`,
		idemKey, prepaymentID, string(kind), cardToken, amount)
}

// Dispatcher delivers the outbox.
type Dispatcher struct {
	Pool     *pgxpool.Pool
	Acquirer Acquirer
	Log      *slog.Logger
	// Batch is how many instructions one round claims (default 50).
	Batch int
	// Lease is how long a claimed instruction is left to its dispatcher before another
	// may deliver it again (default 30 s).
	Lease time.Duration
	// MaxBackoff bounds the wait between attempts (default 5 min).
	MaxBackoff time.Duration
}

// RunOnce claims due instructions, delivers them and records the outcome. It returns how
// many were delivered. Several dispatchers may run at once: a claim is a lease.
func (d *Dispatcher) RunOnce(ctx context.Context) (int, error) {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	batch, lease := d.Batch, d.Lease
	if batch <= 0 {
		batch = 50
	}
	if lease <= 0 {
		lease = 30 * time.Second
	}
	rows, err := d.Pool.Query(ctx, `
		UPDATE acquirer_outbox o SET next_attempt_at = now() + $2::interval, attempts = o.attempts + 1
		 WHERE o.id IN (SELECT id FROM acquirer_outbox
		                 WHERE delivered_at IS NULL AND next_attempt_at <= now()
		                 ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
		RETURNING o.id, o.idem_key, o.kind, o.prepayment_id, o.card_token, o.amount, o.attempts, o.last_error, o.created_at, o.next_attempt_at`,
		batch, lease)
	if err != nil {
		return 0, fmt.Errorf("claim outbox: %w", err)
	}
	claimed, err := pgx.CollectRows(rows, scanInstruction)
	if err != nil {
		return 0, fmt.Errorf("claim outbox: %w", err)
	}
	delivered := 0
	for _, in := range claimed {
		if err := d.Acquirer.Deliver(ctx, in); err != nil {
			wait := d.backoff(in.Attempts)
			if _, uerr := d.Pool.Exec(ctx, `UPDATE acquirer_outbox SET next_attempt_at = now() + $2::interval, last_error = $3 WHERE id = $1`,
				in.ID, wait, truncate(err.Error(), 500)); uerr != nil {
				return delivered, fmt.Errorf("record failed delivery: %w", uerr)
			}
			level := slog.LevelWarn
			if in.Attempts >= StuckAfter {
				level = slog.LevelError
			}
			d.Log.Log(ctx, level, "acquirer delivery failed", "instruction", in.ID, "kind", in.Kind, "attempts", in.Attempts, "retry_in", wait, "error", err)
			continue
		}
		if _, err := d.Pool.Exec(ctx, `UPDATE acquirer_outbox SET delivered_at = now(), last_error = '' WHERE id = $1`, in.ID); err != nil {
			return delivered, fmt.Errorf("record delivery: %w", err)
		}
		delivered++
	}
	return delivered, nil
}

// backoff doubles from one second per attempt, with jitter, up to MaxBackoff.
func (d *Dispatcher) backoff(attempts int32) time.Duration {
	limit := d.MaxBackoff
	if limit <= 0 {
		limit = 5 * time.Minute
	}
	wait := time.Second << min(attempts, 20)
	if wait > limit {
		wait = limit
	}
	return wait/2 + time.Duration(rand.Int64N(int64(wait/2)+1))
}

// Pending lists the instructions not yet delivered, most attempted first.
func Pending(ctx context.Context, pool *pgxpool.Pool) ([]Instruction, error) {
	rows, err := pool.Query(ctx, `
		SELECT id, idem_key, kind, prepayment_id, card_token, amount, attempts, last_error, created_at, next_attempt_at
		  FROM acquirer_outbox WHERE delivered_at IS NULL ORDER BY attempts DESC, id LIMIT 1000`)
	if err != nil {
		return nil, fmt.Errorf("list outbox: %w", err)
	}
	return pgx.CollectRows(rows, scanInstruction)
}

func scanInstruction(r pgx.CollectableRow) (Instruction, error) {
	var in Instruction
	var kind string
	err := r.Scan(&in.ID, &in.IdemKey, &kind, &in.PrepaymentID, &in.CardToken, &in.Amount, &in.Attempts, &in.LastError, &in.CreatedAt, &in.NextAttempt)
	in.Kind = Kind(kind)
	return in, err
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
