package forms_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"taxrefund/internal/fault"
	"taxrefund/internal/ledger"
	"taxrefund/internal/money"
	"taxrefund/internal/refund"
)

// propertySeed returns the seed of a randomized test: $PROPERTY_SEED when set, else a
// fresh one. It is logged so that a failure can be replayed.
func propertySeed(t *testing.T) uint64 {
	t.Helper()
	if v := os.Getenv("PROPERTY_SEED"); v != "" {
		seed, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("PROPERTY_SEED=%q: %v", v, err)
		}
		return seed
	}
	return uint64(time.Now().UnixNano())
}

// modelForm is what the test expects of a form.
type modelForm struct {
	number, store string
	traveller     int
	date          time.Time
	eligible      int64 // fen
	gross         int64 // fen
	invoices      []string
	state         refund.State
}

// issueModel predicts the outcome of issuing and voiding with DOMAIN.md's rules, written
// independently of package refund: integer fen, half-up rounding by hand.
type issueModel struct {
	forms []*modelForm
	// live maps store → invoice number → the form holding it.
	live map[string]map[string]string
}

const minimumFen = 20000 // 200.00 from 2025-04-27

// sameDay is the eligible total of the traveller's live forms at store on date.
func (m *issueModel) sameDay(traveller int, store string, date time.Time) int64 {
	var sum int64
	for _, f := range m.forms {
		if f.traveller == traveller && f.store == store && f.date.Equal(date) && f.state != refund.Voided {
			sum += f.eligible
		}
	}
	return sum
}

// Random issues (1–3 lines of 0.01–5000.00 at 13% or 9%, some below the minimum, some on
// invoices already claimed), voids (some by the wrong store, some twice), retries and
// clock moves over 3 travellers × 2 stores. Each outcome matches the model; a refused
// operation changes nothing; at the end the invariants hold and every maintained balance
// is the sum of its journal entries.
func TestIssueVoidProperty(t *testing.T) {
	t.Parallel()
	seed := propertySeed(t)
	t.Logf("seed %d (replay: PROPERTY_SEED=%d go test ./internal/forms -run TestIssueVoidProperty)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0x7a5f))

	s := newSkeleton(t, noonMarch10)
	travellers := []refund.Traveller{
		passport("P0000001"),
		func() refund.Traveller {
			tr := passport("H0000002")
			tr.Document.Type, tr.Document.IssuingCountry, tr.Nationality = refund.HKMacaoPermit, "CN", "CN"
			return tr
		}(),
		func() refund.Traveller {
			tr := passport("T0000003")
			tr.Document.Type, tr.Document.IssuingCountry, tr.Nationality = refund.TaiwanPermit, "CN", "CN"
			return tr
		}(),
	}
	stores := []string{"S-JFB-1", "S-CXL-1"}
	m := &issueModel{live: map[string]map[string]string{stores[0]: {}, stores[1]: {}}}
	outcomes := map[string]int{}

	type voidDone struct {
		rid           uuid.UUID
		store, number string
		closedAt      time.Time
	}
	var voids []voidDone

	// refused fails unless err is a refusal for reason; the loop then checks that nothing
	// changed.
	refused := func(op int, what, reason string, err error) {
		t.Helper()
		fe, ok := fault.As(err)
		if !ok || fe.Reason != reason {
			t.Fatalf("op %d (%s): got %v, want %s", op, what, err, reason)
		}
		outcomes[what+" "+reason]++
	}

	const ops = 300
	for op := 0; op < ops; op++ {
		before := s.counts()
		switch r := rng.IntN(100); {
		case r < 8: // move the clock by 1–12 hours: some ops fall on the next local day
			s.clock.Set(s.clock.Now().Add(time.Duration(1+rng.IntN(12)) * time.Hour))
			outcomes["clock"]++
			continue

		case r < 65: // issue
			ti, store := rng.IntN(len(travellers)), stores[rng.IntN(len(stores))]
			nLines := 1 + rng.IntN(3)
			nInv := 1 + rng.IntN(nLines)
			var invoices []refund.Invoice
			for len(invoices) < nInv {
				no := fmt.Sprintf("P-%03d", rng.IntN(150))
				dup := false
				for _, inv := range invoices {
					dup = dup || inv.Number == no
				}
				if !dup {
					invoices = append(invoices, refund.Invoice{Number: no, Date: s.today()})
				}
			}
			var lines []refund.Line
			var eligible, grossTimes100 int64
			for i := range nLines {
				var fen int64
				if rng.IntN(2) == 0 {
					fen = 1 + rng.Int64N(20000) // up to 200.00: often below the minimum
				} else {
					fen = 1 + rng.Int64N(500000) // up to 5000.00
				}
				vat, rate := "0.13", int64(11)
				if rng.IntN(2) == 0 {
					vat, rate = "0.09", 8
				}
				l := goods(decimal.New(fen, -2).StringFixed(2), vat)
				l.InvoiceNumber = invoices[i%nInv].Number
				lines = append(lines, l)
				eligible += fen
				grossTimes100 += fen * rate
			}
			gross := (grossTimes100 + 50) / 100 // half up
			app := refund.Application{Traveller: travellers[ti], Invoices: invoices, Lines: lines}
			date := s.today()
			f, err := s.issue(store, app)

			var claimed bool
			for _, inv := range invoices {
				_, held := m.live[store][inv.Number]
				claimed = claimed || held
			}
			switch {
			case gross == 0:
				refused(op, "issue", "NO_REFUND", err)
			case eligible+m.sameDay(ti, store, date) < minimumFen:
				refused(op, "issue", "BELOW_MINIMUM", err)
			case claimed:
				refused(op, "issue", "INVOICE_ALREADY_CLAIMED", err)
			default:
				if err != nil {
					t.Fatalf("op %d: issue A %s at %s: %v; want a form", op, decimal.New(eligible, -2).StringFixed(2), store, err)
				}
				requireAmounts(t, f, decimal.New(eligible, -2).StringFixed(2), decimal.New(gross, -2).StringFixed(2))
				mf := &modelForm{number: f.Number, store: store, traveller: ti, date: date, eligible: eligible, gross: gross, state: refund.Issued}
				for _, inv := range invoices {
					mf.invoices = append(mf.invoices, inv.Number)
					m.live[store][inv.Number] = f.Number
				}
				m.forms = append(m.forms, mf)
				outcomes["issue OK"]++
				if eligible < minimumFen {
					outcomes["issue OK below the minimum alone"]++
				}
				after := s.counts()
				if after["forms"] != before["forms"]+1 || after["journal_txns"] != before["journal_txns"]+1 {
					t.Fatalf("op %d: issue wrote %d forms, %d journal txns; want 1, 1",
						op, after["forms"]-before["forms"], after["journal_txns"]-before["journal_txns"])
				}
				continue
			}

		case r < 95: // void a random form, by its store mostly
			if len(m.forms) == 0 {
				continue
			}
			mf := m.forms[rng.IntN(len(m.forms))]
			store := mf.store
			if rng.IntN(8) == 0 {
				store = stores[0]
				if store == mf.store {
					store = stores[1]
				}
			}
			rid := uuid.New()
			v, err := s.voidAs(rid, store, mf.number)
			switch {
			case store != mf.store:
				refused(op, "void", "FORM_NOT_FOUND", err)
			case mf.state != refund.Issued:
				refused(op, "void", "FORM_STATE", err)
			default:
				if err != nil {
					t.Fatalf("op %d: void %s: %v", op, mf.number, err)
				}
				if v.State != refund.Voided || v.ClosedAt == nil {
					t.Fatalf("op %d: void returned %s, closed %v", op, v.State, v.ClosedAt)
				}
				mf.state = refund.Voided
				for _, inv := range mf.invoices {
					delete(m.live[mf.store], inv)
				}
				voids = append(voids, voidDone{rid, store, mf.number, *v.ClosedAt})
				outcomes["void OK"]++
				after := s.counts()
				if after["pending_resolutions"] != before["pending_resolutions"]+1 || after["journal_txns"] != before["journal_txns"]+1 {
					t.Fatalf("op %d: void wrote %d resolutions, %d journal txns; want 1, 1", op,
						after["pending_resolutions"]-before["pending_resolutions"], after["journal_txns"]-before["journal_txns"])
				}
				continue
			}

		default: // retry a void that succeeded: the first answer, nothing written
			if len(voids) == 0 {
				continue
			}
			vd := voids[rng.IntN(len(voids))]
			v, err := s.voidAs(vd.rid, vd.store, vd.number)
			if err != nil {
				t.Fatalf("op %d: retry of the void of %s: %v", op, vd.number, err)
			}
			if v.Number != vd.number || v.State != refund.Voided || v.ClosedAt == nil || !v.ClosedAt.Equal(vd.closedAt) {
				t.Fatalf("op %d: retry of the void of %s returned %s %s %v", op, vd.number, v.Number, v.State, v.ClosedAt)
			}
			outcomes["void retry"]++
		}
		s.requireUnchanged(before, fmt.Sprintf("op %d", op))
		if t.Failed() {
			t.FailNow()
		}
	}
	keys := make([]string, 0, len(outcomes))
	for k := range outcomes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("%-36s %d", k, outcomes[k])
	}
	if outcomes["issue OK"] == 0 || outcomes["void OK"] == 0 || outcomes["issue BELOW_MINIMUM"] == 0 ||
		outcomes["issue INVOICE_ALREADY_CLAIMED"] == 0 || outcomes["void FORM_STATE"] == 0 {
		t.Errorf("the run exercised too little: %v", outcomes)
	}

	s.requireConsistent()

	// The database's forms are the model's.
	rows, err := s.pool.Query(s.ctx, `SELECT number, store_code, state, eligible_amount, gross_refund FROM forms`)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		store, state    string
		eligible, gross decimal.Decimal
	}
	stored := map[string]row{}
	for rows.Next() {
		var n string
		var r row
		if err := rows.Scan(&n, &r.store, &r.state, &r.eligible, &r.gross); err != nil {
			t.Fatal(err)
		}
		stored[n] = r
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	if len(stored) != len(m.forms) {
		t.Errorf("%d forms stored, the model has %d", len(stored), len(m.forms))
	}
	var liveGross int64
	for _, mf := range m.forms {
		r, ok := stored[mf.number]
		if !ok || r.store != mf.store || r.state != string(mf.state) || !r.eligible.Equal(decimal.New(mf.eligible, -2)) || !r.gross.Equal(decimal.New(mf.gross, -2)) {
			t.Errorf("form %s stored as %+v, want %s %s A %d G %d (fen)", mf.number, r, mf.store, mf.state, mf.eligible, mf.gross)
		}
		if mf.state == refund.Issued {
			liveGross += mf.gross
		}
	}
	want := money.Format(decimal.New(liveGross, -2))
	s.requireBalance(ledger.RefundExpense, "0", want)
	s.requireBalance(ledger.RefundPayable, "0", "-"+want)

	// Every maintained balance is the sum of its journal entries, and each layer sums to 0.
	rows, err = s.pool.Query(s.ctx, `
		SELECT a.code,
		       coalesce(sum(CASE WHEN e.side = 'D' THEN e.amount ELSE -e.amount END) FILTER (WHERE NOT e.pending), 0),
		       coalesce(sum(CASE WHEN e.side = 'D' THEN e.amount ELSE -e.amount END) FILTER (WHERE e.pending), 0)
		  FROM accounts a LEFT JOIN journal_entries e ON e.account_id = a.id
		 GROUP BY a.code ORDER BY a.code`)
	if err != nil {
		t.Fatal(err)
	}
	type sums struct{ posted, pending decimal.Decimal }
	fromEntries := map[string]sums{}
	for rows.Next() {
		var code string
		var v sums
		if err := rows.Scan(&code, &v.posted, &v.pending); err != nil {
			t.Fatal(err)
		}
		fromEntries[code] = v
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	if len(fromEntries) < 2 {
		t.Errorf("accounts %v, want at least the two of issuing", fromEntries)
	}
	var totalPosted, totalPending decimal.Decimal
	for code, v := range fromEntries {
		b, err := s.ledger.Balance(s.ctx, s.pool, code)
		if err != nil {
			t.Fatal(err)
		}
		if !b.Posted.Equal(v.posted) || !b.Pending.Equal(v.pending) {
			t.Errorf("%s: maintained balance %s/%s (posted/pending), journal entries sum to %s/%s", code, b.Posted, b.Pending, v.posted, v.pending)
		}
		totalPosted, totalPending = totalPosted.Add(v.posted), totalPending.Add(v.pending)
	}
	if !totalPosted.IsZero() || !totalPending.IsZero() {
		t.Errorf("the journal sums to %s posted, %s pending; want 0, 0", totalPosted, totalPending)
	}
}
