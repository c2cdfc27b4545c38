package payouts_test

import (
	"testing"
	"time"

	"taxrefund/internal/dbtest"
	"taxrefund/internal/payouts"
)

// TestDeskCallsTakeTwoRoundTrips: once the caches are warm (prepared statements, ledger
// accounts, desks, parameters), a customs verification and a payout each talk
// to PostgreSQL twice: BEGIN, the party and the read batch in one round trip; the writes
// and COMMIT in the other. The services run on a one-connection pool, so that the call
// measured uses the connection the warm-up prepared its statements on.
func TestDeskCallsTakeTwoRoundTrips(t *testing.T) {
	t.Parallel()
	url := dbtest.NewURL(t)
	pool, trips := dbtest.OpenCountingPool(t, url, 1)
	e := newEnvWithPools(t, dbtest.OpenPool(t, url, ""), pool, time.Hour)
	doc := passport("E70000007", "GB")
	warm := e.issue("S-JFB-1", doc, line{1, "1000.00", "0.13"})
	form := e.issue("S-JFB-1", doc, line{1, "1000.00", "0.13"})

	e.verify(warm, doc, nil)
	trips.Reset()
	e.verify(form, doc, nil)
	check(t, "VerifyExport", trips)

	e.mustSettle(settleReq("CKG-01", doc, payouts.BankCard, "6222020200112233", warm.Number))
	trips.Reset()
	e.mustSettle(settleReq("CKG-01", doc, payouts.BankCard, "6222020200112233", form.Number))
	check(t, "SettleRefund (bank card)", trips)

	// Cash also takes the traveller's cash lock and reads the day's cash, in the first batch.
	warm, form = e.verified(doc, line{1, "1000.00", "0.13"}), e.verified(doc, line{1, "1000.00", "0.13"})
	e.mustSettle(settleReq("CKG-01", doc, payouts.Cash, "", warm.Number))
	trips.Reset()
	e.mustSettle(settleReq("CKG-01", doc, payouts.Cash, "", form.Number))
	check(t, "SettleRefund (cash)", trips)
}

func check(t *testing.T, call string, trips *dbtest.RoundTrips) {
	t.Helper()
	n, what := trips.Traced()
	t.Logf("%s: %d round trips traced, %d on the wire", call, n, trips.Wire())
	for _, w := range what {
		t.Logf("  %s", w)
	}
	if n != 2 {
		t.Errorf("%s took %d round trips (traced), want 2", call, n)
	}
	if w := trips.Wire(); w != 2 {
		t.Errorf("%s took %d round trips (on the wire), want 2", call, w)
	}
}
