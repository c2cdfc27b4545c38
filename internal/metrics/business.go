package metrics

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"

	"taxrefund/internal/db"
)

// The business as the database has it. Sums are computed with decimal in SQL and Go and
// only turned into a float (the exposition format's only number) when exposed.
//
// The queries read whole tables' aggregates: a scrape runs them at most once per cache
// TTL (15 s by default), whatever the number of scrapers.

var (
	formsDesc = prometheus.NewDesc(Namespace+"_forms_total",
		"Refund forms by outcome: issued (every form ever issued), voided, expired, rejected, refunded (paid: REFUNDED or SETTLED); port is the port of export, empty before it.",
		[]string{"outcome", "block", "port"}, nil)
	formsCNYDesc = prometheus.NewDesc(Namespace+"_forms_refund_cny_total",
		"Gross refund of those forms in CNY: as issued for issued, voided and expired; as confirmed at export for rejected and refunded.",
		[]string{"outcome", "block", "port"}, nil)
	openFormsDesc = prometheus.NewDesc(Namespace+"_forms_open",
		"Forms now ISSUED (awaiting export) or VERIFIED (awaiting payment), by block.",
		[]string{"state", "block"}, nil)
	payoutsDesc = prometheus.NewDesc(Namespace+"_payouts_total",
		"Payouts by method (CASH, BANK_CARD, MOBILE, PREPAYMENT).", []string{"method"}, nil)
	payoutsCNYDesc = prometheus.NewDesc(Namespace+"_payouts_net_cny_total",
		"Net refund paid in CNY, by method.", []string{"method"}, nil)
	cashTodayDesc = prometheus.NewDesc(Namespace+"_desk_cash_paid_today_cny",
		"Cash paid by each desk today (Asia/Shanghai), in CNY.", []string{"desk"}, nil)
	cashCapDesc = prometheus.NewDesc(Namespace+"_cash_cap_cny",
		"The cash cap in force today: the most cash one traveller's document may be paid on one day, in CNY.", nil, nil)
	prepaidDesc = prometheus.NewDesc(Namespace+"_prepayments_pending",
		"Immediate-refund prepayments not yet confirmed, released or captured, by working days left to the capture deadline (overdue, 0 = due today, 1, 2, 3, 4+).",
		[]string{"working_days_left"}, nil)
	prepaidCNYDesc = prometheus.NewDesc(Namespace+"_prepayments_pending_cny",
		"Net refund of those prepayments in CNY.", []string{"working_days_left"}, nil)
	outboxDesc = prometheus.NewDesc(Namespace+"_acquirer_outbox_pending",
		"Acquirer instructions not yet delivered.", nil, nil)
	outboxAgeDesc = prometheus.NewDesc(Namespace+"_acquirer_outbox_oldest_age_seconds",
		"Age of the oldest undelivered acquirer instruction; 0 when none.", nil, nil)
	scrapeOKDesc = prometheus.NewDesc(Namespace+"_business_scrape_success",
		"1 when the last read of the business metrics from the database succeeded.", nil, nil)
	scrapeAtDesc = prometheus.NewDesc(Namespace+"_business_scrape_timestamp_seconds",
		"When the business metrics were last read from the database.", nil, nil)
)

type business struct {
	pool *pgxpool.Pool
	ttl  time.Duration

	mu   sync.Mutex
	at   time.Time
	ok   bool
	last []prometheus.Metric
}

func newBusiness(pool *pgxpool.Pool, ttl time.Duration) *business {
	if ttl <= 0 {
		ttl = 15 * time.Second
	}
	return &business{pool: pool, ttl: ttl}
}

func (b *business) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{formsDesc, formsCNYDesc, openFormsDesc, payoutsDesc, payoutsCNYDesc,
		cashTodayDesc, cashCapDesc, prepaidDesc, prepaidCNYDesc, outboxDesc, outboxAgeDesc, scrapeOKDesc, scrapeAtDesc} {
		ch <- d
	}
}

func (b *business) Collect(ch chan<- prometheus.Metric) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if time.Since(b.at) >= b.ttl {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ms, err := b.read(db.WithParty(ctx, "system", "metrics"))
		cancel()
		b.at, b.ok = time.Now(), err == nil
		if err == nil {
			b.last = ms
		}
	}
	for _, m := range b.last {
		ch <- m
	}
	ok := 0.0
	if b.ok {
		ok = 1
	}
	ch <- prometheus.MustNewConstMetric(scrapeOKDesc, prometheus.GaugeValue, ok)
	ch <- prometheus.MustNewConstMetric(scrapeAtDesc, prometheus.GaugeValue, float64(b.at.UnixNano())/1e9)
}

func cny(d decimal.Decimal) float64 { return d.InexactFloat64() }

// read runs every query in one read-only transaction as the system party (row security
// lets it see every form and payout).
func (b *business) read(ctx context.Context) ([]prometheus.Metric, error) {
	var out []prometheus.Metric
	add := func(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
		out = append(out, prometheus.MustNewConstMetric(d, t, v, labels...))
	}
	err := db.InTx(ctx, b.pool, func(tx pgx.Tx) error {
		out = out[:0]
		rows, err := tx.Query(ctx, `
			SELECT 'issued', block_code, '', count(*), coalesce(sum(gross_refund), 0) FROM forms GROUP BY block_code
			UNION ALL
			SELECT CASE state WHEN 'VOIDED' THEN 'voided' WHEN 'EXPIRED' THEN 'expired' WHEN 'REJECTED' THEN 'rejected' ELSE 'refunded' END,
			       block_code, coalesce(verified_port, ''), count(*),
			       coalesce(sum(CASE WHEN state IN ('VOIDED', 'EXPIRED') THEN gross_refund ELSE confirmed_gross END), 0)
			  FROM forms WHERE state IN ('VOIDED', 'EXPIRED', 'REJECTED', 'REFUNDED', 'SETTLED')
			 GROUP BY 1, 2, 3`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var outcome, block, port string
			var n int64
			var sum decimal.Decimal
			if err := rows.Scan(&outcome, &block, &port, &n, &sum); err != nil {
				return err
			}
			add(formsDesc, prometheus.CounterValue, float64(n), outcome, block, port)
			add(formsCNYDesc, prometheus.CounterValue, cny(sum), outcome, block, port)
		}
		if err := rows.Err(); err != nil {
			return err
		}

		rows, err = tx.Query(ctx, `SELECT state, block_code, count(*) FROM forms WHERE state IN ('ISSUED', 'VERIFIED') GROUP BY 1, 2`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var state, block string
			var n int64
			if err := rows.Scan(&state, &block, &n); err != nil {
				return err
			}
			add(openFormsDesc, prometheus.GaugeValue, float64(n), state, block)
		}
		if err := rows.Err(); err != nil {
			return err
		}

		rows, err = tx.Query(ctx, `SELECT method, count(*), coalesce(sum(net_refund), 0) FROM payouts GROUP BY method`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var method string
			var n int64
			var sum decimal.Decimal
			if err := rows.Scan(&method, &n, &sum); err != nil {
				return err
			}
			add(payoutsDesc, prometheus.CounterValue, float64(n), method)
			add(payoutsCNYDesc, prometheus.CounterValue, cny(sum), method)
		}
		if err := rows.Err(); err != nil {
			return err
		}

		// Every desk, those that paid no cash today at 0.
		rows, err = tx.Query(ctx, `
			SELECT d.code, coalesce(sum(p.net_refund), 0)
			  FROM desks d LEFT JOIN payouts p ON p.desk_code = d.code AND p.method = 'CASH'
			       AND p.paid_date = (now() AT TIME ZONE 'Asia/Shanghai')::date
			 GROUP BY d.code`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var desk string
			var sum decimal.Decimal
			if err := rows.Scan(&desk, &sum); err != nil {
				return err
			}
			add(cashTodayDesc, prometheus.GaugeValue, cny(sum), desk)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		var capValue decimal.NullDecimal
		if err := tx.QueryRow(ctx, `
			SELECT value FROM parameters WHERE name = 'cash_cap' AND scope = ''
			   AND valid_from <= (now() AT TIME ZONE 'Asia/Shanghai')::date
			 ORDER BY valid_from DESC LIMIT 1`).Scan(&capValue); err != nil && err != pgx.ErrNoRows {
			return err
		}
		if capValue.Valid {
			add(cashCapDesc, prometheus.GaugeValue, cny(capValue.Decimal))
		}

		// Working days left: the working days after today up to the deadline, in the
		// calendar the capture deadline itself is computed with.
		rows, err = tx.Query(ctx, `
			WITH today AS (SELECT (now() AT TIME ZONE 'Asia/Shanghai')::date AS d),
			due AS (SELECT capture_due, count(*) AS n, sum(net_refund) AS v FROM prepayments WHERE state = 'PREPAID' GROUP BY capture_due)
			SELECT CASE WHEN due.capture_due < today.d THEN -1
			            ELSE (SELECT count(*) FROM generate_series(today.d + 1, due.capture_due, interval '1 day') g
			                   WHERE is_working_day(g::date)) END,
			       due.n, due.v
			  FROM due, today`)
		if err != nil {
			return err
		}
		pending := map[string]int64{}
		pendingCNY := map[string]decimal.Decimal{}
		for rows.Next() {
			var left, n int64
			var sum decimal.Decimal
			if err := rows.Scan(&left, &n, &sum); err != nil {
				return err
			}
			label := daysLabel(left)
			pending[label] += n
			pendingCNY[label] = pendingCNY[label].Add(sum)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for _, label := range []string{"overdue", "0", "1", "2", "3", "4+"} {
			add(prepaidDesc, prometheus.GaugeValue, float64(pending[label]), label)
			add(prepaidCNYDesc, prometheus.GaugeValue, cny(pendingCNY[label]), label)
		}

		var backlog int64
		var age float64
		if err := tx.QueryRow(ctx, `
			SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8
			  FROM acquirer_outbox WHERE delivered_at IS NULL`).Scan(&backlog, &age); err != nil {
			return err
		}
		add(outboxDesc, prometheus.GaugeValue, float64(backlog))
		add(outboxAgeDesc, prometheus.GaugeValue, age)
		return nil
	})
	return out, err
}

// daysLabel bounds the working days left to a few labels.
func daysLabel(left int64) string {
	switch {
	case left < 0:
		return "overdue"
	case left >= 4:
		return "4+"
	}
	return strconv.FormatInt(left, 10)
}
