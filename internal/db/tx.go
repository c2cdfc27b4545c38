package db

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// maxAttempts bounds the retries of a transaction that lost a serialization race or a
// deadlock.
const maxAttempts = 8

// InTx runs fn in a transaction and commits it. After a serialization failure or a
// deadlock it runs fn again (with a short, jittered back-off), so fn must be safe to
// repeat: it recomputes from what it reads and reuses the caller's idempotency key. The
// transaction runs as ctx's party (WithParty), set by the same round trip as BEGIN.
// A transaction made of batches saves the round trips of BEGIN and COMMIT with
// InPipelinedTx.
//
// The COMMIT runs apart from ctx, bounded by the pool's commit wait (Tuning): a caller
// that gives up does not cancel a backend that waits for the synchronous standby. A
// COMMIT whose outcome is unknown (no answer, or the wait for the standby cancelled)
// returns ErrCommitUnknown, never nil.
func InTx(ctx context.Context, pool *pgxpool.Pool, fn func(pgx.Tx) error) error {
	opts := beginOptions(ctx)
	err := Retry(ctx, func() error { return runTx(ctx, pool, opts, fn) })
	resetOnFailover(pool, err)
	return err
}

// Retry runs op until it succeeds, fails with an error that is not retryable, or has
// been tried maxAttempts times.
func Retry(ctx context.Context, op func() error) error {
	var err error
	for attempt := 1; ; attempt++ {
		err = op()
		if err == nil || !IsRetryable(err) || attempt == maxAttempts {
			return err
		}
		backoff := time.Duration(rand.IntN(1<<attempt)+1) * time.Millisecond
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
	}
}

// Batcher is a pool, a connection or a transaction.
type Batcher interface {
	SendBatch(context.Context, *pgx.Batch) pgx.BatchResults
}

// SendBatch sends b in one round trip and reads every result. On the pool the batch runs
// as one implicit transaction: the first error aborts it, and nothing is written; it
// runs as ctx's party (WithParty), set by a statement queued first, and a commit whose
// outcome is unknown returns ErrCommitUnknown.
func SendBatch(ctx context.Context, q Batcher, b *pgx.Batch) error {
	if pool, ok := q.(*pgxpool.Pool); ok {
		err := sendBatchOnPool(ctx, pool, b)
		resetOnFailover(pool, err)
		return err
	}
	b = withParty(ctx, q, b)
	res := q.SendBatch(ctx, b)
	for range b.Len() {
		if _, err := res.Exec(); err != nil {
			_ = res.Close()
			return err
		}
	}
	return res.Close()
}

// Clock returns now (time.Now when nil) cut to what PostgreSQL stores: UTC microseconds.
// A service that answers with a time it also stores then answers the same on a retry or
// a read-back.
func Clock(now func() time.Time) func() time.Time {
	if now == nil {
		now = time.Now
	}
	return func() time.Time { return now().UTC().Truncate(time.Microsecond) }
}
