package payouts_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"taxrefund/internal/db"
	"taxrefund/internal/dbtest"
	"taxrefund/internal/fault"
	"taxrefund/internal/ledger"
	"taxrefund/internal/payouts"
)

// TestSettleRaceTwoDesksOneForm: 32 cashiers at CKG-01 and CKG-02 (alternating) pay the
// same VERIFIED form at once, each with its own request_id. Exactly one pays; the 31
// others are told FORM_ALREADY_PAID naming the winner's payout; one payouts row and one
// payout_forms row. Five rounds, a fresh form each.
func TestSettleRaceTwoDesksOneForm(t *testing.T) {
	t.Parallel()
	e := newRaceEnv(t)
	doc := passport("E12345678", "GB")
	const rounds, racers = 5, 32
	for round := 1; round <= rounds; round++ {
		// G 110.00, F 20.00, N 90.00.
		f := e.verified(doc, line{1, "1000.00", "0.13"})
		payoutsBefore := e.count(`SELECT count(*) FROM payouts`)

		var (
			wg      sync.WaitGroup
			ready   sync.WaitGroup
			start   = make(chan struct{})
			results = make([]payouts.Payout, racers)
			errs    = make([]error, racers)
		)
		ready.Add(racers)
		for i := range racers {
			desk := []string{"CKG-01", "CKG-02"}[i%2]
			req := settleReq(desk, doc, payouts.Cash, "", f.Number)
			wg.Go(func() {
				ready.Done()
				<-start
				results[i], errs[i] = e.settle(req)
			})
		}
		ready.Wait()
		close(start)
		wg.Wait()

		winners, paid := 0, 0
		var winner payouts.Payout
		for i := range racers {
			if errs[i] == nil {
				winners++
				winner = results[i]
			}
		}
		for i := range racers {
			if errs[i] == nil {
				continue
			}
			fe, ok := fault.As(errs[i])
			if !ok || fe.Reason != "FORM_ALREADY_PAID" {
				t.Errorf("round %d racer %d: %v, want FORM_ALREADY_PAID", round, i, errs[i])
				continue
			}
			if fe.Metadata["payout_id"] != winner.ID.String() {
				t.Errorf("round %d racer %d: told payout %s paid, the winner is %s", round, i, fe.Metadata["payout_id"], winner.ID)
				continue
			}
			paid++
		}
		t.Logf("round %d: %d attempts, %d winner (payout %s at %s), %d told FORM_ALREADY_PAID with the winner's id",
			round, racers, winners, winner.ID, winner.DeskCode, paid)
		if winners != 1 {
			t.Fatalf("round %d: %d winners, want exactly 1", round, winners)
		}
		if paid != racers-1 {
			t.Errorf("round %d: %d losers named the winner, want %d", round, paid, racers-1)
		}
		if fixed(winner.Net) != "90.00" {
			t.Errorf("round %d: net %s, want 90.00", round, fixed(winner.Net))
		}
		if n := e.count(`SELECT count(*) FROM payouts`) - payoutsBefore; n != 1 {
			t.Errorf("round %d: %d new payouts rows, want 1", round, n)
		}
		if n := e.count(`SELECT count(*) FROM payout_forms WHERE form_id = $1 AND payout_id = $2`, f.ID, winner.ID); n != 1 {
			t.Errorf("round %d: %d payout_forms rows for the form, want 1", round, n)
		}
		if n := e.count(`SELECT count(*) FROM payout_forms WHERE form_id = $1`, f.ID); n != 1 {
			t.Errorf("round %d: %d payout_forms rows for the form, want 1", round, n)
		}
		if n := e.count(`SELECT count(*) FROM forms WHERE id = $1 AND state = 'REFUNDED' AND payout_id = $2`, f.ID, winner.ID); n != 1 {
			t.Errorf("round %d: the form is not REFUNDED by the winner", round)
		}
	}
	// Five payouts of N 90.00 in cash, G 110.00, F 20.00.
	cash := e.count(`SELECT count(*) FROM payouts`)
	if cash != rounds {
		t.Errorf("%d payouts in all, want %d", cash, rounds)
	}
	if n := e.count(`SELECT count(*) FROM journal_txns WHERE kind = 'REFUND_PAID'`); n != rounds {
		t.Errorf("%d REFUND_PAID txns, want %d", n, rounds)
	}
	e.wantBalances(map[string]string{
		"agency:AG-CQ:receivable":   "550.00",
		"agency:AG-CQ:fee_income":   "-100.00",
		"travellers:refund_payable": "0.00",
	})
	c1, c2 := e.posted("agency:AG-CQ:cash:CKG-01"), e.posted("agency:AG-CQ:cash:CKG-02")
	if got := fmt.Sprint(mustDec(t, c1).Add(mustDec(t, c2)).StringFixed(2)); got != "-450.00" {
		t.Errorf("cash paid at CKG-01 %s + CKG-02 %s = %s, want -450.00", c1, c2, got)
	}
	e.checkInvariants()
}

// TestSettleConcurrentFirstUseOfAgencyAccounts: a desk's ledger accounts are created on
// first use (ledger.Store.Accounts). When another request creates the same account at the
// same moment — two cashiers paying their first refunds at a new desk, or two servers —
// the payout must still go through. (With INSERT … ON CONFLICT DO NOTHING RETURNING UNION
// the existing rows, the insert waited for the other creator, did nothing, and the
// statement's snapshot did not see the row: "ensure accounts: … not created", an untyped
// error for a good request. Fixed since by ON CONFLICT DO UPDATE; this guards it.)
//
// The timing is deterministic: the test holds an uncommitted insert of the desk's cash
// account, lets the payout block on it, then commits.
func TestSettleConcurrentFirstUseOfAgencyAccounts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	doc := passport("E12345678", "GB")
	f := e.verified(doc, line{1, "1000.00", "0.13"})

	tx, err := e.pool.Begin(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(e.ctx) //nolint:errcheck // after Commit it is a no-op
	if _, err := tx.Exec(e.ctx, `INSERT INTO accounts (code) VALUES ('agency:AG-CQ:cash:CKG-01')`); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	var p payouts.Payout
	go func() {
		var err error
		p, err = e.settle(settleReq("CKG-01", doc, payouts.Cash, "", f.Number))
		done <- err
	}()
	// Wait until the payout is blocked on the uncommitted account row.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting int
		if err := e.pool.QueryRow(e.ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the payout never waited on the account row")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := tx.Commit(e.ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("a payout whose cash account another request created at the same moment failed: %v", err)
	}
	if fixed(p.Net) != "90.00" {
		t.Errorf("net %s, want 90.00", fixed(p.Net))
	}
	e.checkInvariants()
}

// TestSettleNeedsOneConnectionOnly: Settle reads the parameters (params.Cache.Get, which
// reloads through the pool when its copy is stale) from inside its transaction, so one
// payout holds a connection while it waits for a second. When every connection is held
// by payouts — 32 cashiers racing for one form on the 32-connection pool, the winner
// waiting for a connection, the 31 others waiting for the winner's row lock — nothing
// moves until the contexts expire. (Seen under `go test -race`: the 32-racer test hung
// for 10 minutes in params.Load ← Settle, with 31 goroutines in LockFormsByNumber.) In
// production the cache (30 s TTL) goes stale at every reload, and the loader holds the
// cache's mutex while it waits for a connection.
//
// Deterministic form: a pool of two connections, one held elsewhere; a payout must still
// complete on the one that is free.
func TestSettleNeedsOneConnectionOnly(t *testing.T) {
	t.Parallel()
	pool, err := db.Open(context.Background(), dbtest.NewURL(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	e := newEnvWith(t, pool, 0)
	doc := passport("E12345678", "GB")
	f := e.verified(doc, line{1, "1000.00", "0.13"})
	req := settleReq("CKG-01", doc, payouts.Cash, "", f.Number)
	if _, err := e.ledger.Accounts(e.ctx, pool, ledger.RefundPayable, ledger.AgencyPayable("AG-CQ"), ledger.Receivable("AG-CQ"),
		ledger.Cash("AG-CQ", "CKG-01"), ledger.FeeIncome("AG-CQ")); err != nil {
		t.Fatal(err)
	}

	held, err := pool.Acquire(e.ctx) // another request's connection
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
	defer cancel()
	_, err = e.payouts.Settle(ctx, req)
	held.Release()
	if err != nil {
		t.Fatalf("a payout with one free connection did not complete: %v", err)
	}
}
