package db_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"taxrefund/internal/db"
	"taxrefund/internal/dbtest"
	"taxrefund/internal/idempotency"
)

// pipeEnv is a fresh database with scratch tables, an owner's pool for looking and a
// counting pool of maxConns connections for the transactions under test.
type pipeEnv struct {
	t     *testing.T
	ctx   context.Context
	owner *pgxpool.Pool
	pool  *pgxpool.Pool
	trips *dbtest.RoundTrips
}

func newPipeEnv(t *testing.T, maxConns int32) *pipeEnv {
	t.Helper()
	url := dbtest.NewURL(t)
	owner := dbtest.OpenPool(t, url, "")
	pool, trips := dbtest.OpenCountingPool(t, url, maxConns)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	if _, err := owner.Exec(ctx, `
		CREATE TABLE pt (id int PRIMARY KEY, v int NOT NULL);
		INSERT INTO pt VALUES (1, 0), (2, 0);
		CREATE TABLE parent (id int PRIMARY KEY);
		CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES parent DEFERRABLE INITIALLY DEFERRED);`); err != nil {
		t.Fatal(err)
	}
	return &pipeEnv{t: t, ctx: ctx, owner: owner, pool: pool, trips: trips}
}

func (e *pipeEnv) count(sql string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.owner.QueryRow(e.ctx, sql, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// backend returns the server process of the pool's (only) connection.
func (e *pipeEnv) backend() int32 {
	e.t.Helper()
	var pid int32
	if err := e.pool.QueryRow(e.ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		e.t.Fatal(err)
	}
	return pid
}

// sameIdleConn fails unless the pool's only connection is still the one of process pid,
// idle and outside any transaction: the failed transaction was rolled back, not left to
// the pool to destroy.
func (e *pipeEnv) sameIdleConn(pid int32) {
	e.t.Helper()
	if n := e.pool.Stat().TotalConns(); n != 1 {
		e.t.Errorf("the pool has %d connections, want its one", n)
	}
	c, err := e.pool.Acquire(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	defer c.Release()
	if st := c.Conn().PgConn().TxStatus(); st != 'I' {
		e.t.Errorf("the connection is in transaction status %q, want idle", st)
	}
	var now int32
	if err := c.QueryRow(e.ctx, `SELECT pg_backend_pid()`).Scan(&now); err != nil {
		e.t.Fatal(err)
	}
	if now != pid {
		e.t.Errorf("the connection was replaced (backend %d, was %d): it was released inside a transaction", now, pid)
	}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != code {
		t.Fatalf("got %v, want SQLSTATE %s", err, code)
	}
}

// readThenWrite reads pt's row 1 and the party in one batch, then writes what fn makes of
// them in the final batch.
func readThenWrite(ctx context.Context, tx *db.Tx, final func(v int) *pgx.Batch) (party string, err error) {
	var v int
	read := &pgx.Batch{}
	read.Queue(`SELECT v FROM pt WHERE id = 1 FOR UPDATE`).QueryRow(func(r pgx.Row) error { return r.Scan(&v) })
	read.Queue(`SELECT current_setting('taxrefund.party', true)`).QueryRow(func(r pgx.Row) error { return r.Scan(&party) })
	if err := tx.SendBatch(ctx, read).Close(); err != nil {
		return "", err
	}
	return party, tx.SendFinal(ctx, final(v))
}

func increment(v int) *pgx.Batch {
	b := &pgx.Batch{}
	b.Queue(`UPDATE pt SET v = $1 WHERE id = 1`, v+1)
	return b
}

// TestPipelinedTxTwoRoundTrips: a read batch and a final batch are two round trips,
// BEGIN, the party and COMMIT included; the party is set for the transaction only.
func TestPipelinedTxTwoRoundTrips(t *testing.T) {
	t.Parallel()
	e := newPipeEnv(t, 1)
	ctx := db.WithParty(e.ctx, "desk", "CKG-01")
	for i := range 2 { // the first prepares the statements
		e.trips.Reset()
		var party string
		err := db.InPipelinedTx(ctx, e.pool, func(tx *db.Tx) (err error) {
			party, err = readThenWrite(ctx, tx, increment)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if party != "desk/CKG-01" {
			t.Errorf("the transaction ran as %q, want desk/CKG-01", party)
		}
		if i == 1 {
			if n, what := e.trips.Traced(); n != 2 || e.trips.Wire() != 2 {
				t.Errorf("%d round trips traced (%q), %d on the wire; want 2", n, what, e.trips.Wire())
			}
		}
	}
	if v := e.count(`SELECT v FROM pt WHERE id = 1`); v != 2 {
		t.Errorf("v = %d after two increments, want 2", v)
	}
	var after string
	if err := e.pool.QueryRow(e.ctx, `SELECT current_setting('taxrefund.party', true)`).Scan(&after); err != nil || after != "" {
		t.Errorf("after the transaction the connection's party is %q (%v), want none", after, err)
	}
}

// TestPipelinedTxWithoutPartyOrBatch: without a party no setting is sent; a transaction
// whose first statement is not a batch sends BEGIN on its own; one that sends nothing
// costs nothing; one without a final batch is committed by the runner.
func TestPipelinedTxWithoutPartyOrBatch(t *testing.T) {
	t.Parallel()
	e := newPipeEnv(t, 1)
	e.backend() // connect
	e.trips.Reset()
	if err := db.InPipelinedTx(e.ctx, e.pool, func(*db.Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if n, what := e.trips.Traced(); n != 0 {
		t.Errorf("an empty transaction took %d round trips (%q), want 0", n, what)
	}

	ctx := db.WithParty(e.ctx, "system", "test")
	e.trips.Reset()
	err := db.InPipelinedTx(ctx, e.pool, func(tx *db.Tx) error {
		var party string
		if err := tx.QueryRow(ctx, `SELECT current_setting('taxrefund.party', true)`).Scan(&party); err != nil {
			return err
		}
		if party != "system/test" {
			t.Errorf("a query first: the party is %q, want system/test", party)
		}
		return tx.SendFinal(ctx, increment(0))
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, what := e.trips.Traced(); n != 3 { // BEGIN and party, the query, the final batch
		t.Errorf("a query first: %d round trips (%q), want 3", n, what)
	}

	e.trips.Reset()
	err = db.InPipelinedTx(e.ctx, e.pool, func(tx *db.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`UPDATE pt SET v = v + 1 WHERE id = 2`)
		return tx.SendBatch(e.ctx, b).Close()
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, what := e.trips.Traced(); n != 2 { // the batch, then COMMIT
		t.Errorf("no final batch: %d round trips (%q), want 2", n, what)
	}
	if v := e.count(`SELECT v FROM pt WHERE id = 2`); v != 1 {
		t.Errorf("no final batch: v = %d, want 1 (committed by the runner)", v)
	}
}

// TestPipelinedTxFailuresRollBack: whatever fails (a statement of the final batch, one
// of the first batch, fn after a batch, a panic in fn, the COMMIT itself), nothing is
// written, the error comes back, and the connection goes back to the pool idle.
func TestPipelinedTxFailuresRollBack(t *testing.T) {
	t.Parallel()
	e := newPipeEnv(t, 1)
	pid := e.backend()
	errMine := errors.New("decided in Go")
	cases := []struct {
		name string
		code string // SQLSTATE expected, or "" for errMine
		fn   func(ctx context.Context, tx *db.Tx) error
	}{
		{"final batch, constraint", "23505", func(ctx context.Context, tx *db.Tx) error {
			_, err := readThenWrite(ctx, tx, func(v int) *pgx.Batch {
				b := increment(v)
				b.Queue(`INSERT INTO pt VALUES (1, 0)`)
				b.Queue(`UPDATE pt SET v = 99 WHERE id = 2`) // skipped
				return b
			})
			return err
		}},
		{"final batch, error ignored by fn", "23505", func(ctx context.Context, tx *db.Tx) error {
			b := increment(0)
			b.Queue(`INSERT INTO pt VALUES (2, 0)`)
			_ = tx.SendFinal(ctx, b)
			return nil // the runner still reports that nothing was committed
		}},
		{"final batch is the first", "23505", func(ctx context.Context, tx *db.Tx) error {
			b := increment(0)
			b.Queue(`INSERT INTO pt VALUES (2, 0)`)
			return tx.SendFinal(ctx, b)
		}},
		{"first batch", "22012", func(ctx context.Context, tx *db.Tx) error {
			b := increment(0)
			b.Queue(`SELECT 1/0`)
			return tx.SendBatch(ctx, b).Close()
		}},
		{"fn after a batch", "", func(ctx context.Context, tx *db.Tx) error {
			if err := tx.SendBatch(ctx, increment(0)).Close(); err != nil {
				return err
			}
			return errMine
		}},
		{"commit, deferred constraint", "23503", func(ctx context.Context, tx *db.Tx) error {
			if err := tx.SendBatch(ctx, increment(0)).Close(); err != nil {
				return err
			}
			b := &pgx.Batch{}
			b.Queue(`INSERT INTO child VALUES (1, 42)`) // no parent 42: refused at COMMIT
			return tx.SendFinal(ctx, b)
		}},
		{"final batch with a callback", "", func(ctx context.Context, tx *db.Tx) error {
			if err := tx.SendBatch(ctx, increment(0)).Close(); err != nil {
				return err
			}
			b := &pgx.Batch{}
			b.Queue(`UPDATE pt SET v = 7 WHERE id = 2`).Exec(func(pgconn.CommandTag) error { return nil })
			if err := tx.SendFinal(ctx, b); err == nil {
				t.Error("SendFinal took a batch with a callback")
			}
			return errMine
		}},
	}
	for _, c := range cases {
		ctx := db.WithParty(e.ctx, "system", "test")
		err := db.InPipelinedTx(ctx, e.pool, func(tx *db.Tx) error { return c.fn(ctx, tx) })
		if c.code == "" {
			if !errors.Is(err, errMine) {
				t.Errorf("%s: got %v, want fn's error", c.name, err)
			}
		} else {
			wantCode(t, err, c.code)
		}
		if v := e.count(`SELECT sum(v) FROM pt`); v != 0 {
			t.Errorf("%s: the failed transaction wrote (sum %d)", c.name, v)
		}
		if n := e.count(`SELECT count(*) FROM child`); n != 0 {
			t.Errorf("%s: the failed transaction wrote %d child rows", c.name, n)
		}
		e.sameIdleConn(pid)
	}

	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want the panic of fn", r)
			}
		}()
		_ = db.InPipelinedTx(e.ctx, e.pool, func(tx *db.Tx) error {
			if err := tx.SendBatch(e.ctx, increment(0)).Close(); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	if v := e.count(`SELECT sum(v) FROM pt`); v != 0 {
		t.Errorf("panic: the transaction wrote (sum %d)", v)
	}
	e.sameIdleConn(pid)
}

// TestPipelinedTxRetriesDeadlock: two transactions lock rows 1 and 2 in opposite orders,
// each in its first batch and its final one; PostgreSQL kills one with a deadlock
// (40P01), and InPipelinedTx runs it again: both transactions succeed, and each
// increment lands once.
func TestPipelinedTxRetriesDeadlock(t *testing.T) {
	t.Parallel()
	e := newPipeEnv(t, 2)
	var attempts atomic.Int32
	var both sync.WaitGroup
	both.Add(2)
	run := func(first, second int) error {
		tries := 0
		return db.InPipelinedTx(e.ctx, e.pool, func(tx *db.Tx) error {
			attempts.Add(1)
			tries++
			b := &pgx.Batch{}
			b.Queue(`UPDATE pt SET v = v + 1 WHERE id = $1`, first)
			if err := tx.SendBatch(e.ctx, b).Close(); err != nil {
				return err
			}
			if tries == 1 {
				both.Done()
				both.Wait() // both hold their first row: each now waits on the other's
			}
			b = &pgx.Batch{}
			b.Queue(`UPDATE pt SET v = v + 10 WHERE id = $1`, second)
			return tx.SendFinal(e.ctx, b)
		})
	}
	errs := make(chan error, 2)
	go func() { errs <- run(1, 2) }()
	go func() { errs <- run(2, 1) }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("a transaction failed despite the retry: %v", err)
		}
	}
	// The victim's new transaction may take its first row again before the winner,
	// woken, takes it: a second deadlock, and a third run.
	if n := attempts.Load(); n < 3 {
		t.Errorf("%d attempts, want at least 3 (a deadlock victim run again)", n)
	}
	if a, b := e.count(`SELECT v FROM pt WHERE id = 1`), e.count(`SELECT v FROM pt WHERE id = 2`); a != 11 || b != 11 {
		t.Errorf("v = %d and %d, want 11 and 11 (each increment once)", a, b)
	}
	if n := e.count(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'`); n != 0 {
		t.Errorf("%d connections left idle in a transaction", n)
	}
}

// TestPipelinedTxConcurrentDuplicate: the idempotency record first in the first batch,
// as the desk calls take it. A duplicate of a request in flight waits on the record,
// then fails with the duplicate's unique violation once the first commits in its final
// batch; its connection goes back idle.
func TestPipelinedTxConcurrentDuplicate(t *testing.T) {
	t.Parallel()
	e := newPipeEnv(t, 2)
	k := idempotency.Key{Caller: "desk/CKG-01/cashier-1", RequestID: uuid.New(), Hash: idempotency.Hash([]byte("r"))}
	call := func(between func()) error {
		return db.InPipelinedTx(e.ctx, e.pool, func(tx *db.Tx) error {
			b := &pgx.Batch{}
			idempotency.QueueBegin(b, k, "Test")
			b.Queue(`UPDATE pt SET v = v + 1 WHERE id = 1`)
			if err := tx.SendBatch(e.ctx, b).Close(); err != nil {
				return err
			}
			between()
			b = &pgx.Batch{}
			if err := idempotency.Finish(b, k, "done"); err != nil {
				return err
			}
			return tx.SendFinal(e.ctx, b)
		})
	}
	holding, release := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() { first <- call(func() { close(holding); <-release }) }()
	<-holding
	second := make(chan error, 1)
	go func() { second <- call(func() {}) }()
	deadline := time.Now().Add(10 * time.Second)
	for e.count(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the duplicate never waited on the first request's record")
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-second; !idempotency.IsDuplicate(err) {
		t.Fatalf("the duplicate got %v, want the unique violation of its record", err)
	}
	if v := e.count(`SELECT v FROM pt WHERE id = 1`); v != 1 {
		t.Errorf("v = %d, want 1: the duplicate must not write", v)
	}
	if n := e.count(`SELECT count(*) FROM idempotency_keys WHERE request_id = $1 AND response = '"done"'`, k.RequestID); n != 1 {
		t.Errorf("%d finished records, want 1", n)
	}
	if n := e.count(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'`); n != 0 {
		t.Errorf("%d connections left idle in a transaction", n)
	}
	if n := e.pool.Stat().TotalConns(); n != 2 {
		t.Errorf("the pool has %d connections, want its two (none destroyed)", n)
	}
}

// cancelWhileBlocked runs fn in a pipelined transaction while another transaction holds
// the row id of pt, cancels fn's context once the pipelined transaction waits on that
// lock, then releases the lock and returns what the transaction returned.
func cancelWhileBlocked(e *pipeEnv, id int, fn func(ctx context.Context, tx *db.Tx) error) error {
	t := e.t
	t.Helper()
	holder, err := e.owner.Begin(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(e.ctx)
	if _, err := holder.Exec(e.ctx, `SELECT 1 FROM pt WHERE id = $1 FOR UPDATE`, id); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- db.InPipelinedTx(ctx, e.pool, func(tx *db.Tx) error { return fn(ctx, tx) })
	}()
	deadline := time.Now().Add(10 * time.Second)
	for e.count(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the transaction never waited on the lock")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	err = <-done
	if rerr := holder.Rollback(e.ctx); rerr != nil {
		t.Fatal(rerr)
	}
	return err
}

// TestPipelinedTxCancelledWhileWaiting: a caller that gives up while its first batch
// waits on a lock gets an error, leaves nothing, and the pool keeps serving.
func TestPipelinedTxCancelledWhileWaiting(t *testing.T) {
	t.Parallel()
	e := newPipeEnv(t, 1)
	err := cancelWhileBlocked(e, 1, func(ctx context.Context, tx *db.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`UPDATE pt SET v = 5 WHERE id = 2`)
		b.Queue(`UPDATE pt SET v = 5 WHERE id = 1`) // waits on the holder
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		return tx.SendFinal(ctx, &pgx.Batch{})
	})
	if err == nil {
		t.Fatal("the cancelled transaction succeeded")
	}
	if v := e.count(`SELECT sum(v) FROM pt`); v != 0 {
		t.Errorf("the cancelled transaction wrote (sum %d)", v)
	}
	e.expectPoolServes()
}

// TestPipelinedTxCancelledInFinalBatch: a caller that gives up while its final batch
// waits on a lock must not have its writes committed after all. The COMMIT is already
// queued on the server behind the waiting statement, so dropping the connection is not
// enough: once the lock is released PostgreSQL would run it.
func TestPipelinedTxCancelledInFinalBatch(t *testing.T) {
	t.Parallel()
	e := newPipeEnv(t, 1)
	err := cancelWhileBlocked(e, 2, func(ctx context.Context, tx *db.Tx) error {
		if err := tx.SendBatch(ctx, increment(0)).Close(); err != nil {
			return err
		}
		b := &pgx.Batch{}
		b.Queue(`UPDATE pt SET v = 5 WHERE id = 2`) // waits on the holder
		b.Queue(`INSERT INTO parent VALUES (1)`)
		return tx.SendFinal(ctx, b)
	})
	t.Logf("cancelled in the final batch: %v", err)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("the cancelled transaction returned %v, want context.Canceled", err)
	}
	// Whatever the server still had queued has run by now.
	time.Sleep(200 * time.Millisecond)
	if v, n := e.count(`SELECT sum(v) FROM pt`), e.count(`SELECT count(*) FROM parent`); v != 0 || n != 0 {
		t.Errorf("the cancelled transaction committed (sum %d, %d parents)", v, n)
	}
	e.expectPoolServes()
}

// expectPoolServes checks that the pool still commits a transaction after a cancelled one.
func (e *pipeEnv) expectPoolServes() {
	t := e.t
	t.Helper()
	if err := db.InPipelinedTx(e.ctx, e.pool, func(tx *db.Tx) error { return tx.SendFinal(e.ctx, increment(0)) }); err != nil {
		t.Fatalf("the pool after a cancelled transaction: %v", err)
	}
	if v := e.count(`SELECT v FROM pt WHERE id = 1`); v != 1 {
		t.Errorf("v = %d, want 1", v)
	}
}
