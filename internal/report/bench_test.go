package report_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"taxrefund/internal/db"
	"taxrefund/internal/ledger"
	"taxrefund/internal/report"
)

// BenchmarkMonthlyReport1M fills October 2026 with TAXREFUND_BENCH_FORMS forms (default
// 1,000,000) by COPY, then times report.Monthly against hand-written GROUP BY queries
// that compute the same figures over the same rows, in the same run:
//
//	go test ./internal/report -run '^$' -bench MonthlyReport1M -benchtime 1x -timeout 30m
//
// TAXREFUND_BENCH_URL, the URL of a database an earlier run filled and kept, times it
// again without refilling (fill-s is then 0).
// The issue asks for the report in under 2 s and within 1.5× of the plain GROUP BYs; the
// benchmark reports both medians (report-ms, groupby-ms), their ratio, the same against
// the five forms-only GROUP BYs (groupby5-ms, ratio5) and the fill time, and fails when a
// bound is missed. The filled database takes about 1.6 GB; like every dbtest database it
// is dropped when the run passes and kept (its URL logged) when it fails.
//
// report.Monthly reads the month's forms alone (a paid form carries its payout's figures,
// migrations/00033) and aggregates them in one pass, in a transaction of its own with
// monthlySettings; the GROUP BYs run as written, one statement per dimension and source,
// each scanning the forms again (and joining the payouts), with the server's defaults.
// The 2 s bound is the one that binds (figures, and the machine's load while they were
// taken, in BENCH.md).
func BenchmarkMonthlyReport1M(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("TAXREFUND_BENCH_FORMS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			b.Fatalf("TAXREFUND_BENCH_FORMS=%q: want a positive number of forms", s)
		}
		n = v
	} else if testing.Short() {
		b.Skip("set TAXREFUND_BENCH_FORMS, or run without -short: the fill takes a while")
	}
	b.StopTimer()
	var e *env
	var fill time.Duration
	if url := os.Getenv("TAXREFUND_BENCH_URL"); url != "" {
		// A database an earlier run filled (and kept): time it again without refilling.
		pool, err := db.Open(context.Background(), url, 4)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(pool.Close)
		e = &env{t: b, ctx: context.Background(), pool: pool}
		if err := pool.QueryRow(e.ctx, `SELECT count(*) FROM forms WHERE purchase_date >= $1 AND purchase_date < $2`,
			october, october.AddDate(0, 1, 0)).Scan(&n); err != nil {
			b.Fatal(err)
		}
		b.Logf("reusing %d forms of %s", n, url)
	} else {
		e = newEnv(b)
		start := time.Now()
		paid := fillMonth(b, e.ctx, e, n)
		fill = time.Since(start)
		b.Logf("filled %d forms (%d paid) in %s", n, paid, fill.Round(time.Millisecond))
	}
	ctx := e.ctx
	// The report runs as in production: the application role's pool, as the authority,
	// under row-level security; the GROUP BYs run as the tables' owner.
	app, err := db.OpenAs(ctx, e.pool.Config().ConnString(), 4, db.AppRole)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(app.Close)
	reporter, rctx := db.Scope(app), db.WithParty(ctx, "authority", "bench")

	// One untimed run of each: warms the cache and checks that both give the same figures.
	got, err := report.Monthly(rctx, reporter, october)
	if err != nil {
		b.Fatal(err)
	}
	want, err := groupBy(ctx, e.pool, october, true)
	if err != nil {
		b.Fatal(err)
	}
	compareRows(b, got, want)
	var issued int64
	for _, r := range got {
		if r.Dimension == "block" {
			issued += r.FormsIssued
		}
	}
	if issued != int64(n) {
		b.Fatalf("the report counts %d forms issued in October, want %d", issued, n)
	}

	// Interleaved runs: report.Monthly; the ten GROUP BYs that give the same figures (per
	// dimension, forms issued and refunds paid); the five GROUP BYs over the month's forms
	// alone (the issued figures only), the simplest baseline.
	runs := max(3, b.N)
	var reportTimes, groupTimes, group5Times []time.Duration
	b.StartTimer()
	for range runs {
		t0 := time.Now()
		if _, err := report.Monthly(rctx, reporter, october); err != nil {
			b.Fatal(err)
		}
		reportTimes = append(reportTimes, time.Since(t0))
		t0 = time.Now()
		if _, err := groupBy(ctx, e.pool, october, true); err != nil {
			b.Fatal(err)
		}
		groupTimes = append(groupTimes, time.Since(t0))
		t0 = time.Now()
		if _, err := groupBy(ctx, e.pool, october, false); err != nil {
			b.Fatal(err)
		}
		group5Times = append(group5Times, time.Since(t0))
	}
	b.StopTimer()
	rep, grp, grp5 := median(reportTimes), median(groupTimes), median(group5Times)
	ratio := float64(rep) / float64(grp)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(rep), "report-ms")
	b.ReportMetric(ms(grp), "groupby-ms")
	b.ReportMetric(ratio, "ratio")
	b.ReportMetric(ms(grp5), "groupby5-ms")
	b.ReportMetric(float64(rep)/float64(grp5), "ratio5")
	b.ReportMetric(fill.Seconds(), "fill-s")
	b.ReportMetric(float64(n), "forms")
	b.Logf("report.Monthly runs %v (median %s); same-figures GROUP BYs %v (median %s), ratio %.2f; forms-only GROUP BYs %v (median %s), ratio %.2f",
		reportTimes, rep.Round(time.Millisecond), groupTimes, grp.Round(time.Millisecond), ratio,
		group5Times, grp5.Round(time.Millisecond), float64(rep)/float64(grp5))
	if n >= 1_000_000 {
		if rep >= 2*time.Second {
			b.Errorf("report.Monthly median %s over %d forms, want under 2s", rep, n)
		}
		if ratio > 1.5 {
			b.Errorf("report.Monthly median %s is %.2f× the GROUP BYs' %s, want at most 1.5×", rep, ratio, grp)
		}
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// benchForm is one generated form, compact (the derived values are computed when
// copied): a paid form has a payout of its own.
type benchForm struct {
	i         int32
	store     int16
	nat       uint8
	state     uint8
	port      uint8 // index into benchPorts, for confirmed forms
	desk      uint8 // index into benchPortDesks[port], for paid forms
	day       uint8 // purchase day of October, 0 to 29
	verifyDay uint8 // days from issue to confirmation
	issuedSec int32 // seconds after 01:00 UTC (09:00 in Shanghai) of the purchase date
	eligible  int64 // fen
}

// Form states, in benchStates order.
const (
	bRefunded = iota
	bVerified
	bIssued
	bVoided
	bExpired
	bRejected
)

var (
	benchStates        = []string{"REFUNDED", "VERIFIED", "ISSUED", "VOIDED", "EXPIRED", "REJECTED"}
	benchNationalities = []string{"US", "GB", "JP", "KR", "DE", "FR", "AU", "CA", "SG", "MY", "TH", "IT"}
	benchPorts         = []string{"CKG", "TFU", "CTU"}
	benchPortDesks     = [][]string{{"CKG-01", "CKG-02"}, {"TFU-01"}, {"CTU-01"}}
	benchAgency        = map[string]string{"CKG-01": "AG-CQ", "CKG-02": "AG-CQ", "TFU-01": "AG-CD", "CTU-01": "AG-CD"}
	benchFeeRate       = decimal.RequireFromString("0.02")
	benchDocExpiry     = time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
)

// genForms generates n forms of October 2026: spread over 30 days, 500 stores in both
// blocks, 12 nationalities, 200.00 to 19,999.99; about 60% paid, 15% confirmed unpaid,
// 10% still issued, 5% each voided, expired and rejected.
func genForms(n int) []benchForm {
	r := rand.New(rand.NewPCG(2026, 10))
	out := make([]benchForm, n)
	for i := range out {
		f := benchForm{
			i: int32(i), store: int16(r.IntN(500)), nat: uint8(r.IntN(len(benchNationalities))), day: uint8(r.IntN(30)),
			issuedSec: int32(r.IntN(12 * 3600)), eligible: int64(20000 + r.IntN(1980000)),
		}
		switch p := r.IntN(100); {
		case p < 60:
			f.state = bRefunded
		case p < 75:
			f.state = bVerified
		case p < 85:
			f.state = bIssued
		case p < 90:
			f.state = bVoided
		case p < 95:
			f.state = bExpired
		default:
			f.state = bRejected
		}
		f.port = uint8(r.IntN(len(benchPorts)))
		f.desk = uint8(r.IntN(len(benchPortDesks[f.port])))
		f.verifyDay = uint8(1 + r.IntN(3))
		out[i] = f
	}
	return out
}

// benchID is a deterministic id: kind in the first byte, i in the last eight.
func benchID(kind byte, i int32) uuid.UUID {
	var u uuid.UUID
	u[0] = kind
	u[6] = 0x40
	binary.BigEndian.PutUint64(u[8:], uint64(i)|1<<63)
	return u
}

func cents(c int64) decimal.Decimal { return decimal.New(c, -2) }

func (f benchForm) id() uuid.UUID        { return benchID(0xF0, f.i) }
func (f benchForm) pendingID() uuid.UUID { return benchID(0xA0, f.i) }
func (f benchForm) payoutID() uuid.UUID  { return benchID(0xB0, f.i) }
func (f benchForm) payoutTxn() uuid.UUID { return benchID(0xC0, f.i) }
func (f benchForm) number() string {
	return "BENCH" + strconv.FormatInt(1_000_000_000+int64(f.i), 10)[1:]
}
func (f benchForm) storeCode() string   { return benchStores[f.store] }
func (f benchForm) block() string       { return [2]string{"JFB", "CXL"}[f.store%2] }
func (f benchForm) nationality() string { return benchNationalities[f.nat] }
func (f benchForm) purchase() time.Time { return october.AddDate(0, 0, int(f.day)) }
func (f benchForm) issuedAt() time.Time {
	return f.purchase().Add(time.Hour + time.Duration(f.issuedSec)*time.Second)
}
func (f benchForm) gross() int64 { return (f.eligible*11 + 50) / 100 }
func (f benchForm) fee() int64   { return (f.eligible*2 + 50) / 100 }
func (f benchForm) confirmed() bool {
	return f.state == bRefunded || f.state == bVerified || f.state == bRejected
}
func (f benchForm) paid() bool       { return f.state == bRefunded }
func (f benchForm) portCode() string { return benchPorts[f.port] }
func (f benchForm) deskCode() string { return benchPortDesks[f.port][f.desk] }
func (f benchForm) verifiedAt() time.Time {
	return f.issuedAt().Add(time.Duration(f.verifyDay) * 24 * time.Hour)
}
func (f benchForm) paidAt() time.Time { return f.verifiedAt().Add(time.Hour) }

// paidDate is the Shanghai date of the payment.
func (f benchForm) paidDate() time.Time {
	return f.paidAt().Add(8 * time.Hour).Truncate(24 * time.Hour)
}

var benchStores = func() []string {
	s := make([]string, 500)
	for i := range s {
		s[i] = fmt.Sprintf("B-%03d", i)
	}
	return s
}()

// copyRows streams rows 0 to n−1 of table through two concurrent COPYs (one per core),
// skipping those row reports as absent.
func copyRows(tb testing.TB, ctx context.Context, pool *pgxpool.Pool, table string, cols []string, n int, row func(i int) ([]any, bool)) {
	tb.Helper()
	const parts = 2
	t0 := time.Now()
	var copied atomic.Int64
	errs := make([]error, parts)
	var wg sync.WaitGroup
	for p := range parts {
		i, end := p*n/parts, (p+1)*n/parts
		wg.Go(func() {
			src := pgx.CopyFromFunc(func() ([]any, error) {
				for i < end {
					vals, ok := row(i)
					i++
					if ok {
						return vals, nil
					}
				}
				return nil, nil
			})
			c, err := pool.CopyFrom(ctx, pgx.Identifier{table}, cols, src)
			copied.Add(c)
			errs[p] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			tb.Fatalf("copy %s: %v", table, err)
		}
	}
	tb.Logf("copied %d rows into %s in %s", copied.Load(), table, time.Since(t0).Round(time.Millisecond))
}

// fillMonth writes n forms of October 2026 with what their rows reference: 500 stores,
// the issuing journal transactions and pending transfers (forms.pending_id), and for paid
// forms the payout's journal transaction, the payout and its payout_forms row. Journal
// entries are left out: the report does not read them. It returns the number paid.
func fillMonth(tb testing.TB, ctx context.Context, e *env, n int) int {
	tb.Helper()
	// COPY is refused on a table whose row-level security binds the copying role, FORCE
	// binds the owner: lift FORCE for the fill, and put it back for the measurement.
	const force = `ALTER TABLE forms %[1]s FORCE ROW LEVEL SECURITY; ALTER TABLE payouts %[1]s FORCE ROW LEVEL SECURITY`
	if _, err := e.pool.Exec(ctx, fmt.Sprintf(force, "NO")); err != nil {
		tb.Fatal(err)
	}
	defer func() {
		if _, err := e.pool.Exec(ctx, fmt.Sprintf(force, "")); err != nil {
			tb.Fatal(err)
		}
	}()
	if _, err := e.pool.Exec(ctx, `
		INSERT INTO stores (code, credit_code, name, block_code, credit_grade, status)
		SELECT format('B-%s', lpad(s::text, 3, '0')), format('BENCH%s', lpad(s::text, 13, '0')), format('Bench store %s', s),
		       CASE WHEN s % 2 = 0 THEN 'JFB' ELSE 'CXL' END, 'A', 'ACTIVE'
		  FROM generate_series(0, 499) AS s`); err != nil {
		tb.Fatal(err)
	}
	ids, err := e.ledger.Accounts(ctx, e.pool, ledger.RefundExpense, ledger.RefundPayable)
	if err != nil {
		tb.Fatal(err)
	}
	t0 := time.Now()
	all := genForms(n)
	tb.Logf("generated %d forms in %s", n, time.Since(t0).Round(time.Millisecond))
	paid := 0
	for _, f := range all {
		if f.paid() {
			paid++
		}
	}
	copyRows(tb, ctx, e.pool, "journal_txns", []string{"id", "idem_key", "kind", "ref", "effective_date"}, 2*n, func(i int) ([]any, bool) {
		f := all[i/2]
		if i%2 == 0 {
			return []any{f.pendingID(), "bench:" + f.number() + ":issue", "FORM_ISSUED", f.number(), f.purchase()}, true
		}
		if !f.paid() {
			return nil, false
		}
		return []any{f.payoutTxn(), "bench:" + f.number() + ":paid", "REFUND_PAID", f.payoutID().String(), f.paidDate()}, true
	})
	copyRows(tb, ctx, e.pool, "pending_transfers", []string{"id", "debit_account", "credit_account", "amount"}, n, func(i int) ([]any, bool) {
		f := all[i]
		return []any{f.pendingID(), ids[ledger.RefundExpense], ids[ledger.RefundPayable], cents(f.gross())}, true
	})
	copyRows(tb, ctx, e.pool, "payouts", []string{"id", "desk_code", "agency_code", "port_code", "cashier", "method", "account_masked",
		"receipt_reference", "doc_index", "doc_type", "doc_country", "doc_masked", "paid_at", "paid_date", "fee_rate",
		"gross_refund", "fee", "net_refund", "txn_id"}, n, func(i int) ([]any, bool) {
		f := all[i]
		if !f.paid() {
			return nil, false
		}
		id := f.id()
		return []any{f.payoutID(), f.deskCode(), benchAgency[f.deskCode()], f.portCode(), "cashier-1", "CASH", "", "R-" + f.number(),
			id[8:], "PASSPORT", f.nationality(), "E****123", f.paidAt(), f.paidDate(),
			benchFeeRate, cents(f.gross()), cents(f.fee()), cents(f.gross() - f.fee()), f.payoutTxn()}, true
	})
	copyRows(tb, ctx, e.pool, "forms", []string{"id", "number", "store_code", "block_code", "state", "doc_type", "doc_country",
		"doc_index", "doc_key_id", "doc_cipher", "doc_masked", "doc_expiry", "nationality", "last_entry_date", "purchase_date",
		"issued_at", "export_deadline", "eligible_amount", "gross_refund", "pending_id", "verified_port", "verified_officer",
		"verified_at", "confirmed_eligible", "confirmed_gross", "payout_id", "closed_at", "close_reason"}, n, func(i int) ([]any, bool) {
		f := all[i]
		id := f.id()
		vals := []any{id, f.number(), f.storeCode(), f.block(), benchStates[f.state], "PASSPORT", f.nationality(),
			id[8:], "k1", []byte{1, 2, 3}, "E****123", benchDocExpiry, f.nationality(), f.purchase().AddDate(0, 0, -5), f.purchase(),
			f.issuedAt(), f.purchase().AddDate(0, 0, 90), cents(f.eligible), cents(f.gross()), f.pendingID(),
			nil, nil, nil, nil, nil, nil, nil, nil}
		if f.confirmed() {
			ce, cg := cents(f.eligible), cents(f.gross())
			if f.state == bRejected {
				ce, cg = decimal.Zero, decimal.Zero
			}
			vals[20], vals[21], vals[22], vals[23], vals[24] = f.portCode(), "officer-1", f.verifiedAt(), ce, cg
		}
		if f.paid() {
			// Confirmed for now: paid below, once its payout's rows exist.
			vals[4] = "VERIFIED"
		}
		if f.state == bVoided || f.state == bExpired || f.state == bRejected {
			vals[26], vals[27] = f.issuedAt().Add(48*time.Hour), benchStates[f.state]
		}
		return vals, true
	})
	copyRows(tb, ctx, e.pool, "payout_forms", []string{"payout_id", "form_id", "eligible_amount", "gross_refund", "fee", "net_refund"}, n,
		func(i int) ([]any, bool) {
			f := all[i]
			if !f.paid() {
				return nil, false
			}
			return []any{f.payoutID(), f.id(), cents(f.eligible), cents(f.gross()), cents(f.fee()), cents(f.gross() - f.fee())}, true
		})
	// The payment of the paid forms, as the desk's does it (internal/payouts): the form
	// names its payout, and the database copies the payout's date, port, agency and the
	// form's share onto it (migrations/00033); the row is rewritten, as in production.
	t0 = time.Now()
	tag, err := e.pool.Exec(ctx, `UPDATE forms f SET state = 'REFUNDED', payout_id = pf.payout_id FROM payout_forms pf WHERE pf.form_id = f.id`)
	if err != nil {
		tb.Fatal(err)
	}
	if tag.RowsAffected() != int64(paid) {
		tb.Fatalf("paid %d forms, want %d", tag.RowsAffected(), paid)
	}
	tb.Logf("paid %d forms in %s", paid, time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	if _, err := e.pool.Exec(ctx, `VACUUM (ANALYZE)`); err != nil {
		tb.Fatal(err)
	}
	tb.Logf("VACUUM (ANALYZE) in %s", time.Since(t0).Round(time.Millisecond))
	return paid
}

// groupBy computes the report's figures with plain GROUP BY queries, one per dimension
// and source (forms issued in the month; refunds paid in it, if withPaid), as one would
// write them by hand.
func groupBy(ctx context.Context, pool *pgxpool.Pool, month time.Time, withPaid bool) ([]report.Row, error) {
	end := month.AddDate(0, 1, 0)
	issued := map[string]string{
		"block": "f.block_code", "store": "f.store_code", "port": "coalesce(f.verified_port, '')",
		"agency": "coalesce(p.agency_code, '')", "nationality": "f.nationality",
	}
	paid := map[string]string{
		"block": "f.block_code", "store": "f.store_code", "port": "coalesce(p.port_code, '')",
		"agency": "p.agency_code", "nationality": "f.nationality",
	}
	rows := map[string]*report.Row{}
	var order []string
	get := func(dim, key string) *report.Row {
		k := dim + "\x00" + key
		r, ok := rows[k]
		if !ok {
			r = &report.Row{Dimension: dim, Key: key}
			rows[k] = r
			order = append(order, k)
		}
		return r
	}
	for _, dim := range report.Dimensions {
		join := ""
		if dim == "agency" {
			join = "LEFT JOIN payout_forms pf ON pf.form_id = f.id LEFT JOIN payouts p ON p.id = pf.payout_id"
		}
		q := `SELECT ` + issued[dim] + `, count(*), sum(f.eligible_amount), sum(f.gross_refund),
		             count(*) FILTER (WHERE f.state = 'VOIDED'), count(*) FILTER (WHERE f.state = 'EXPIRED'),
		             count(*) FILTER (WHERE f.state IN ('ISSUED', 'VERIFIED')),
		             coalesce(sum(f.gross_refund) FILTER (WHERE f.state = 'ISSUED'), 0) + coalesce(sum(f.confirmed_gross) FILTER (WHERE f.state = 'VERIFIED'), 0)
		        FROM forms f ` + join + `
		       WHERE f.purchase_date >= $1 AND f.purchase_date < $2
		       GROUP BY 1`
		res, err := pool.Query(ctx, q, month, end)
		if err != nil {
			return nil, fmt.Errorf("%s issued: %w", dim, err)
		}
		for res.Next() {
			var key string
			var x report.Row
			if err := res.Scan(&key, &x.FormsIssued, &x.Eligible, &x.Gross, &x.FormsVoided, &x.FormsExpired, &x.FormsOutstanding, &x.OutstandingGross); err != nil {
				res.Close()
				return nil, err
			}
			r := get(dim, key)
			r.FormsIssued, r.Eligible, r.Gross, r.FormsVoided, r.FormsExpired, r.FormsOutstanding, r.OutstandingGross =
				x.FormsIssued, x.Eligible, x.Gross, x.FormsVoided, x.FormsExpired, x.FormsOutstanding, x.OutstandingGross
		}
		res.Close()
		if err := res.Err(); err != nil {
			return nil, err
		}
		if !withPaid {
			continue
		}
		from := "payouts p JOIN payout_forms pf ON pf.payout_id = p.id JOIN forms f ON f.id = pf.form_id"
		if dim == "port" || dim == "agency" {
			from = "payouts p JOIN payout_forms pf ON pf.payout_id = p.id"
		}
		q = `SELECT ` + paid[dim] + `, count(*), sum(pf.gross_refund), sum(pf.fee), sum(pf.net_refund)
		       FROM ` + from + `
		      WHERE p.paid_date >= $1 AND p.paid_date < $2
		      GROUP BY 1`
		res, err = pool.Query(ctx, q, month, end)
		if err != nil {
			return nil, fmt.Errorf("%s paid: %w", dim, err)
		}
		for res.Next() {
			var key string
			var x report.Row
			if err := res.Scan(&key, &x.FormsPaid, &x.PaidGross, &x.PaidFee, &x.PaidNet); err != nil {
				res.Close()
				return nil, err
			}
			r := get(dim, key)
			r.FormsPaid, r.PaidGross, r.PaidFee, r.PaidNet = x.FormsPaid, x.PaidGross, x.PaidFee, x.PaidNet
		}
		res.Close()
		if err := res.Err(); err != nil {
			return nil, err
		}
	}
	out := make([]report.Row, 0, len(order))
	for _, k := range order {
		out = append(out, *rows[k])
	}
	return out, nil
}

// compareRows checks that the report and the GROUP BYs agree on every figure.
func compareRows(tb testing.TB, got, want []report.Row) {
	tb.Helper()
	index := map[string]string{}
	for _, r := range want {
		index[r.Dimension+"/"+r.Key] = figures(r)
	}
	if len(got) != len(want) {
		tb.Errorf("the report has %d rows, the GROUP BYs %d", len(got), len(want))
	}
	bad := 0
	for _, r := range got {
		if w, ok := index[r.Dimension+"/"+r.Key]; !ok || w != figures(r) {
			if bad++; bad <= 5 {
				tb.Errorf("%s/%s: report %s, GROUP BY %s", r.Dimension, r.Key, figures(r), w)
			}
		}
	}
}
