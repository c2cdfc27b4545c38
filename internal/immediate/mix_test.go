package immediate_test

import (
	"fmt"
	"math/big"
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

	"taxrefund/internal/idempotency"
	"taxrefund/internal/immediate"
	"taxrefund/internal/ledger"
	"taxrefund/internal/payouts"
	"taxrefund/internal/refund"
)

// mixSeedEnv overrides TestImmediateMix's seed, to replay a run.
const mixSeedEnv = "TAXREFUND_IMMEDIATE_MIX_SEED"

// The registry as the model knows it (dbtest.Registry).
var (
	storeBlock   = map[string]string{"S-JFB-1": "JFB", "S-JFB-2": "JFB", "S-CXL-1": "CXL"}
	storeEnabled = map[string]bool{"S-JFB-1": true, "S-JFB-2": false, "S-CXL-1": true}
	pointBlock   = map[string]string{"JFB-RP": "JFB", "IFS-RP": "CXL"}
	deskAgency   = map[string]string{"JFB-RP": "AG-CQ", "IFS-RP": "AG-CD", "CKG-01": "AG-CQ", "TFU-01": "AG-CD", "CTU-01": "AG-CD"}
	designated   = map[string]bool{"TFU": true, "CKG": true}
	mixRates     = map[string]*big.Rat{"0.13": big.NewRat(11, 100), "0.09": big.NewRat(8, 100)}
)

// mixCalendar is the calendar the mix sets at the start (demo values).
var mixCalendar = map[string]bool{
	"2026-04-06": false, // holiday
	"2026-05-01": false, "2026-05-04": false, "2026-05-05": false,
	"2026-05-09": true, // adjusted working Saturday (调休)
}

func isWorking(d time.Time) bool {
	if w, ok := mixCalendar[d.Format(time.DateOnly)]; ok {
		return w
	}
	return d.Weekday() != time.Saturday && d.Weekday() != time.Sunday
}

func addWorking(d time.Time, n int) time.Time {
	for n > 0 {
		d = d.AddDate(0, 0, 1)
		if isWorking(d) {
			n--
		}
	}
	return d
}

// mixAmounts is the independent oracle of DOMAIN.md §3 for a form's lines and confirmed
// units (nil: all): A, G, F (2%), N, on exact rationals, one half-up rounding at the end.
type mixAmounts struct{ a, g, f, n decimal.Decimal }

func mixOracle(lines []line, confirmed []int32) mixAmounts {
	a, g := new(big.Rat), new(big.Rat)
	for i, l := range lines {
		amt, _ := new(big.Rat).SetString(l.amount)
		if confirmed != nil {
			amt.Mul(amt, big.NewRat(int64(confirmed[i]), int64(l.qty)))
		}
		a.Add(a, amt)
		g.Add(g, new(big.Rat).Mul(amt, mixRates[l.vat]))
	}
	round := func(r *big.Rat) decimal.Decimal {
		c := new(big.Rat).Add(new(big.Rat).Mul(r, big.NewRat(100, 1)), big.NewRat(1, 2))
		return decimal.NewFromBigInt(new(big.Int).Quo(c.Num(), c.Denom()), -2)
	}
	out := mixAmounts{a: round(a), g: round(g), f: round(new(big.Rat).Mul(a, big.NewRat(2, 100)))}
	out.n = out.g.Sub(out.f)
	return out
}

type mixPrepay struct {
	id        uuid.UUID
	desk      string
	agency    string
	state     string
	n         decimal.Decimal
	paidDate  time.Time
	committed time.Time
	recover   decimal.Decimal // partial capture at completion
}

type mixForm struct {
	port      string // where customs confirmed the export
	number    string
	id        uuid.UUID
	traveller int
	store     string
	lines     []line
	purchase  time.Time
	deadline  time.Time
	state     refund.State
	confirmed []int32
	gPrime    decimal.Decimal
	prepay    *mixPrepay
	paidBy    string // agency whose receivable holds G'
}

type mixModel struct {
	forms      []*mixForm
	docs       []refund.Document
	cash       map[string]decimal.Decimal // cash paid at desk payouts by "traveller|day"
	deskCash   map[string]decimal.Decimal // account code → posted balance
	receivable map[string]decimal.Decimal
	fee        map[string]decimal.Decimal
	captures   map[string]decimal.Decimal
	tally      map[string]int
	completed  int
}

func (m *mixModel) pick(r *rand.Rand, pred func(*mixForm) bool) *mixForm {
	var c []*mixForm
	for _, f := range m.forms {
		if pred(f) {
			c = append(c, f)
		}
	}
	if len(c) == 0 {
		return nil
	}
	return c[r.IntN(len(c))]
}

func (m *mixModel) prepaidOn(traveller int, day time.Time) decimal.Decimal {
	sum := decimal.Zero
	for _, f := range m.forms {
		if f.traveller == traveller && f.prepay != nil && f.prepay.paidDate.Equal(day) && f.prepay.state != immediate.Returned {
			sum = sum.Add(f.prepay.n)
		}
	}
	return sum
}

func add(m map[string]decimal.Decimal, k string, d decimal.Decimal) { m[k] = m[k].Add(d) }

// TestImmediateMix runs a seeded, reproducible random mix of ~300 operations over 6
// travellers and both blocks: issue, prepay (good and bad), return, void, verify at
// TFU/CKG/CTU with random partial or zero confirmations, settle at the airport desks,
// run the capture job and the expiry, and move the clock by hours or days, on a calendar
// with holidays and an adjusted working Saturday. A model predicts every outcome; at the
// end the database must match it form by form, prepayment by prepayment, instruction by
// instruction and account by account, every REFUNDED form must have exactly one payout,
// and invariants.Check must find nothing.
func TestImmediateMix(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(mixSeedEnv); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", mixSeedEnv, s, err)
		}
		seed = v
	}
	t.Logf("seed %d (replay with %s=%d)", seed, mixSeedEnv, seed)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	e := newEnv(t)
	for day, working := range mixCalendar {
		e.setDay(day, working, "mix calendar")
	}
	m := &mixModel{cash: map[string]decimal.Decimal{}, deskCash: map[string]decimal.Decimal{}, receivable: map[string]decimal.Decimal{},
		fee: map[string]decimal.Decimal{}, captures: map[string]decimal.Decimal{}, tally: map[string]int{}}
	for i := range 6 {
		m.docs = append(m.docs, passport(fmt.Sprintf("MX%06d", 100000+i), []string{"GB", "FR", "US", "JP", "DE", "KR"}[i]))
	}
	fail := func(op string, format string, args ...any) {
		t.Helper()
		t.Errorf("seed %d, %s: %s", seed, op, fmt.Sprintf(format, args...))
	}
	outcome := func(op string, err error) string {
		k := op + " " + reasonOf(err)
		m.tally[k]++
		return reasonOf(err)
	}

	const ops = 300
	for step := range ops {
		now := e.clock.Now()
		today := refund.LocalDate(now)
		op := fmt.Sprintf("step %d (%s)", step, now.In(refund.Shanghai).Format("2006-01-02 15:04"))
		switch x := r.IntN(100); {
		case x < 18: // issue
			tr := r.IntN(len(m.docs))
			store := []string{"S-CXL-1", "S-CXL-1", "S-CXL-1", "S-JFB-1", "S-JFB-1", "S-JFB-2"}[r.IntN(6)]
			var lines []line
			for range 1 + r.IntN(2) {
				amount := fmt.Sprintf("%d.%02d", 200+r.IntN(3000), r.IntN(100))
				if r.IntN(8) == 0 {
					amount = fmt.Sprintf("%d.%02d", 100000+r.IntN(100000), r.IntN(100))
				}
				lines = append(lines, line{qty: int32(1 + r.IntN(3)), amount: amount, vat: []string{"0.13", "0.09"}[r.IntN(2)]})
			}
			f, err := e.tryIssue(store, m.docs[tr], lines...)
			if outcome("issue", err) != "OK" {
				fail(op, "issue: %v", err)
				continue
			}
			want := mixOracle(lines, nil)
			if fixed(f.Gross) != fixed(want.g) {
				fail(op, "issue G %s, oracle %s", fixed(f.Gross), fixed(want.g))
			}
			m.forms = append(m.forms, &mixForm{number: f.Number, id: f.ID, traveller: tr, store: store, lines: lines,
				purchase: f.PurchaseDate, deadline: f.ExportDeadline, state: refund.Issued})

		case x < 40: // prepay
			f := m.pick(r, func(f *mixForm) bool {
				return f.state == refund.Issued && (f.prepay == nil || r.IntN(8) == 0) && (storeEnabled[f.store] || r.IntN(8) == 0)
			})
			if f == nil {
				f = m.pick(r, func(*mixForm) bool { return true })
			}
			if f == nil {
				continue
			}
			desk := []string{"IFS-RP", "IFS-RP", "JFB-RP", "JFB-RP", "TFU-01"}[r.IntN(5)]
			if r.IntN(4) != 0 { // mostly the form's own block
				desk = map[string]string{"CXL": "IFS-RP", "JFB": "JFB-RP"}[storeBlock[f.store]]
			}
			port := []string{"TFU", "CKG", "TFU", "CKG", "CTU"}[r.IntN(5)]
			amounts := mixOracle(f.lines, nil)
			hold := amounts.n
			if r.IntN(10) == 0 {
				hold = hold.Sub(decimal.New(1, -2))
			}
			req := payReq(desk, f.number, m.docs[f.traveller])
			req.PreAuth.Authorized, req.DeparturePort = hold, port
			rehash(&req)
			committed := refund.AddDays(f.purchase, 17)
			want := "OK"
			switch {
			case deskAgency[desk] != "" && pointBlock[desk] == "":
				want = "NOT_A_REFUND_POINT"
			case f.state != refund.Issued:
				want = "FORM_STATE"
			case f.prepay != nil:
				want = "ALREADY_PREPAID"
			case !storeEnabled[f.store]:
				want = "STORE_NOT_ENABLED"
			case storeBlock[f.store] != pointBlock[desk]:
				want = "WRONG_BLOCK"
			case committed.Before(today):
				want = "COMMITTED_DATE_OUT_OF_WINDOW"
			case !designated[port]:
				want = "PORT_NOT_DESIGNATED"
			case hold.LessThan(amounts.n):
				want = "PREAUTH_TOO_LOW"
			case m.prepaidOn(f.traveller, today).Add(amounts.n).GreaterThan(decimal.NewFromInt(50000)):
				want = "DAILY_CAP_EXCEEDED"
			}
			p, err := e.pay(req)
			if got := outcome("prepay", err); got != want {
				fail(op, "prepay %s at %s (port %s, hold %s, N %s): %s (%v), want %s", f.number, desk, port, fixed(hold), fixed(amounts.n), got, err, want)
				continue
			}
			if err != nil {
				continue
			}
			if fixed(p.NetRefund) != fixed(amounts.n) || !p.CommittedDate.Equal(committed) || !p.CaptureDue.Equal(addWorking(committed, 3)) {
				fail(op, "prepayment N %s committed %s due %s; want %s %s %s", fixed(p.NetRefund), refund.FormatDate(p.CommittedDate),
					refund.FormatDate(p.CaptureDue), fixed(amounts.n), refund.FormatDate(committed), refund.FormatDate(addWorking(committed, 3)))
			}
			f.prepay = &mixPrepay{id: p.ID, desk: desk, agency: deskAgency[desk], state: immediate.Prepaid, n: amounts.n, paidDate: today, committed: committed}
			add(m.deskCash, ledger.Cash(deskAgency[desk], desk), amounts.n.Neg())

		case x < 47: // return
			f := m.pick(r, func(f *mixForm) bool { return f.prepay != nil })
			if f == nil {
				continue
			}
			desk := []string{"IFS-RP", "JFB-RP"}[r.IntN(2)]
			if r.IntN(3) != 0 {
				desk = f.prepay.desk
			}
			want := "OK"
			switch {
			case deskAgency[desk] != f.prepay.agency:
				want = "PREPAYMENT_NOT_FOUND"
			case f.prepay.state != immediate.Prepaid:
				want = "PREPAYMENT_STATE"
			}
			_, err := e.returnPrepayment(desk, f.number)
			if got := outcome("return", err); got != want {
				fail(op, "return %s at %s (prepayment %s): %s (%v), want %s", f.number, desk, f.prepay.state, got, err, want)
				continue
			}
			if err == nil {
				f.prepay.state = immediate.Returned
				add(m.deskCash, ledger.Cash(deskAgency[desk], desk), f.prepay.n)
			}

		case x < 53: // void
			f := m.pick(r, func(f *mixForm) bool { return f.state == refund.Issued || r.IntN(6) == 0 })
			if f == nil {
				continue
			}
			want := "OK"
			switch {
			case f.state != refund.Issued:
				want = "FORM_STATE"
			case f.prepay != nil && f.prepay.state == immediate.Prepaid:
				want = "PREPAYMENT_OUTSTANDING"
			}
			_, err := e.void(f.store, f.number)
			if got := outcome("void", err); got != want {
				fail(op, "void %s: %s (%v), want %s", f.number, got, err, want)
				continue
			}
			if err == nil {
				f.state = refund.Voided
			}

		case x < 72: // verify
			f := m.pick(r, func(f *mixForm) bool { return f.state == refund.Issued || r.IntN(8) == 0 })
			if f == nil {
				continue
			}
			port := []string{"TFU", "CKG", "CTU"}[r.IntN(3)]
			confirmed := make([]int32, len(f.lines))
			byLine := map[int]int32{}
			mode := r.IntN(6)
			anyUnits := false
			for i, l := range f.lines {
				switch {
				case mode <= 2:
					confirmed[i] = l.qty
				case mode == 3:
					confirmed[i] = 0
				default:
					confirmed[i] = int32(r.IntN(int(l.qty) + 1))
				}
				byLine[i+1] = confirmed[i]
				anyUnits = anyUnits || confirmed[i] > 0
			}
			want := "OK"
			switch {
			case f.state != refund.Issued:
				want = "FORM_STATE"
			case today.After(f.deadline):
				want = "EXPORT_WINDOW_CLOSED"
			}
			v, err := e.verify(port, f.number, m.docs[f.traveller], byLine)
			if got := outcome("verify", err); got != want {
				fail(op, "verify %s at %s: %s (%v), want %s", f.number, port, got, err, want)
				continue
			}
			if err != nil {
				continue
			}
			amounts := mixOracle(f.lines, confirmed)
			f.confirmed, f.gPrime, f.port = confirmed, amounts.g, port
			wantState := refund.Verified
			switch {
			case !anyUnits:
				wantState = refund.Rejected
			case f.prepay != nil && f.prepay.state == immediate.Prepaid && designated[port] && !today.After(f.prepay.committed):
				wantState = refund.Refunded
			}
			m.tally["verify → "+string(wantState)]++
			if v.State != wantState {
				fail(op, "verify %s at %s: state %s, want %s", f.number, port, v.State, wantState)
			}
			f.state = wantState
			if wantState == refund.Refunded {
				n, fee := amounts.n, amounts.f
				if n.GreaterThan(f.prepay.n) {
					n, fee = f.prepay.n, amounts.g.Sub(f.prepay.n)
				}
				f.prepay.state, f.prepay.recover = immediate.Completed, f.prepay.n.Sub(n)
				f.paidBy = f.prepay.agency
				add(m.receivable, f.prepay.agency, amounts.g)
				add(m.fee, f.prepay.agency, fee)
				add(m.captures, f.prepay.agency, f.prepay.recover)
				m.completed++
				if f.prepay.recover.IsPositive() {
					m.tally["completion with partial capture"]++
				}
			}

		case x < 81: // settle one or two VERIFIED forms of one traveller
			f := m.pick(r, func(f *mixForm) bool { return f.state == refund.Verified })
			if f == nil {
				continue
			}
			batch := []*mixForm{f}
			if g := m.pick(r, func(g *mixForm) bool { return g != f && g.traveller == f.traveller && g.state == refund.Verified }); g != nil && r.IntN(2) == 0 {
				batch = append(batch, g)
			}
			desk := []string{"CKG-01", "TFU-01", "CTU-01"}[r.IntN(3)]
			if r.IntN(5) != 0 { // mostly the desk at the port of export
				desk = f.port + "-01"
			}
			agency := deskAgency[desk]
			method, account := payouts.Cash, ""
			if r.IntN(3) == 0 {
				method, account = payouts.BankCard, "6222020200112233"
			}
			var numbers []string
			gross, fee, net := decimal.Zero, decimal.Zero, decimal.Zero
			outstanding := false
			for _, b := range batch {
				numbers = append(numbers, b.number)
				a := mixOracle(b.lines, b.confirmed)
				gross, fee, net = gross.Add(a.g), fee.Add(a.f), net.Add(a.n)
				outstanding = outstanding || (b.prepay != nil && b.prepay.state == immediate.Prepaid)
			}
			cashKey := fmt.Sprintf("%d|%s", f.traveller, refund.FormatDate(today))
			want := "OK"
			wrongPort := false
			for _, b := range batch {
				wrongPort = wrongPort || b.port != desk[:3]
			}
			switch {
			case wrongPort: // DOMAIN.md §5: paid only at the port of export
				want = "WRONG_PORT"
			case outstanding:
				want = "PREPAYMENT_OUTSTANDING"
			case method == payouts.Cash && m.cash[cashKey].Add(net).GreaterThan(decimal.NewFromInt(20000)):
				want = "CASH_CAP_EXCEEDED"
			}
			p, err := e.payouts.Settle(e.ctx, payouts.SettleRequest{
				Idem:     idempotency.Key{Caller: "desk/" + desk + "/cashier-2", RequestID: uuid.New(), Hash: idempotency.Hash([]byte(strings.Join(numbers, ",")))},
				DeskCode: desk, Cashier: "cashier-2", Numbers: numbers, Presented: m.docs[f.traveller], Method: method, Account: account,
				Receipt: "RCPT-MIX",
			})
			if got := outcome("settle", err); got != want {
				fail(op, "settle %v at %s %s: %s (%v), want %s", numbers, desk, method, got, err, want)
				continue
			}
			if err != nil {
				continue
			}
			if fixed(p.Gross) != fixed(gross) || fixed(p.Fee) != fixed(fee) || fixed(p.Net) != fixed(net) {
				fail(op, "payout %s/%s/%s, oracle %s/%s/%s", fixed(p.Gross), fixed(p.Fee), fixed(p.Net), fixed(gross), fixed(fee), fixed(net))
			}
			for _, b := range batch {
				b.state, b.paidBy = refund.Refunded, agency
			}
			add(m.receivable, agency, gross)
			add(m.fee, agency, fee)
			if method == payouts.Cash {
				add(m.cash, cashKey, net)
				add(m.deskCash, ledger.Cash(agency, desk), net.Neg())
			}

		case x < 86: // the capture job
			var due []*mixForm
			for _, f := range m.forms {
				if p := f.prepay; p != nil && p.state == immediate.Prepaid && p.committed.Before(today) && !addWorking(p.committed, 3).After(today) {
					due = append(due, f)
				}
			}
			n, err := e.imm.Captures(e.ctx, "mix")
			outcome("captures", err)
			if err != nil || n != len(due) {
				fail(op, "captures: %d %v, want %d", n, err, len(due))
				continue
			}
			m.tally["captured"] += n
			for _, f := range due {
				f.prepay.state = immediate.Captured
				add(m.captures, f.prepay.agency, f.prepay.n)
			}

		case x < 90: // the expiry job
			var due []*mixForm
			for _, f := range m.forms {
				if f.state == refund.Issued && today.After(f.deadline) {
					due = append(due, f)
				}
			}
			n, err := e.forms.Expire(e.ctx, "mix")
			outcome("expire", err)
			if err != nil || n != len(due) {
				fail(op, "expire: %d %v, want %d", n, err, len(due))
				continue
			}
			m.tally["expired"] += n
			for _, f := range due {
				f.state = refund.Expired
			}

		default: // the clock
			if r.IntN(2) == 0 {
				e.clock.Set(now.Add(time.Duration(1+r.IntN(30)) * 8 * time.Hour))
			} else {
				e.clock.Set(now.Add(time.Duration(1+r.IntN(20)) * time.Hour))
			}
			m.tally["clock advanced"]++
		}
		if t.Failed() {
			break
		}
	}
	t.Logf("after %d operations, clock at %s; outcomes:\n%s", ops, e.clock.Now().In(refund.Shanghai).Format(time.DateTime), mixTally(m.tally))
	mixCompare(t, e, m, seed)
}

func mixTally(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "\t%-45s %d\n", k, m[k])
	}
	return b.String()
}

// mixCompare checks the database against the model.
func mixCompare(t *testing.T, e *env, m *mixModel, seed uint64) {
	t.Helper()
	states := map[string]string{}
	rows, err := e.pool.Query(e.ctx, `SELECT number, state FROM forms`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n, s string
		if err := rows.Scan(&n, &s); err != nil {
			t.Fatal(err)
		}
		states[n] = s
	}
	rows.Close()
	prepaidBy := map[string]decimal.Decimal{}
	wantOutbox := map[uuid.UUID][]string{}
	forms, prepayments := 0, 0
	for _, f := range m.forms {
		forms++
		if states[f.number] != string(f.state) {
			t.Errorf("seed %d: form %s is %s, the model says %s", seed, f.number, states[f.number], f.state)
		}
		if f.prepay == nil {
			continue
		}
		prepayments++
		p := f.prepay
		if got := e.prepaymentOf(f.id).State; got != p.state {
			t.Errorf("seed %d: prepayment of %s is %s, the model says %s", seed, f.number, got, p.state)
		}
		switch p.state {
		case immediate.Prepaid:
			add(prepaidBy, p.agency, p.n)
		case immediate.Returned:
			wantOutbox[p.id] = []string{"RELEASE"}
		case immediate.Captured:
			wantOutbox[p.id] = []string{"CAPTURE " + fixed(p.n)}
		case immediate.Completed:
			if p.recover.IsPositive() {
				wantOutbox[p.id] = []string{"PARTIAL_CAPTURE " + fixed(p.recover)}
			} else {
				wantOutbox[p.id] = []string{"RELEASE"}
			}
		}
	}
	if n := e.count(`SELECT count(*) FROM forms`); n != forms {
		t.Errorf("%d forms in the database, the model has %d", n, forms)
	}
	if n := e.count(`SELECT count(*) FROM prepayments`); n != prepayments {
		t.Errorf("%d prepayments in the database, the model has %d", n, prepayments)
	}
	got := map[uuid.UUID][]string{}
	for _, o := range e.outbox() {
		s := o.Kind
		if o.Kind != "RELEASE" {
			s += " " + o.Amount
		}
		got[o.Prepayment] = append(got[o.Prepayment], s)
	}
	for id, w := range wantOutbox {
		if !slices.Equal(got[id], w) {
			t.Errorf("seed %d: prepayment %s: instructions %v, want %v", seed, id, got[id], w)
		}
	}
	if len(got) != len(wantOutbox) {
		t.Errorf("seed %d: instructions for %d prepayments, the model expects %d", seed, len(got), len(wantOutbox))
	}

	verified := decimal.Zero
	for _, f := range m.forms {
		if f.state == refund.Verified {
			verified = verified.Add(f.gPrime)
		}
	}
	want := map[string]string{"travellers:refund_payable": fixed(verified.Neg())}
	for _, a := range []string{"AG-CQ", "AG-CD"} {
		want[ledger.Prepayments(a)] = fixed(prepaidBy[a])
		want[ledger.CardCaptures(a)] = fixed(m.captures[a])
		want[ledger.Receivable(a)] = fixed(m.receivable[a])
		want[ledger.AgencyPayable(a)] = fixed(m.receivable[a].Neg())
		want[ledger.FeeIncome(a)] = fixed(m.fee[a].Neg())
	}
	for code, bal := range m.deskCash {
		want[code] = fixed(bal)
	}
	e.wantBalances(fmt.Sprintf("seed %d", seed), want)

	// Every REFUNDED form has exactly one payout; completions are PREPAYMENT payouts.
	if n := e.count(`SELECT count(*) FROM forms f WHERE f.state = 'REFUNDED'
		AND (SELECT count(*) FROM payout_forms pf WHERE pf.form_id = f.id) <> 1`); n != 0 {
		t.Errorf("seed %d: %d REFUNDED forms without exactly one payout", seed, n)
	}
	if n := e.count(`SELECT count(*) FROM payouts WHERE method = 'PREPAYMENT'`); n != m.completed {
		t.Errorf("seed %d: %d PREPAYMENT payouts, %d completions", seed, n, m.completed)
	}
	e.checkInvariants(fmt.Sprintf("seed %d", seed))
}
