package immediate_test

import (
	"fmt"
	"sort"
	"sync"
	"testing"

	"github.com/shopspring/decimal"

	"taxrefund/internal/fault"
	"taxrefund/internal/immediate"
	"taxrefund/internal/refund"
)

// race runs fn(i) for i in [0, n) on n goroutines released together.
func race(n int, fn func(i int)) {
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			fn(i)
		}()
	}
	close(start)
	wg.Wait()
}

func tallyString(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := ""
	for _, k := range keys {
		s += fmt.Sprintf(" %s×%d", k, m[k])
	}
	return s
}

// TestTwoRefundPointsRacePrepay sends 16 prepayments of one form at once, alternating
// IFS-RP and a second refund point of the same agency and block, each with its own
// request_id: exactly one prepayment, one ledger transaction, the other 15 refused
// ALREADY_PREPAID. Then 16 copies of one request at once: one prepayment, 16 identical
// answers. Several rounds, each on a fresh form.
func TestTwoRefundPointsRacePrepay(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if _, err := e.pool.Exec(e.ctx, `INSERT INTO desks (code, agency_code, kind, port_code, block_code, name)
		VALUES ('IFS-RP2', 'AG-CD', 'REFUND_POINT', NULL, 'CXL', 'IFS point 2')`); err != nil {
		t.Fatal(err)
	}
	const n, rounds = 16, 4
	doc := passport("P7000007", "GB")
	tally := map[string]int{}
	wins := map[string]int{}
	for round := range rounds {
		f := e.issue("S-CXL-1", doc)
		reqs := make([]immediate.PayRequest, n)
		for i := range reqs {
			desk := []string{"IFS-RP", "IFS-RP2"}[i%2]
			reqs[i] = payReq(desk, f.Number, doc)
		}
		out := make([]immediate.Prepayment, n)
		errs := make([]error, n)
		race(n, func(i int) { out[i], errs[i] = e.pay(reqs[i]) })
		winner := -1
		for i, err := range errs {
			tally[reasonOf(err)]++
			if err == nil {
				if winner >= 0 {
					t.Errorf("round %d: requests %d and %d both prepaid the form", round, winner, i)
				}
				winner = i
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no request won: %v", round, errs)
		}
		wins[reqs[winner].DeskCode]++
		w := out[winner]
		for i, err := range errs {
			if i == winner {
				continue
			}
			fe, ok := fault.As(err)
			if !ok || fe.Reason != "ALREADY_PREPAID" || fe.Kind != fault.Precondition {
				t.Errorf("round %d request %d: %v, want ALREADY_PREPAID", round, i, err)
				continue
			}
			if id, ok := fe.Metadata["prepayment_id"]; ok && id != w.ID.String() {
				t.Errorf("round %d request %d: ALREADY_PREPAID names %s, the winner is %s", round, i, id, w.ID)
			}
		}
		if got := e.count(`SELECT count(*) FROM prepayments WHERE form_id = $1`, f.ID); got != 1 {
			t.Errorf("round %d: %d prepayments of the form, want 1", round, got)
		}
		if got := e.count(`SELECT count(*) FROM journal_txns WHERE kind = 'IMMEDIATE_REFUND_PAID' AND ref = $1`, f.Number); got != 1 {
			t.Errorf("round %d: %d IMMEDIATE_REFUND_PAID txns, want 1", round, got)
		}
		if got := e.count(`SELECT count(*) FROM audit_events WHERE action = 'IMMEDIATE_REFUND_PAID' AND object = $1`, f.Number); got != 1 {
			t.Errorf("round %d: %d audit events, want 1", round, got)
		}
	}
	if got := e.count(`SELECT count(*) FROM idempotency_keys WHERE method = 'PayImmediateRefund'`); got != rounds {
		t.Errorf("%d idempotency records, want %d (refusals write none)", got, rounds)
	}
	t.Logf("distinct request_ids: %d rounds × %d attempts; outcomes:%s; winners by refund point %v", rounds, n, tallyString(tally), wins)
	cash1, cash2 := e.posted("agency:AG-CD:cash:IFS-RP"), e.posted("agency:AG-CD:cash:IFS-RP2")
	want1, want2 := decimal.NewFromInt(int64(-120*wins["IFS-RP"])).StringFixed(2), decimal.NewFromInt(int64(-120*wins["IFS-RP2"])).StringFixed(2)
	if cash1 != want1 || cash2 != want2 {
		t.Errorf("cash IFS-RP %s, IFS-RP2 %s; want %s and %s", cash1, cash2, want1, want2)
	}
	e.wantBalances("distinct", map[string]string{"agency:AG-CD:prepayments": fmt.Sprintf("%d.00", 120*rounds)})

	// One request sent 16 times at once.
	sameTally := map[string]int{}
	for round := range rounds {
		f := e.issue("S-CXL-1", doc)
		req := payReq([]string{"IFS-RP", "IFS-RP2"}[round%2], f.Number, doc)
		out := make([]immediate.Prepayment, n)
		errs := make([]error, n)
		race(n, func(i int) { out[i], errs[i] = e.pay(req) })
		for i, err := range errs {
			sameTally[reasonOf(err)]++
			if err != nil {
				t.Errorf("round %d copy %d: %v", round, i, err)
				continue
			}
			if a, b := asJSON(t, out[i]), asJSON(t, out[0]); errs[0] == nil && a != b {
				t.Errorf("round %d copy %d answers differently:\n\t%s\n\t%s", round, i, a, b)
			}
		}
		if got := e.count(`SELECT count(*) FROM prepayments WHERE form_id = $1`, f.ID); got != 1 {
			t.Errorf("same request round %d: %d prepayments, want 1", round, got)
		}
		if got := e.count(`SELECT count(*) FROM journal_txns WHERE kind = 'IMMEDIATE_REFUND_PAID' AND ref = $1`, f.Number); got != 1 {
			t.Errorf("same request round %d: %d txns, want 1", round, got)
		}
	}
	t.Logf("one request_id: %d rounds × %d copies; outcomes:%s", rounds, n, tallyString(sameTally))
	e.wantBalances("all", map[string]string{"agency:AG-CD:prepayments": fmt.Sprintf("%d.00", 240*rounds)})
	e.checkInvariants("prepay race")
}

// TestDailyCapRace prepays 36000.00 for a traveller, then races 8 prepayments of
// 14000.00 each (on different forms, at IFS-RP and JFB-RP): only one fits under the
// 50000.00 cap.
func TestDailyCapRace(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	doc := passport("P7100007", "GB")
	big := []line{{1, "200000.00", "0.13"}}  // N 18000.00
	edge := []line{{1, "155555.56", "0.13"}} // N 14000.00
	for _, store := range []string{"S-CXL-1", "S-JFB-1"} {
		f := e.issue(store, doc, big...)
		r := payReq(map[string]string{"S-CXL-1": "IFS-RP", "S-JFB-1": "JFB-RP"}[store], f.Number, doc)
		r.PreAuth.Authorized = decimal.RequireFromString("18000.00")
		rehash(&r)
		e.mustPay(r)
	}
	const n = 8
	reqs := make([]immediate.PayRequest, n)
	for i := range reqs {
		store, desk := "S-CXL-1", "IFS-RP"
		if i%2 == 1 {
			store, desk = "S-JFB-1", "JFB-RP"
		}
		f := e.issue(store, doc, edge...)
		reqs[i] = payReq(desk, f.Number, doc)
		reqs[i].PreAuth.Authorized = decimal.RequireFromString("14000.00")
		rehash(&reqs[i])
	}
	errs := make([]error, n)
	race(n, func(i int) { _, errs[i] = e.pay(reqs[i]) })
	tally := map[string]int{}
	for _, err := range errs {
		tally[reasonOf(err)]++
	}
	t.Logf("cap race: %d attempts; outcomes:%s", n, tallyString(tally))
	if tally["OK"] != 1 || tally["DAILY_CAP_EXCEEDED"] != n-1 {
		t.Errorf("outcomes%s, want one OK and %d DAILY_CAP_EXCEEDED", tallyString(tally), n-1)
	}
	var total string
	if err := e.pool.QueryRow(e.ctx, `SELECT to_char(sum(net_refund), 'FM999999990.00') FROM prepayments`).Scan(&total); err != nil {
		t.Fatal(err)
	}
	if total != "50000.00" {
		t.Errorf("prepaid today %s, want 50000.00", total)
	}
	e.checkInvariants("cap race")
}

// TestReturnRacesCapture hands back prepayments at the moment the capture job runs on
// their due date: each prepayment ends either RETURNED (and the job skipped it) or
// CAPTURED (and the return was refused), never both, with one instruction each.
func TestReturnRacesCapture(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	doc := passport("P7200007", "GB")
	const n = 8
	fs := make([]string, n)
	for i := range fs {
		f, _ := e.prepaid(doc)
		fs[i] = f.Number
	}
	e.clock.Set(localMidnight(t, "2026-04-01"))
	errs := make([]error, n)
	var captured int
	race(n+1, func(i int) {
		if i == n {
			captured = e.captures()
			return
		}
		_, errs[i] = e.returnPrepayment("IFS-RP", fs[i])
	})
	tally := map[string]int{}
	returned := 0
	for _, err := range errs {
		tally[reasonOf(err)]++
		if err == nil {
			returned++
		} else if r := reasonOf(err); r != "PREPAYMENT_STATE" {
			t.Errorf("return: %v, want OK or PREPAYMENT_STATE", err)
		}
	}
	// A capture the job skipped (locked by a return) is done by its next run, unless returned.
	captured += e.captures()
	t.Logf("return vs capture: %d returns racing the job; returns%s; captured %d", n, tallyString(tally), captured)
	if returned+captured != n {
		t.Errorf("%d returned + %d captured, want %d", returned, captured, n)
	}
	if got := e.count(`SELECT count(*) FROM prepayments WHERE state = 'RETURNED'`); got != returned {
		t.Errorf("%d RETURNED rows, %d returns answered OK", got, returned)
	}
	if got := e.count(`SELECT count(*) FROM acquirer_outbox`); got != n {
		t.Errorf("%d instructions, want %d (one per prepayment)", got, n)
	}
	if got := e.count(`SELECT count(*) FROM (SELECT prepayment_id FROM acquirer_outbox GROUP BY 1 HAVING count(*) > 1) x`); got != 0 {
		t.Errorf("%d prepayments with two instructions", got)
	}
	e.wantBalances("return vs capture", map[string]string{
		"agency:AG-CD:prepayments":   "0.00",
		"agency:AG-CD:card_captures": fmt.Sprintf("%d.00", 120*captured),
		"agency:AG-CD:cash:IFS-RP":   decimal.NewFromInt(int64(-120 * captured)).StringFixed(2),
	})
	for _, num := range fs {
		if st := e.formState(num); st != refund.Issued {
			t.Errorf("form %s, want ISSUED", st)
		}
	}
	e.checkInvariants("return vs capture")
}
