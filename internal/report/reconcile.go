package report

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"taxrefund/internal/db"
	"taxrefund/internal/invariants"
	"taxrefund/internal/ledger"
)

// Side is one side of the three-way match, counted for the month.
type Side struct {
	Name   string
	Forms  int64
	Amount decimal.Decimal
}

// Exception is one difference between issuance, confirmations and payouts.
type Exception struct {
	Kind    string
	Subject string
	Reason  string
}

// Balance is an account's posted balance at the end of the month.
type Balance struct {
	Account string
	Debits  decimal.Decimal
	Credits decimal.Decimal
}

// Reconciliation is a month's three-way match.
type Reconciliation struct {
	Month        time.Time
	Sides        []Side
	Exceptions   []Exception
	TrialBalance []Balance
	Violations   []ledger.Violation
	// Counts is the number of exceptions of each kind, in the order they are listed.
	Counts []KindCount
	// Summary: Exceptions holds at most the first few of each kind, and TrialBalance and
	// Violations were not read (ReconcileSummary).
	Summary bool
}

// Month boundaries in SQL are local dates; a timestamp's local date is
// (ts AT TIME ZONE 'Asia/Shanghai')::date.
const local = `AT TIME ZONE 'Asia/Shanghai'`

// monthStart and monthEnd are the instants the month's first and next month's first local
// day begin: "verified in the month" is a range of verified_at, which the index
// forms_verified_at (00030) serves, where the local date of verified_at is an expression
// no index serves.
// monthPayoutForms are a payout's rows, read by the payout (its primary key's prefix) for
// each payout of the month: a join the planner would otherwise make by hashing every
// payout row of history (as internal/report/monthly.go's LATERAL ... OFFSET 0).
const monthPayoutForms = `SELECT * FROM payout_forms x WHERE x.payout_id = p.id OFFSET 0`

const (
	monthStart = `((@start::date + time '00:00') ` + local + `)`
	monthEnd   = `((@end::date + time '00:00') ` + local + `)`
)

var sidesSQL = `
SELECT 'ISSUED', count(*), coalesce(sum(gross_refund), 0) FROM forms WHERE purchase_date >= @start AND purchase_date < @end
UNION ALL
SELECT 'CONFIRMED', count(*), coalesce(sum(confirmed_gross), 0) FROM forms
 WHERE verified_at IS NOT NULL AND state <> 'REJECTED' AND verified_at >= ` + monthStart + ` AND verified_at < ` + monthEnd + `
UNION ALL
SELECT 'PAID', count(*), coalesce(sum(pf.gross_refund), 0) FROM payouts p CROSS JOIN LATERAL (` + monthPayoutForms + `) pf
 WHERE p.paid_date >= @start AND p.paid_date < @end`

// exceptionSQL lists each exception kind; every query returns (subject, reason) rows.
// @start, @end bound the month; @days is the unpaid limit in days; @now is now.
var exceptionSQL = []struct{ kind, sql string }{
	{"CONFIRMED_UNPAID", `
		SELECT number, format('confirmed at %s on %s for %s, unpaid for %s days', verified_port, (verified_at ` + local + `)::date, confirmed_gross,
		                      ((@now::timestamptz ` + local + `)::date - (verified_at ` + local + `)::date))
		  FROM forms
		 WHERE state = 'VERIFIED' AND confirmed_gross > 0 AND verified_at >= ` + monthStart + ` AND verified_at < ` + monthEnd + `
		   AND verified_at < @now::timestamptz - make_interval(days => @days)
		 ORDER BY number`},
	{"PAID_NOT_CONFIRMED", `
		SELECT f.number, format('paid by payout %s on %s but customs never confirmed the export', p.id, p.paid_date)
		  FROM payouts p CROSS JOIN LATERAL (` + monthPayoutForms + `) pf CROSS JOIN LATERAL (SELECT * FROM forms x WHERE x.id = pf.form_id OFFSET 0) f
		 WHERE p.paid_date >= @start AND p.paid_date < @end AND (f.verified_at IS NULL OR f.confirmed_gross IS NULL)
		 ORDER BY f.number`},
	{"VOIDED_AFTER_CONFIRMATION", `
		SELECT number, format('%s after customs confirmed it at %s on %s', state, verified_port, (verified_at ` + local + `)::date)
		  FROM forms
		 WHERE verified_at IS NOT NULL AND state IN ('VOIDED', 'EXPIRED')
		   AND ((purchase_date >= @start AND purchase_date < @end) OR (verified_at >= ` + monthStart + ` AND verified_at < ` + monthEnd + `))
		 ORDER BY number`},
	{"AMOUNT_MISMATCH", `
		SELECT f.number, format('payout %s paid gross %s, customs confirmed %s', p.id, pf.gross_refund, coalesce(f.confirmed_gross::text, 'nothing'))
		  FROM payouts p CROSS JOIN LATERAL (` + monthPayoutForms + `) pf CROSS JOIN LATERAL (SELECT * FROM forms x WHERE x.id = pf.form_id OFFSET 0) f
		 WHERE p.paid_date >= @start AND p.paid_date < @end AND f.confirmed_gross IS NOT NULL AND pf.gross_refund <> f.confirmed_gross
		 ORDER BY f.number`},
	{"PAYOUT_TOTAL_MISMATCH", `
		SELECT p.id::text, format('payout totals %s/%s/%s, its forms sum to %s/%s/%s', p.gross_refund, p.fee, p.net_refund,
		                          sum(pf.gross_refund), sum(pf.fee), sum(pf.net_refund))
		  FROM payouts p CROSS JOIN LATERAL (` + monthPayoutForms + `) pf
		 WHERE p.paid_date >= @start AND p.paid_date < @end
		 GROUP BY p.id
		HAVING p.gross_refund <> sum(pf.gross_refund) OR p.fee <> sum(pf.fee) OR p.net_refund <> sum(pf.net_refund)
		 ORDER BY p.id`},
	{"DECLARATION_MISMATCH", `
		WITH paid AS (
			SELECT p.agency_code, count(pf.*) AS forms, coalesce(sum(pf.gross_refund), 0) AS gross
			  FROM payouts p CROSS JOIN LATERAL (` + monthPayoutForms + `) pf
			 WHERE p.paid_date >= @start AND p.paid_date < @end GROUP BY p.agency_code)
		SELECT d.id::text, format('%s declared %s forms for %s; its payouts of the month are %s forms for %s',
		                          d.agency_code, d.forms, d.gross_refund, coalesce(paid.forms, 0), coalesce(paid.gross, 0))
		  FROM declarations d LEFT JOIN paid ON paid.agency_code = d.agency_code
		 WHERE d.month = @start AND d.status <> 'RETURNED'
		   AND (d.forms <> coalesce(paid.forms, 0) OR d.gross_refund <> coalesce(paid.gross, 0))
		 ORDER BY d.id`},
	{"UNDECLARED_PAYOUT", `
		SELECT p.id::text, format('%s paid %s on %s; no declaration of the month by the 15th of the next', p.agency_code, p.gross_refund, p.paid_date)
		  FROM payouts p
		 WHERE p.paid_date >= @start AND p.paid_date < @end AND (@now::timestamptz ` + local + `)::date > (@end::date + 14)
		   AND NOT EXISTS (SELECT 1 FROM declaration_payouts dp JOIN declarations d ON d.id = dp.declaration_id
		                    WHERE dp.payout_id = p.id AND d.status <> 'RETURNED')
		 ORDER BY p.id`},
}

// trialBalanceSQL is every account's posted debits and credits up to the end of the month:
// the ledger's maintained posted balances (account_balances, one row per shard) less the
// posted entries of the transactions dated after the month. It reads the entries after the
// month alone (none for the current month; journal_txns_effective_month, 00030), not every
// entry of history. Equal to summing the entries up to the month's end as long as the
// maintained balances equal the entries, which the ledger's own invariant
// (balances_match_entries, in Violations) checks on every full reconciliation. An account
// is listed once it has a posted entry by the end of the month (entries are positive).
const trialBalanceSQL = `
WITH later AS (
	SELECT e.account_id,
	       coalesce(sum(e.amount) FILTER (WHERE e.side = 'D'), 0) AS dr,
	       coalesce(sum(e.amount) FILTER (WHERE e.side = 'C'), 0) AS cr
	  FROM journal_txns t
	 CROSS JOIN LATERAL (SELECT * FROM journal_entries x WHERE x.txn_id = t.id AND NOT x.pending OFFSET 0) e
	 WHERE t.effective_date >= @end
	 GROUP BY e.account_id),
cur AS (
	SELECT account_id, sum(posted_dr) AS dr, sum(posted_cr) AS cr FROM account_balances GROUP BY account_id)
SELECT a.code, n.dr - coalesce(l.dr, 0), n.cr - coalesce(l.cr, 0)
  FROM cur n JOIN accounts a ON a.id = n.account_id LEFT JOIN later l ON l.account_id = n.account_id
 WHERE n.dr - coalesce(l.dr, 0) <> 0 OR n.cr - coalesce(l.cr, 0) <> 0
 ORDER BY a.code`

// KindCount is how many exceptions of a kind the month has.
type KindCount struct {
	Kind  string
	Count int64
}

// Reconcile matches the month's store issuance, customs confirmations and agency payouts:
// each difference is an exception with its reason. It adds the trial balance at the end
// of the month and DOMAIN.md §8's invariants. now is the reference for "unpaid for N days".
func Reconcile(ctx context.Context, q db.DBTX, month time.Time, unpaidAfterDays int, now time.Time) (Reconciliation, error) {
	r, err := reconcile(ctx, q, month, unpaidAfterDays, now, 0)
	if err != nil {
		return r, err
	}
	rows, err := q.Query(ctx, trialBalanceSQL, pgx.NamedArgs{"end": month.AddDate(0, 1, 0)})
	if err != nil {
		return r, fmt.Errorf("trial balance: %w", err)
	}
	r.TrialBalance, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Balance, error) {
		var b Balance
		err := row.Scan(&b.Account, &b.Debits, &b.Credits)
		return b, err
	})
	if err != nil {
		return r, fmt.Errorf("trial balance: %w", err)
	}
	r.Violations, err = invariants.Check(ctx, q)
	return r, err
}

// ReconcileSummary is the month's match without the trial balance and the invariants
// (which are the whole ledger's, not the month's): the sides, the count of each kind of
// exception and at most limit exceptions of each kind, in Reconcile's order. Every query
// it makes reads the month's rows alone.
func ReconcileSummary(ctx context.Context, q db.DBTX, month time.Time, unpaidAfterDays int, now time.Time, limit int) (Reconciliation, error) {
	if limit < 1 {
		return Reconciliation{Month: month}, fmt.Errorf("reconcile summary: limit %d", limit)
	}
	return reconcile(ctx, q, month, unpaidAfterDays, now, limit)
}

// reconcile reads the sides and the exceptions; limit > 0 keeps that many of each kind.
func reconcile(ctx context.Context, q db.DBTX, month time.Time, unpaidAfterDays int, now time.Time, limit int) (Reconciliation, error) {
	end := month.AddDate(0, 1, 0)
	r := Reconciliation{Month: month, Summary: limit > 0}
	args := pgx.NamedArgs{"start": month, "end": end, "days": unpaidAfterDays, "now": now}
	rows, err := q.Query(ctx, sidesSQL, args)
	if err != nil {
		return r, fmt.Errorf("reconcile: %w", err)
	}
	r.Sides, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Side, error) {
		var s Side
		err := row.Scan(&s.Name, &s.Forms, &s.Amount)
		return s, err
	})
	if err != nil {
		return r, fmt.Errorf("reconcile: %w", err)
	}
	for _, x := range exceptionSQL {
		sql := x.sql
		if limit > 0 {
			args["limit"] = limit
			sql = summarized(x.sql)
		}
		rows, err := q.Query(ctx, sql, args)
		if err != nil {
			return r, fmt.Errorf("reconcile %s: %w", x.kind, err)
		}
		var count int64
		found, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Exception, error) {
			e := Exception{Kind: x.kind}
			if limit > 0 {
				err := row.Scan(&count, &e.Subject, &e.Reason)
				return e, err
			}
			err := row.Scan(&e.Subject, &e.Reason)
			return e, err
		})
		if err != nil {
			return r, fmt.Errorf("reconcile %s: %w", x.kind, err)
		}
		if limit == 0 {
			count = int64(len(found))
		}
		r.Counts = append(r.Counts, KindCount{Kind: x.kind, Count: count})
		r.Exceptions = append(r.Exceptions, found...)
	}
	return r, nil
}

// summarized wraps an exception query: each row carries the total count, and only the
// first @limit rows (in the query's order) are returned.
func summarized(sql string) string {
	return `WITH x AS MATERIALIZED (` + sql + `), n AS (SELECT count(*) AS n FROM x)
SELECT n.n, x.* FROM (SELECT * FROM x LIMIT @limit) x, n`
}
