package immediate_test

import (
	"fmt"
	"sync"
	"testing"

	"taxrefund/internal/immediate"
)

// TestConcurrentCaptureRunners: several servers run the capture job at the same moment
// (taxrefund serve on every machine of a high-availability setup). Each due prepayment
// is captured once: one CAPTURE instruction each, the runners' counts add up to the
// prepayments, and the ledger holds.
func TestConcurrentCaptureRunners(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.clock.Set(localNoon(t, "2026-03-09"))
	const prepayments = 8
	var ps []immediate.Prepayment
	for i := range prepayments {
		doc := passport(fmt.Sprintf("P70000%02d", i), "GB")
		f := e.issue("S-CXL-1", doc)
		ps = append(ps, e.mustPay(payReq("IFS-RP", f.Number, doc)))
	}
	e.clock.Set(localMidnight(t, "2026-04-30")) // every one long due

	const runners = 4
	counts := make([]int, runners)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			n, err := e.imm.Captures(e.ctx, fmt.Sprintf("runner %d", i))
			if err != nil {
				t.Errorf("runner %d: %v", i, err)
			}
			counts[i] = n
		}()
	}
	close(start)
	wg.Wait()
	total := 0
	for _, n := range counts {
		total += n
	}
	if total != prepayments {
		t.Errorf("the runners captured %v, %d in all; want %d", counts, total, prepayments)
	}
	for _, p := range ps {
		if st := e.prepaymentOf(p.FormID).State; st != immediate.Captured {
			t.Errorf("prepayment of %s is %s, want %s", p.FormNumber, st, immediate.Captured)
		}
	}
	if n := e.count(`SELECT count(*) FROM acquirer_outbox WHERE kind = 'CAPTURE'`); n != prepayments {
		t.Errorf("%d CAPTURE instructions, want %d", n, prepayments)
	}
	if n := e.count(`SELECT count(*) FROM (SELECT prepayment_id FROM acquirer_outbox WHERE kind = 'CAPTURE' GROUP BY prepayment_id HAVING count(*) > 1) x`); n != 0 {
		t.Errorf("%d prepayments with two CAPTURE instructions", n)
	}
	e.checkInvariants("concurrent captures")
}
