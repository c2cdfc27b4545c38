package db

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Synchronous replication (OPERATIONS.md, "High availability"): with
// synchronous_commit on and a synchronous standby named, a COMMIT writes its record
// locally, then waits until the standby has it too. When that wait is cancelled (a
// cancel request, a statement_timeout, pg_cancel_backend, a fast shutdown), PostgreSQL
// does not roll back (it cannot: the commit is already local); it ends the wait with a
// WARNING "canceling wait for synchronous replication ... The transaction has already
// committed locally, but might not have been replicated to the standby." and answers
// COMMIT as if all were well. A failover to the standby then loses the transaction. An
// acknowledgement of it would be a lie, so the pool watches every connection's notices
// and the transaction runners turn such a COMMIT into ErrCommitUnknown.

const (
	// syncRepCancelledKey marks, in a connection's CustomData, that the server cancelled
	// a wait for synchronous replication on it.
	syncRepCancelledKey = "taxrefund.syncrep_cancelled"
	// commitWaitKey holds, in a connection's CustomData, its pool's Tuning.CommitWait.
	commitWaitKey = "taxrefund.commit_wait"
)

// DefaultCommitWait bounds how long a COMMIT may wait (for the synchronous standby, or a
// slow disk) once sent, whatever the caller's deadline.
const DefaultCommitWait = time.Minute

// Tuning is how a pool behaves across a failover.
type Tuning struct {
	// HealthCheckPeriod: how often idle connections are checked, so that those to a
	// dead or demoted primary are dropped before a call takes them.
	HealthCheckPeriod time.Duration
	// MaxConnLifetime: a connection is closed after this long, so that none stays
	// forever on a server that is no longer the primary.
	MaxConnLifetime time.Duration
	// CommitWait bounds the wait for a COMMIT's answer, run apart from the caller's
	// context: a caller that gives up does not cancel a backend that waits for its
	// synchronous standby (which would commit without the standby's copy).
	CommitWait time.Duration
}

// DefaultTuning is taxrefund serve's default (-db-health-check-period,
// -db-max-conn-lifetime, -db-commit-wait).
func DefaultTuning() Tuning {
	return Tuning{HealthCheckPeriod: 5 * time.Second, MaxConnLifetime: 10 * time.Minute, CommitWait: DefaultCommitWait}
}

// WithTuning applies t to the pool (zero fields keep pgxpool's or this package's default).
func WithTuning(t Tuning) Option {
	return func(cfg *pgxpool.Config) {
		if t.HealthCheckPeriod > 0 {
			cfg.HealthCheckPeriod = t.HealthCheckPeriod
		}
		if t.MaxConnLifetime > 0 {
			cfg.MaxConnLifetime = t.MaxConnLifetime
			cfg.MaxConnLifetimeJitter = t.MaxConnLifetime / 10
		}
		if t.CommitWait > 0 {
			wait := t.CommitWait
			cfg.AfterConnect = chain(cfg.AfterConnect, func(_ context.Context, c *pgx.Conn) error {
				c.PgConn().CustomData()[commitWaitKey] = wait
				return nil
			})
		}
	}
}

// onNotice records a cancelled wait for synchronous replication on the connection. The
// message is matched in English (lc_messages is the server's; ours are in English) and,
// in case, by its detail.
func onNotice(c *pgconn.PgConn, n *pgconn.Notice) {
	if IsSyncRepCancel(n) {
		c.CustomData()[syncRepCancelledKey] = true
	}
}

// IsSyncRepCancel reports whether n is PostgreSQL's warning that it stopped waiting for
// the synchronous standby after committing locally.
func IsSyncRepCancel(n *pgconn.Notice) bool {
	return n != nil && (strings.Contains(n.Message, "wait for synchronous replication") ||
		strings.Contains(n.Detail, "committed locally, but might not have been replicated"))
}

// resetCommitState forgets an earlier statement's cancelled wait on c (an autocommit
// statement whose runner does not look), before a transaction that will look.
func resetCommitState(c *pgconn.PgConn) { delete(c.CustomData(), syncRepCancelledKey) }

// syncRepCancelled reports whether a wait for synchronous replication was cancelled on c
// since resetCommitState.
func syncRepCancelled(c *pgconn.PgConn) bool {
	v, _ := c.CustomData()[syncRepCancelledKey].(bool)
	return v
}

func commitWaitOf(c *pgconn.PgConn) time.Duration {
	if d, ok := c.CustomData()[commitWaitKey].(time.Duration); ok && d > 0 {
		return d
	}
	return DefaultCommitWait
}

// commitOutcome turns what a COMMIT (or a batch ending in one) returned into the
// transaction's result: ErrCommitUnknown when the server cancelled the wait for the
// standby, or when the answer never came (a lost connection, the commit wait over); a
// PostgreSQL error (a deferred constraint, a serialization failure, a shutdown that came
// before the commit) and pgx's "the transaction had failed" are definite failures.
func commitOutcome(c *pgconn.PgConn, err error) error {
	if syncRepCancelled(c) {
		resetCommitState(c)
		if err != nil {
			return fmt.Errorf("%w: wait for the synchronous standby cancelled (%w)", ErrCommitUnknown, err)
		}
		return fmt.Errorf("%w: committed on the primary, but its wait for the synchronous standby was cancelled", ErrCommitUnknown)
	}
	if err == nil {
		return nil
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) || errors.Is(err, pgx.ErrTxCommitRollback) || errors.Is(err, pgx.ErrTxClosed) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrCommitUnknown, err)
}

// runTx is one attempt of InTx: BEGIN (with the party), fn, then COMMIT under a context
// of its own, bounded by the pool's commit wait rather than by the caller.
func runTx(ctx context.Context, pool *pgxpool.Pool, opts pgx.TxOptions, fn func(pgx.Tx) error) error {
	c, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	pc := c.Conn().PgConn()
	resetCommitState(pc)
	tx, err := c.BeginTx(ctx, opts)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
		_ = tx.Rollback(rctx)
		cancel()
		return err
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitWaitOf(pc))
	defer cancel()
	return commitOutcome(pc, tx.Commit(cctx))
}

// sendBatchOnPool is SendBatch on the pool: the batch is one implicit transaction, whose
// commit comes with its last result; it runs on a connection taken here so that a
// cancelled wait for the standby on it is seen.
func sendBatchOnPool(ctx context.Context, pool *pgxpool.Pool, b *pgx.Batch) error {
	c, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	pc := c.Conn().PgConn()
	resetCommitState(pc)
	if p := PartyOf(ctx); p != "" {
		out := &pgx.Batch{}
		out.Queue(setPartySQL, p)
		out.QueuedQueries = append(out.QueuedQueries, b.QueuedQueries...)
		b = out
	}
	res := c.SendBatch(ctx, b)
	for range b.Len() {
		if _, err := res.Exec(); err != nil {
			_ = res.Close()
			return commitOutcome(pc, err)
		}
	}
	return commitOutcome(pc, res.Close())
}

// AwaitReplicated returns once every transaction committed so far on the primary is also
// on the synchronous standby, when q is the pool (a transaction cannot wait: it returns
// nil at once). It commits a transaction of its own that writes a (transactional, empty)
// WAL message, whose COMMIT waits for the standby to reach its commit record, which comes
// after all of theirs. (A transaction that only took an id writes no WAL before its
// commit record, and PostgreSQL does not make it wait for the standby.)
//
// A read that acknowledges an earlier write needs it: the replay of a request's stored
// answer may read a transaction whose wait for the standby was cancelled (committed
// locally, visible, perhaps never replicated); answering it as a success would
// acknowledge what a failover may lose. After AwaitReplicated returns nil it cannot.
func AwaitReplicated(ctx context.Context, q DBTX) error {
	pool, ok := q.(*pgxpool.Pool)
	if !ok {
		return nil
	}
	return InTx(ctx, pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `SELECT pg_logical_emit_message(true, 'taxrefund.replicated', '')`)
		return err
	})
}
