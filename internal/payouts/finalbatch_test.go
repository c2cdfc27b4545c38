package payouts_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"taxrefund/internal/dbtest"
	"taxrefund/internal/payouts"
	"taxrefund/internal/refund"
)

// refuser makes the server refuse the first times inserts into a table with SQLSTATE
// code, from a trigger: at the statement, or at COMMIT (a deferred constraint trigger).
// Its count is a sequence, which the refused transaction's rollback does not undo.
type refuser struct {
	t     *testing.T
	e     *env
	owner *pgxpool.Pool
}

func newRefuser(t *testing.T, e *env) *refuser {
	t.Helper()
	r := &refuser{t: t, e: e, owner: e.pool}
	r.exec(`
		CREATE SEQUENCE test_refusals;
		CREATE TABLE test_refusal (code text NOT NULL, times int NOT NULL);
		INSERT INTO test_refusal VALUES ('00000', 0);
		CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
		DECLARE r test_refusal;
		BEGIN
			SELECT * INTO r FROM test_refusal;
			IF nextval('test_refusals') <= r.times THEN
				RAISE EXCEPTION 'refused by the test' USING ERRCODE = r.code;
			END IF;
			RETURN NEW;
		END $$;`)
	return r
}

func (r *refuser) exec(sql string, args ...any) {
	r.t.Helper()
	if _, err := r.owner.Exec(r.e.ctx, sql, args...); err != nil {
		r.t.Fatalf("%s: %v", sql, err)
	}
}

// arm refuses the next times inserts into table with code, atCommit or at the statement.
func (r *refuser) arm(table, code string, times int, atCommit bool) {
	r.t.Helper()
	r.disarm(table)
	r.exec(`ALTER SEQUENCE test_refusals RESTART`)
	r.exec(`UPDATE test_refusal SET code = $1, times = $2`, code, times)
	if atCommit {
		r.exec(fmt.Sprintf(`CREATE CONSTRAINT TRIGGER test_refuse AFTER INSERT ON %s
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_refuse()`, table))
	} else {
		r.exec(fmt.Sprintf(`CREATE TRIGGER test_refuse BEFORE INSERT ON %s FOR EACH ROW EXECUTE FUNCTION test_refuse()`, table))
	}
}

func (r *refuser) disarm(table string) {
	r.t.Helper()
	r.exec(`DROP TRIGGER IF EXISTS test_refuse ON ` + table)
}

// refusals returns how many inserts the trigger has seen since arm.
func (r *refuser) refusals() int {
	r.t.Helper()
	var n int
	if err := r.owner.QueryRow(r.e.ctx, `SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM test_refusals`).Scan(&n); err != nil {
		r.t.Fatal(err)
	}
	return n
}

// sameIdleConn fails unless pool's only connection is still the server process pid and
// idle: the failed transaction was rolled back before the connection went back.
func sameIdleConn(t *testing.T, e *env, pool *pgxpool.Pool, pid int32) {
	t.Helper()
	if n := pool.Stat().TotalConns(); n != 1 {
		t.Errorf("the services' pool has %d connections, want its one", n)
	}
	c, err := pool.Acquire(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	if st := c.Conn().PgConn().TxStatus(); st != 'I' {
		t.Errorf("the connection is in transaction status %q, want idle", st)
	}
	var now int32
	if err := c.QueryRow(e.ctx, `SELECT pg_backend_pid()`).Scan(&now); err != nil {
		t.Fatal(err)
	}
	if now != pid {
		t.Errorf("the connection was replaced (backend %d, was %d)", now, pid)
	}
}

// TestFinalBatchFailures: a payout or a verification whose writes the server refuses, at
// a statement of the final batch or at the COMMIT behind it, returns the server's error,
// writes nothing (not even its idempotency record: the same request succeeds next), and
// leaves its connection idle in the pool. A serialization failure at either place is
// retried, and the call succeeds once.
func TestFinalBatchFailures(t *testing.T) {
	t.Parallel()
	url := dbtest.NewURL(t)
	pool, _ := dbtest.OpenCountingPool(t, url, 1)
	e := newEnvWithPools(t, dbtest.OpenPool(t, url, ""), pool, time.Hour)
	r := newRefuser(t, e)
	var pid int32
	if err := pool.QueryRow(e.ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		call     string // "settle" or "verify"
		table    string
		code     string
		atCommit bool
	}{
		{"settle", "payouts", "23514", false},
		{"settle", "payouts", "23514", true},
		{"settle", "payouts", "40001", false},
		{"settle", "payouts", "40001", true},
		{"verify", "pending_resolutions", "23514", false},
		{"verify", "pending_resolutions", "40P01", true},
	} {
		name := fmt.Sprintf("%s, %s %s at commit=%v", c.call, c.table, c.code, c.atCommit)
		doc := passport(fmt.Sprintf("E7100%04d", i), "GB")
		f := e.issue("S-JFB-1", doc, line{1, "1000.00", "0.13"})
		if c.call == "settle" {
			f = e.verify(f, doc, nil)
		}
		req := settleReq("CKG-01", doc, payouts.BankCard, "6222020200112233", f.Number)
		call := func() error {
			if c.call == "settle" {
				_, err := e.settle(req)
				return err
			}
			_, err := e.tryVerify("CKG", f.Number, doc, map[int]int32{1: 1})
			return err
		}
		before := e.counts()
		r.arm(c.table, c.code, 1, c.atCommit)
		err := call()
		if c.code == "40001" || c.code == "40P01" {
			if err != nil {
				t.Errorf("%s: %v; want the retry to succeed", name, err)
			}
			if n := r.refusals(); n != 2 {
				t.Errorf("%s: %d attempts reached the trigger, want 2", name, n)
			}
			if c.call == "settle" {
				if n := e.count(`SELECT count(*) FROM payout_forms pf JOIN forms f ON f.id = pf.form_id WHERE f.number = $1`, f.Number); n != 1 {
					t.Errorf("%s: the form is on %d payouts, want 1", name, n)
				}
			}
			r.disarm(c.table)
			sameIdleConn(t, e, pool, pid)
			continue
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != c.code {
			t.Errorf("%s: got %v, want SQLSTATE %s", name, err, c.code)
		}
		sameCounts(t, before, e.counts())
		want := refund.Issued
		if c.call == "settle" {
			want = refund.Verified
		}
		if st := refund.State(e.states()[f.Number]); st != want {
			t.Errorf("%s: the form is %s, want %s", name, st, want)
		}
		sameIdleConn(t, e, pool, pid)
		r.disarm(c.table)
		if err := call(); err != nil {
			t.Errorf("%s: the same request after the refusal: %v", name, err)
		}
	}
	e.checkInvariants()
}
