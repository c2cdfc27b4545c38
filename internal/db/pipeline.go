package db

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// InPipelinedTx is InTx for a transaction that talks to PostgreSQL in batches: its BEGIN
// and the setting of ctx's party ride in front of its first batch, and its COMMIT behind
// its last (Tx.SendFinal). A call that reads in one batch and writes in another then
// waits on the database twice instead of four times (BEGIN, reads, writes, COMMIT), which
// spares PostgreSQL and the service two rounds of protocol work per call, and the pool
// connection the time they took.
//
// Retries are InTx's: after a serialization failure or a deadlock, wherever it shows (a
// batch, the COMMIT), fn runs again, whole, in a new transaction; fn must be safe to
// repeat. Whatever happens (an error in a batch or in fn, a panic, a cancelled ctx), the
// transaction has been committed or rolled back when the connection goes back to the
// pool, which would otherwise destroy it.
func InPipelinedTx(ctx context.Context, pool *pgxpool.Pool, fn func(*Tx) error) error {
	party := PartyOf(ctx)
	return Retry(ctx, func() error { return runPipelined(ctx, pool, party, fn) })
}

func runPipelined(ctx context.Context, pool *pgxpool.Pool, party string, fn func(*Tx) error) error {
	c, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	tx := &Tx{conn: c.Conn(), party: party}
	resetCommitState(tx.conn.PgConn())
	defer func() {
		// Also on a panic in fn: the connection goes back idle, or is destroyed.
		tx.ended = true
		if tx.closeConn {
			closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
			_ = tx.conn.Close(closeCtx) // the server rolls back whatever is open
			cancel()
		} else {
			tx.rollbackUnlessIdle(ctx)
		}
		c.Release()
	}()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.finish(ctx)
}

// rollbackTimeout bounds the ROLLBACK of a failed transaction. It runs even when the
// caller's context is done (a cancelled call), so that the connection stays in the pool.
const rollbackTimeout = 5 * time.Second

// Tx is the transaction of InPipelinedTx. It begins lazily: its first SendBatch (or
// SendFinal) sends BEGIN and the party's setting in the same round trip as the batch;
// any other first statement (Exec, Query, QueryRow, CopyFrom...) sends them on their own
// first. It is a pgx.Tx, so that the queries and helpers written for one (sqlc's, the
// ledger's, an ExportHook) run in it unchanged, and so that ledger.Store.Accounts, which
// tells a transaction by that interface, does not cache account ids that may roll back.
// Commit and Rollback are there for the interface: InPipelinedTx ends the transaction
// itself (a Rollback by fn makes it return pgx.ErrTxClosed, as pgx.BeginTxFunc does).
type Tx struct {
	conn  *pgx.Conn
	party string
	// inner is the transaction once BEGIN is sent.
	inner pgx.Tx
	// ended: SendFinal, Commit or Rollback has ended the transaction; committed says
	// whether it ended with a successful COMMIT, and endErr is what ended it otherwise.
	ended     bool
	committed bool
	endErr    error
	// closeConn: a cancel request was sent on the connection (SendFinal), which must not
	// serve anyone after this transaction.
	closeConn bool
}

var _ pgx.Tx = (*Tx)(nil)

// begun returns the transaction, sending BEGIN and the party's setting first when no
// statement has yet.
func (tx *Tx) begun(ctx context.Context) (pgx.Tx, error) {
	if tx.ended {
		return nil, pgx.ErrTxClosed
	}
	if tx.inner == nil {
		inner, err := tx.conn.BeginTx(ctx, beginOptionsFor(tx.party))
		if err != nil {
			return nil, err
		}
		tx.inner = inner
	}
	return tx.inner, nil
}

// SendBatch sends b in the transaction. The first statement of the transaction sends
// BEGIN and the setting of the party in front of b, in the same round trip; their
// results are read before SendBatch returns, so the results it returns are b's own.
func (tx *Tx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	switch {
	case tx.ended:
		return pgx.FailedBatchResults(b, pgx.ErrTxClosed)
	case tx.inner != nil:
		return tx.inner.SendBatch(ctx, b)
	}
	first := &pgx.Batch{}
	first.BeginTx(pgx.TxOptions{})
	prefix := 1
	if tx.party != "" {
		first.Queue(setPartySQL, tx.party)
		prefix++
	}
	first.QueuedQueries = append(first.QueuedQueries, b.QueuedQueries...)
	res := tx.conn.SendBatch(ctx, first)
	tx.inner = res.Tx()
	for range prefix {
		if _, err := res.Exec(); err != nil {
			_ = res.Close()
			return pgx.FailedBatchResults(b, err)
		}
	}
	return res
}

// errFinalCallback refuses a final batch with a result callback: the COMMIT queued behind
// the batch runs whatever a callback decides, so a callback could not refuse anything.
var errFinalCallback = errors.New("db: Tx.SendFinal: a query of the final batch has a result callback, which cannot stop the COMMIT that follows it")

// SendFinal sends b with the transaction's COMMIT queued behind it (and, if nothing was
// sent yet, its BEGIN in front) and reads every result: the last writes and the commit
// in one round trip. The transaction is over when it returns: committed if it returns
// nil; otherwise rolled back, and the error is the first statement's that failed (the
// server skips the rest, COMMIT included) or the COMMIT's own (a deferred constraint, a
// serialization failure). The runner does not commit again.
//
// The COMMIT runs as soon as b's statements succeed on the server, before the service
// reads their results, so b may hold no result callback (QueuedQuery.Query, .QueryRow,
// .Exec): anything that must decide whether to commit is read in an earlier batch.
//
// For the same reason a caller that gives up (ctx cancelled, its deadline passed) cannot
// just drop the connection, as pgx does: PostgreSQL would still run the queued COMMIT
// once the statement before it finishes (say a lock wait ends). SendFinal then asks the
// server to cancel the running statement instead, which makes it skip the COMMIT, and
// waits for its answer (at most cancelGrace), so that the error it returns wraps
// ctx.Err() only when nothing was committed; if the COMMIT won the race, it returns nil.
// The connection is closed afterwards, so that no late cancel reaches its next user.
// Once every statement of b has answered, only the COMMIT is left, which may be waiting
// for the synchronous standby: that wait is never cancelled (it would commit without
// the standby's copy); SendFinal waits for it up to the pool's commit wait instead. A
// COMMIT whose outcome is unknown returns ErrCommitUnknown.
func (tx *Tx) SendFinal(ctx context.Context, b *pgx.Batch) error {
	if tx.ended {
		return pgx.ErrTxClosed
	}
	for _, q := range b.QueuedQueries {
		if q.Fn != nil {
			return errFinalCallback
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	final := &pgx.Batch{QueuedQueries: slices.Clip(b.QueuedQueries)}
	final.Queue("commit")

	pc := tx.conn.PgConn()
	sendCtx, drop := context.WithTimeout(context.WithoutCancel(ctx), commitWaitOf(pc))
	defer drop()
	answered, cancelled := make(chan struct{}), make(chan struct{})
	var committing atomic.Bool
	stop := context.AfterFunc(ctx, func() {
		defer close(cancelled)
		if committing.Load() {
			// Only the COMMIT is left: let it finish (bounded by sendCtx).
			select {
			case <-answered:
			case <-sendCtx.Done():
			}
			return
		}
		cctx, done := context.WithTimeout(sendCtx, cancelGrace)
		defer done()
		if err := tx.conn.PgConn().CancelRequest(cctx); err != nil {
			drop() // the outcome is unknown: the connection goes, as pgx would have it
			return
		}
		select {
		case <-answered:
		case <-cctx.Done():
			drop()
		}
	})
	res := tx.SendBatch(sendCtx, final)
	tx.ended = true
	err := readFinal(res, b.Len(), &committing)
	if committing.Load() {
		err = commitOutcome(pc, err)
	}
	close(answered)
	if !stop() {
		<-cancelled
		tx.closeConn = true
		if err != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
	}
	tx.endErr, tx.committed = err, err == nil
	return err
}

// cancelGrace bounds how long SendFinal waits for the server to answer the cancel of a
// caller that gave up; past it, the connection is dropped and the outcome is unknown.
const cancelGrace = 5 * time.Second

// readFinal reads the results of n statements and the COMMIT behind them; committing is
// set once the n statements have answered.
func readFinal(res pgx.BatchResults, n int, committing *atomic.Bool) error {
	for range n {
		if _, err := res.Exec(); err != nil {
			_ = res.Close()
			return err
		}
	}
	committing.Store(true)
	tag, err := res.Exec()
	if err != nil {
		_ = res.Close()
		return err
	}
	if err := res.Close(); err != nil {
		return err
	}
	if tag.String() == "ROLLBACK" { // the transaction had failed before this batch
		return pgx.ErrTxCommitRollback
	}
	return nil
}

// finish ends the transaction after fn succeeded: nothing to do when SendFinal, Commit
// or Rollback ended it or when nothing was sent; COMMIT on its own otherwise.
func (tx *Tx) finish(ctx context.Context) error {
	switch {
	case tx.committed:
		return nil
	case tx.ended && tx.endErr != nil:
		return tx.endErr
	case tx.ended:
		return pgx.ErrTxClosed // fn rolled back
	case tx.inner == nil:
		return nil
	}
	return tx.Commit(ctx)
}

// rollbackUnlessIdle rolls back whatever the connection still has open: a transaction
// that failed, or one that fn left (an error, a panic). A connection it cannot bring
// back idle is destroyed by its release.
func (tx *Tx) rollbackUnlessIdle(ctx context.Context) {
	if tx.conn.IsClosed() || tx.conn.PgConn().TxStatus() == 'I' {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	_, _ = tx.conn.Exec(ctx, "rollback")
}

// Commit commits the transaction on its own round trip (InPipelinedTx commits for fn;
// SendFinal saves the round trip).
func (tx *Tx) Commit(ctx context.Context) error {
	if tx.ended {
		return pgx.ErrTxClosed
	}
	tx.ended = true
	if tx.inner == nil {
		tx.committed = true // nothing was sent: nothing to commit
		return nil
	}
	pc := tx.conn.PgConn()
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitWaitOf(pc))
	defer cancel()
	tx.endErr = commitOutcome(pc, tx.inner.Commit(cctx))
	tx.committed = tx.endErr == nil
	return tx.endErr
}

// Rollback rolls the transaction back.
func (tx *Tx) Rollback(ctx context.Context) error {
	if tx.ended {
		return pgx.ErrTxClosed
	}
	tx.ended = true
	if tx.inner == nil {
		return nil
	}
	return tx.inner.Rollback(ctx)
}

// Exec runs sql in the transaction.
func (tx *Tx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	inner, err := tx.begun(ctx)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	return inner.Exec(ctx, sql, args...)
}

// Query runs sql in the transaction.
func (tx *Tx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	inner, err := tx.begun(ctx)
	if err != nil {
		return errRows{err: err}, err
	}
	return inner.Query(ctx, sql, args...)
}

// QueryRow runs sql in the transaction.
func (tx *Tx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	inner, err := tx.begun(ctx)
	if err != nil {
		return row{err: err}
	}
	return inner.QueryRow(ctx, sql, args...)
}

// CopyFrom copies rows in the transaction.
func (tx *Tx) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	inner, err := tx.begun(ctx)
	if err != nil {
		return 0, err
	}
	return inner.CopyFrom(ctx, table, columns, src)
}

// Prepare prepares a statement on the transaction's connection.
func (tx *Tx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	inner, err := tx.begun(ctx)
	if err != nil {
		return nil, err
	}
	return inner.Prepare(ctx, name, sql)
}

// Begin starts a pseudo nested transaction (a savepoint).
func (tx *Tx) Begin(ctx context.Context) (pgx.Tx, error) {
	inner, err := tx.begun(ctx)
	if err != nil {
		return nil, err
	}
	return inner.Begin(ctx)
}

// LargeObjects returns the transaction's large objects; it begins the transaction if
// nothing has yet (when that fails, their every method fails with pgx.ErrTxClosed).
func (tx *Tx) LargeObjects() pgx.LargeObjects {
	inner, err := tx.begun(context.Background())
	if err != nil {
		return closedTx().LargeObjects()
	}
	return inner.LargeObjects()
}

// Conn returns the transaction's connection.
func (tx *Tx) Conn() *pgx.Conn { return tx.conn }

// closedTx returns a pgx transaction that is over: its methods fail with pgx.ErrTxClosed.
func closedTx() pgx.Tx {
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	return pgx.FailedBatchResults(b, pgx.ErrTxClosed).Tx()
}

// errRows are the rows of a query that could not be sent. (The embedded interface, nil,
// only keeps it a pgx.Rows should pgx add methods.)
type errRows struct {
	pgx.Rows
	err error
}

func (r errRows) Close()                                       {}
func (r errRows) Err() error                                   { return r.err }
func (r errRows) CommandTag() pgconn.CommandTag                { return pgconn.CommandTag{} }
func (r errRows) FieldDescriptions() []pgconn.FieldDescription { return nil }
func (r errRows) Next() bool                                   { return false }
func (r errRows) Scan(...any) error                            { return r.err }
func (r errRows) Values() ([]any, error)                       { return nil, r.err }
func (r errRows) RawValues() [][]byte                          { return nil }
func (r errRows) Conn() *pgx.Conn                              { return nil }
func (r errRows) TypeMap() *pgtype.Map                         { return nil }
