package payouts_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"taxrefund/internal/fault"
	"taxrefund/internal/forms"
	"taxrefund/internal/payouts"
	"taxrefund/internal/refund"
)

// mixSeedEnv overrides TestSettleMix's seed, to replay a failing run.
const mixSeedEnv = "TAXREFUND_MIX_SEED"

// mixForm is the model's view of a form.
type mixForm struct {
	number    string
	id        uuid.UUID
	traveller int
	store     string
	lines     []oracleLine
	deadline  string // local date, YYYY-MM-DD
	state     refund.State
	confirmed []int32
	gross     decimal.Decimal // G
	confGross decimal.Decimal // G'
	port      string          // where customs confirmed the export
	payout    uuid.UUID
}

// mixModel is what the test expects the database to hold.
type mixModel struct {
	forms []*mixForm
	// cash paid by traveller and local day ("2|2026-03-10").
	cash map[string]decimal.Decimal
	// agency totals and what each pay account paid.
	receivable map[string]decimal.Decimal
	feeIncome  map[string]decimal.Decimal
	paid       map[string]decimal.Decimal // account code → N paid from it
	payouts    int
	tally      map[string]int
}

func (m *mixModel) where(pred func(*mixForm) bool) []*mixForm {
	var out []*mixForm
	for _, f := range m.forms {
		if pred(f) {
			out = append(out, f)
		}
	}
	return out
}

// TestSettleMix runs a seeded, reproducible random mix of ~400 operations (issue, void,
// verify with random partial or zero confirmations, settle random subsets with random
// methods, and clock advances with expiry) over 6 travellers, 3 stores, desks CKG-01,
// CKG-02 and TFU-01 and customs at CKG and TFU. Every operation's outcome is predicted by
// a model (amounts by an independent oracle); at the end the database must match the
// model form by form and account by account, and every invariant must hold.
func TestSettleMix(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(mixSeedEnv); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", mixSeedEnv, s, err)
		}
		seed = v
	}
	t.Logf("seed %d (replay: %s=%d go test -run TestSettleMix ./internal/payouts/)", seed, mixSeedEnv, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	e := newEnv(t)
	travellers := []refund.Document{
		passport("E10000001", "GB"),
		passport("X20000002", "US"),
		passport("X20000002", "CA"), // same number, another country: another traveller
		{Type: refund.HKMacaoPermit, Number: "H30000003", IssuingCountry: "CN"},
		passport("P40000004", "DE"),
		passport("J50000005", "JP"),
	}
	stores := []string{"S-JFB-1", "S-JFB-2", "S-CXL-1"}
	desks := map[string]string{"CKG-01": "AG-CQ", "CKG-02": "AG-CQ", "TFU-01": "AG-CD"}
	deskCodes := []string{"CKG-01", "CKG-02", "TFU-01"}
	deskPort := map[string]string{"CKG-01": "CKG", "CKG-02": "CKG", "TFU-01": "TFU"}
	portDesks := map[string][]string{"CKG": {"CKG-01", "CKG-02"}, "TFU": {"TFU-01"}}
	ports := []string{"CKG", "TFU"}
	cashCap := decimal.RequireFromString("20000.00")

	m := &mixModel{
		cash: map[string]decimal.Decimal{}, receivable: map[string]decimal.Decimal{},
		feeIncome: map[string]decimal.Decimal{}, paid: map[string]decimal.Decimal{}, tally: map[string]int{},
	}
	pick := func(n int) int { return rng.IntN(n) }
	chance := func(p float64) bool { return rng.Float64() < p }
	cents := func(lo, hi int64) string { // a random amount in [lo, hi] yuan, to the fen
		c := lo*100 + rng.Int64N((hi-lo)*100+1)
		return decimal.New(c, -2).StringFixed(2)
	}
	today := func() string { return localDay(e.clock.Now()) }
	var lastSettle *payouts.SettleRequest
	var lastPayout string

	// fail reports an unexpected outcome of operation i and stops: later predictions
	// would be wrong anyway.
	const ops = 400
	for i := 1; i <= ops; i++ {
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("op %d (seed %d): %s", i, seed, fmt.Sprintf(format, args...))
		}
		// expectFault checks err against the predicted refusal.
		expectFault := func(what string, err error, reason string) *fault.Error {
			t.Helper()
			fe, ok := fault.As(err)
			if !ok || fe.Reason != reason {
				fail("%s: got %v, want %s", what, err, reason)
			}
			m.tally[what+" → "+reason]++
			return fe
		}
		issued := m.where(func(f *mixForm) bool { return f.state == refund.Issued })
		r := rng.IntN(100)
		// Twice a run the clock jumps past every deadline so far (91 to 120 days), so that
		// every run sees forms expire; the rest is random.
		bigJump := i == ops/2 || i == ops*4/5
		if bigJump {
			r = 99
		}
		switch {
		case r < 28 || len(m.forms) < 3: // issue
			tr, store := pick(len(travellers)), stores[pick(len(stores))]
			var lines []line
			var olines []oracleLine
			for j := range 1 + pick(3) {
				amount := cents(1, 3000)
				switch {
				case j == 0 && chance(0.3):
					amount = cents(100000, 300000) // N 6,000–27,000: in cash, the cap bites now and then
				case j == 0:
					amount = cents(200, 3000) // the first line alone reaches the 200.00 minimum
				}
				vat := []string{"0.13", "0.09"}[pick(2)]
				qty := int32(1 + pick(5))
				lines = append(lines, line{qty, amount, vat})
				olines = append(olines, oracleLine{qty, amount, vat})
			}
			f, err := e.tryIssue(store, travellers[tr], lines...)
			if err != nil {
				fail("issue: %v", err)
			}
			want := oracle(olines, nil)
			if fixed(f.Eligible) != fixed(want.a) || fixed(f.Gross) != fixed(want.g) {
				fail("issue: A %s G %s, oracle %s %s", fixed(f.Eligible), fixed(f.Gross), fixed(want.a), fixed(want.g))
			}
			deadline := e.clock.Now().In(shanghai).AddDate(0, 0, 90).Format(time.DateOnly)
			if got := refund.FormatDate(f.ExportDeadline); got != deadline {
				fail("issue: deadline %s, want %s", got, deadline)
			}
			m.forms = append(m.forms, &mixForm{number: f.Number, id: f.ID, traveller: tr, store: store, lines: olines,
				deadline: deadline, state: refund.Issued, gross: f.Gross})
			m.tally["issue → ISSUED"]++

		case r < 35: // void
			f := m.forms[pick(len(m.forms))]
			if len(issued) > 0 && chance(0.7) {
				f = issued[pick(len(issued))]
			}
			store := f.store
			if chance(0.15) {
				store = stores[pick(len(stores))]
			}
			_, err := e.forms.Void(e.ctx, forms.VoidRequest{
				Idem:      forms.Idempotency{Caller: "store/" + store, RequestID: uuid.New(), Hash: []byte(f.number)},
				StoreCode: store, Number: f.number, Reason: "goods returned",
			})
			switch {
			case store != f.store:
				expectFault("void", err, "FORM_NOT_FOUND")
			case f.state != refund.Issued:
				expectFault("void", err, "FORM_STATE")
			case err != nil:
				fail("void: %v", err)
			default:
				f.state = refund.Voided
				m.tally["void → VOIDED"]++
			}

		case r < 60: // verify
			f := m.forms[pick(len(m.forms))]
			if len(issued) > 0 && chance(0.6) {
				f = issued[pick(len(issued))]
			}
			presented := f.traveller
			if chance(0.08) {
				presented = (f.traveller + 1 + pick(len(travellers)-1)) % len(travellers)
			}
			confirmed := make([]int32, len(f.lines))
			byLine := map[int]int32{}
			zero := chance(0.15)
			units := false
			for j, l := range f.lines {
				switch {
				case zero:
				case chance(0.5):
					confirmed[j] = l.qty
				default:
					confirmed[j] = int32(pick(int(l.qty) + 1))
				}
				byLine[j+1] = confirmed[j]
				units = units || confirmed[j] > 0
			}
			port := ports[pick(len(ports))]
			got, err := e.tryVerify(port, f.number, travellers[presented], byLine)
			switch {
			case presented != f.traveller:
				expectFault("verify", err, "DOCUMENT_MISMATCH")
			case f.state != refund.Issued:
				expectFault("verify", err, "FORM_STATE")
			case today() > f.deadline:
				expectFault("verify", err, "EXPORT_WINDOW_CLOSED")
			case err != nil:
				fail("verify: %v", err)
			default:
				want := oracle(f.lines, confirmed)
				wantState := refund.Verified
				if !units {
					wantState = refund.Rejected
				}
				if got.State != wantState || fixed(got.Verification.Eligible) != fixed(want.a) || fixed(got.Verification.Gross) != fixed(want.g) {
					fail("verify %v of %v: %s A' %s G' %s, want %s %s %s", confirmed, f.lines, got.State,
						fixed(got.Verification.Eligible), fixed(got.Verification.Gross), wantState, fixed(want.a), fixed(want.g))
				}
				f.state, f.confirmed, f.confGross, f.port = wantState, confirmed, want.g, port
				m.tally["verify → "+string(wantState)]++
			}

		case r < 85: // settle
			tr := pick(len(travellers))
			if payable := m.where(func(f *mixForm) bool { return f.state == refund.Verified }); len(payable) > 0 && chance(0.85) {
				tr = payable[pick(len(payable))].traveller
			}
			verified := m.where(func(f *mixForm) bool { return f.traveller == tr && f.state == refund.Verified })
			others := m.where(func(f *mixForm) bool { return f.traveller == tr && f.state != refund.Verified })
			var chosen []*mixForm
			rng.Shuffle(len(verified), func(a, b int) { verified[a], verified[b] = verified[b], verified[a] })
			if len(verified) > 0 && chance(0.95) { // mostly forms confirmed at one port
				port := verified[0].port
				verified = slices.DeleteFunc(verified, func(f *mixForm) bool { return f.port != port })
			}
			if len(verified) > 0 {
				chosen = verified[:1+pick(min(6, len(verified)))]
			}
			if len(others) > 0 && (len(chosen) == 0 || chance(0.1)) {
				chosen = append(chosen, others[pick(len(others))])
			}
			if len(chosen) == 0 {
				m.tally["settle skipped: traveller has no form"]++
				continue
			}
			presented := tr
			if chance(0.05) {
				presented = (tr + 1 + pick(len(travellers)-1)) % len(travellers)
			}
			desk := deskCodes[pick(len(deskCodes))]
			if len(chosen) > 0 && chosen[0].port != "" && chance(0.9) { // mostly the desk at the port of export
				at := portDesks[chosen[0].port]
				desk = at[pick(len(at))]
			}
			method, account := payouts.Cash, ""
			cashToday := m.cash[fmt.Sprintf("%d|%s", tr, today())].IsPositive()
			switch x := rng.IntN(10); {
			case cashToday && x < 8: // back for more cash the same day
			case x >= 8:
				method, account = payouts.Mobile, fmt.Sprintf("wx%08d", rng.IntN(1e8))
			case x >= 5:
				method, account = payouts.BankCard, fmt.Sprintf("6222%012d", rng.Int64N(1e12))
			}
			numbers := make([]string, len(chosen))
			for j, f := range chosen {
				numbers[j] = f.number
			}
			req := settleReq(desk, travellers[presented], method, account, numbers...)
			got, err := e.settle(req)

			// The prediction: the document first, then the first form (by id) that is not
			// VERIFIED, then the cash cap.
			byID := slices.Clone(chosen)
			sort.Slice(byID, func(a, b int) bool { return bytes.Compare(byID[a].id[:], byID[b].id[:]) < 0 })
			var notVerified *mixForm
			for _, f := range byID {
				if f.state != refund.Verified {
					notVerified = f
					break
				}
			}
			var wrongPort *mixForm
			for _, f := range byID {
				if f.port != deskPort[desk] {
					wrongPort = f
					break
				}
			}
			var shares []share
			var gross, fee, net decimal.Decimal
			for _, f := range chosen {
				s := oracle(f.lines, f.confirmed)
				shares = append(shares, s)
				gross, fee, net = gross.Add(s.g), fee.Add(s.f), net.Add(s.n)
			}
			cashKey := fmt.Sprintf("%d|%s", tr, today())
			switch {
			case presented != tr:
				expectFault("settle", err, "DOCUMENT_MISMATCH")
			case notVerified != nil && notVerified.state == refund.Refunded:
				fe := expectFault("settle", err, "FORM_ALREADY_PAID")
				if fe.Metadata["payout_id"] != notVerified.payout.String() || fe.Metadata["form_number"] != notVerified.number {
					fail("settle: FORM_ALREADY_PAID %v, want form %s payout %s", fe.Metadata, notVerified.number, notVerified.payout)
				}
			case notVerified != nil:
				fe := expectFault("settle", err, "FORM_NOT_VERIFIED")
				if fe.Metadata["state"] != string(notVerified.state) || fe.Metadata["form_number"] != notVerified.number {
					fail("settle: FORM_NOT_VERIFIED %v, want form %s %s", fe.Metadata, notVerified.number, notVerified.state)
				}
			case wrongPort != nil:
				fe := expectFault("settle", err, "WRONG_PORT")
				if fe.Metadata["form_number"] != wrongPort.number || fe.Metadata["export_port"] != wrongPort.port || fe.Metadata["desk_port"] != deskPort[desk] {
					fail("settle: WRONG_PORT %v, want form %s confirmed at %s, desk at %s", fe.Metadata, wrongPort.number, wrongPort.port, deskPort[desk])
				}
			case method == payouts.Cash && m.cash[cashKey].Add(net).GreaterThan(cashCap):
				fe := expectFault("settle", err, "CASH_CAP_EXCEEDED")
				if fe.Metadata["cash_paid_today"] != fixed(m.cash[cashKey]) {
					fail("settle: cash_paid_today %q, want %s", fe.Metadata["cash_paid_today"], fixed(m.cash[cashKey]))
				}
			case err != nil:
				fail("settle %v: %v", numbers, err)
			default:
				if fixed(got.Gross) != fixed(gross) || fixed(got.Fee) != fixed(fee) || fixed(got.Net) != fixed(net) || len(got.Forms) != len(chosen) {
					fail("settle: G %s F %s N %s (%d forms), oracle %s %s %s (%d)", fixed(got.Gross), fixed(got.Fee), fixed(got.Net),
						len(got.Forms), fixed(gross), fixed(fee), fixed(net), len(chosen))
				}
				for j, f := range chosen {
					idx := slices.IndexFunc(got.Forms, func(s payouts.FormShare) bool { return s.Number == f.number })
					if idx < 0 {
						fail("settle: no share for %s", f.number)
					}
					s := got.Forms[idx]
					if fixed(s.Gross) != fixed(shares[j].g) || fixed(s.Fee) != fixed(shares[j].f) || fixed(s.Net) != fixed(shares[j].n) {
						fail("settle: share of %s G %s F %s N %s, oracle %s %s %s", f.number, fixed(s.Gross), fixed(s.Fee), fixed(s.Net),
							fixed(shares[j].g), fixed(shares[j].f), fixed(shares[j].n))
					}
					f.state, f.payout = refund.Refunded, got.ID
				}
				agency := desks[desk]
				payAcct := "agency:" + agency + ":transfers"
				if method == payouts.Cash {
					payAcct = "agency:" + agency + ":cash:" + desk
					m.cash[cashKey] = m.cash[cashKey].Add(net)
				}
				m.paid[payAcct] = m.paid[payAcct].Add(net)
				m.receivable[agency] = m.receivable[agency].Add(gross)
				m.feeIncome[agency] = m.feeIncome[agency].Add(fee)
				m.payouts++
				lastSettle, lastPayout = &req, asJSON(t, got)
				m.tally["settle → paid "+string(method)]++
			}

		case r < 88: // retry the last payout
			if lastSettle == nil {
				m.tally["retry skipped: no payout yet"]++
				continue
			}
			before := e.counts()
			got, err := e.settle(*lastSettle)
			if err != nil {
				fail("retry of payout: %v", err)
			}
			if a := asJSON(t, got); a != lastPayout {
				fail("retry of payout answered\n%s\nwant\n%s", a, lastPayout)
			}
			sameCounts(t, before, e.counts())
			m.tally["retry → same payout"]++

		default: // the clock moves; the expiry job usually runs
			// Mostly hours (several payouts share a local day, for the cash cap), some
			// days, now and then a month or two (past export deadlines).
			step := time.Duration(1+pick(12))*time.Hour + time.Duration(pick(60))*time.Minute
			switch x := rng.IntN(100); {
			case bigJump:
				step = time.Duration(91+pick(30)) * 24 * time.Hour
			case x >= 92:
				step = time.Duration(30+pick(41)) * 24 * time.Hour
			case x >= 80:
				step = time.Duration(1+pick(7)) * 24 * time.Hour
			}
			e.clock.Set(e.clock.Now().Add(step))
			if chance(0.4) && !bigJump {
				m.tally["clock moves, no expiry run"]++
				continue
			}
			due := m.where(func(f *mixForm) bool { return f.state == refund.Issued && f.deadline < today() })
			n, err := e.forms.Expire(e.ctx, "mix")
			if err != nil || n != len(due) {
				fail("expire on %s: %d, %v; want %d", today(), n, err, len(due))
			}
			for _, f := range due {
				f.state = refund.Expired
			}
			m.tally["expire → EXPIRED"] += n
			m.tally["expiry runs"]++
		}
	}

	// The database matches the model, form by form.
	states := e.states()
	wantCount, gotCount := map[string]int{}, map[string]int{}
	for _, f := range m.forms {
		wantCount[string(f.state)]++
		if states[f.number] != string(f.state) {
			t.Errorf("form %s is %s, the model says %s", f.number, states[f.number], f.state)
		}
	}
	for _, s := range states {
		gotCount[s]++
	}
	if fmt.Sprint(gotCount) != fmt.Sprint(wantCount) {
		t.Errorf("forms by state %v, the model says %v", gotCount, wantCount)
	}
	var keys []string
	for k := range m.tally {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "\n\t%-45s %d", k, m.tally[k])
	}
	t.Logf("%d operations by kind and outcome:%s", ops, b.String())
	t.Logf("forms by state at the end: %v; %d payouts; clock ends at %s", wantCount, m.payouts, e.clock.Now().Format(time.RFC3339))

	// Every REFUNDED form has exactly one payout row, the model's.
	for _, f := range m.where(func(f *mixForm) bool { return f.state == refund.Refunded }) {
		if n := e.count(`SELECT count(*) FROM payout_forms WHERE form_id = $1`, f.id); n != 1 {
			t.Errorf("REFUNDED form %s has %d payout_forms rows, want 1", f.number, n)
		}
		if n := e.count(`SELECT count(*) FROM forms WHERE id = $1 AND payout_id = $2`, f.id, f.payout); n != 1 {
			t.Errorf("REFUNDED form %s is not paid by payout %s", f.number, f.payout)
		}
	}
	if n := e.count(`SELECT count(*) FROM payouts`); n != m.payouts {
		t.Errorf("%d payouts, the model made %d", n, m.payouts)
	}
	if n := e.count(`SELECT count(*) FROM payout_forms pf JOIN forms f ON f.id = pf.form_id WHERE f.state <> 'REFUNDED'`); n != 0 {
		t.Errorf("%d payout rows of forms that are not REFUNDED", n)
	}

	// The journal balances, per transaction and in total, per layer.
	if n := e.count(`SELECT count(*) FROM (SELECT txn_id, pending FROM journal_entries GROUP BY txn_id, pending
		HAVING sum(amount) FILTER (WHERE side = 'D') IS DISTINCT FROM sum(amount) FILTER (WHERE side = 'C')) x`); n != 0 {
		t.Errorf("%d unbalanced journal transactions", n)
	}
	var debits, credits decimal.Decimal
	if err := e.pool.QueryRow(e.ctx, `SELECT coalesce(sum(amount) FILTER (WHERE side = 'D'), 0), coalesce(sum(amount) FILTER (WHERE side = 'C'), 0)
		FROM journal_entries`).Scan(&debits, &credits); err != nil {
		t.Fatal(err)
	}
	if !debits.Equal(credits) {
		t.Errorf("journal: debits %s, credits %s", debits, credits)
	}

	// Balances, from the model.
	var owed, pending decimal.Decimal
	for _, f := range m.forms {
		switch f.state {
		case refund.Verified:
			owed = owed.Add(f.confGross)
		case refund.Issued:
			pending = pending.Add(f.gross)
		}
	}
	want := map[string]string{"travellers:refund_payable": fixed(owed.Neg())}
	for _, a := range []string{"AG-CQ", "AG-CD"} {
		want["agency:"+a+":receivable"] = fixed(m.receivable[a])
		want["authority:agency_payable:"+a] = fixed(m.receivable[a].Neg())
		want["agency:"+a+":fee_income"] = fixed(m.feeIncome[a].Neg())
		want["agency:"+a+":transfers"] = fixed(m.paid["agency:"+a+":transfers"].Neg())
	}
	for desk, a := range desks {
		code := "agency:" + a + ":cash:" + desk
		want[code] = fixed(m.paid[code].Neg())
	}
	e.wantBalances(want)
	bal, err := e.ledger.Balance(e.ctx, e.pool, "travellers:refund_payable")
	if err != nil {
		t.Fatal(err)
	}
	if fixed(bal.Pending) != fixed(pending.Neg()) {
		t.Errorf("travellers:refund_payable pending %s, the ISSUED forms' G sum to %s", fixed(bal.Pending), fixed(pending))
	}
	e.checkInvariants()
}
