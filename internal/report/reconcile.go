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
}

// Month boundaries in SQL are local dates; a timestamp's local date is
// (ts AT TIME ZONE 'Asia/Shanghai')::date.
const local = `AT TIME ZONE 'Asia/Shanghai'`

var sidesSQL = `
SELECT 'ISSUED', count(*), coalesce(sum(gross_refund), 0) FROM forms WHERE purchase_date >= @start AND purchase_date < @end
UNION ALL
SELECT 'CONFIRMED', count(*), coalesce(sum(confirmed_gross), 0) FROM forms
 WHERE verified_at IS NOT NULL AND state <> 'REJECTED' AND (verified_at ` + local + `)::date >= @start AND (verified_at ` + local + `)::date < @end
UNION ALL
SELECT 'PAID', count(*), coalesce(sum(pf.gross_refund), 0) FROM payouts p JOIN payout_forms pf ON pf.payout_id = p.id
 WHERE p.paid_date >= @start AND p.paid_date < @end`

// exceptionSQL lists each exception kind; every query returns (subject, reason) rows.
// @start, @end bound the month; @days is the unpaid limit in days; @now is now.
var exceptionSQL = []struct{ kind, sql string }{
	{"CONFIRMED_UNPAID", `
		SELECT number, format('confirmed at %s on %s for %s, unpaid for %s days', verified_port, (verified_at ` + local + `)::date, confirmed_gross,
		                      ((@now::timestamptz ` + local + `)::date - (verified_at ` + local + `)::date))
		  FROM forms
		 WHERE state = 'VERIFIED' AND confirmed_gross > 0 AND (verified_at ` + local + `)::date >= @start AND (verified_at ` + local + `)::date < @end
		   AND verified_at < @now::timestamptz - make_interval(days => @days)
		 ORDER BY number`},
	{"PAID_NOT_CONFIRMED", `
		SELECT f.number, format('paid by payout %s on %s but customs never confirmed the export', p.id, p.paid_date)
		  FROM payouts p JOIN payout_forms pf ON pf.payout_id = p.id JOIN forms f ON f.id = pf.form_id
		 WHERE p.paid_date >= @start AND p.paid_date < @end AND (f.verified_at IS NULL OR f.confirmed_gross IS NULL)
		 ORDER BY f.number`},
	{"VOIDED_AFTER_CONFIRMATION", `
		SELECT number, format('%s after customs confirmed it at %s on %s', state, verified_port, (verified_at ` + local + `)::date)
		  FROM forms
		 WHERE verified_at IS NOT NULL AND state IN ('VOIDED', 'EXPIRED')
		   AND ((purchase_date >= @start AND purchase_date < @end) OR ((verified_at ` + local + `)::date >= @start AND (verified_at ` + local + `)::date < @end))
		 ORDER BY number`},
	{"AMOUNT_MISMATCH", `
		SELECT f.number, format('payout %s paid gross %s, customs confirmed %s', p.id, pf.gross_refund, coalesce(f.confirmed_gross::text, 'nothing'))
		  FROM payouts p JOIN payout_forms pf ON pf.payout_id = p.id JOIN forms f ON f.id = pf.form_id
		 WHERE p.paid_date >= @start AND p.paid_date < @end AND f.confirmed_gross IS NOT NULL AND pf.gross_refund <> f.confirmed_gross
		 ORDER BY f.number`},
	{"PAYOUT_TOTAL_MISMATCH", `
		SELECT p.id::text, format('payout totals %s/%s/%s, its forms sum to %s/%s/%s', p.gross_refund, p.fee, p.net_refund,
		                          sum(pf.gross_refund), sum(pf.fee), sum(pf.net_refund))
		  FROM payouts p JOIN payout_forms pf ON pf.payout_id = p.id
		 WHERE p.paid_date >= @start AND p.paid_date < @end
		 GROUP BY p.id
		HAVING p.gross_refund <> sum(pf.gross_refund) OR p.fee <> sum(pf.fee) OR p.net_refund <> sum(pf.net_refund)
		 ORDER BY p.id`},
	{"DECLARATION_MISMATCH", `
		WITH paid AS (
			SELECT p.agency_code, count(pf.*) AS forms, coalesce(sum(pf.gross_refund), 0) AS gross
			  FROM payouts p JOIN payout_forms pf ON pf.payout_id = p.id
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

// trialBalanceSQL sums every account's posted entries up to the end of the month.
const trialBalanceSQL = `
SELECT a.code, coalesce(sum(e.amount) FILTER (WHERE e.side = 'D'), 0), coalesce(sum(e.amount) FILTER (WHERE e.side = 'C'), 0)
  FROM journal_entries e
  JOIN journal_txns t ON t.id = e.txn_id
  JOIN accounts a ON a.id = e.account_id
 WHERE NOT e.pending AND t.effective_date < @end
 GROUP BY a.code
 ORDER BY a.code`

// Reconcile matches the month's store issuance, customs confirmations and agency payouts:
// each difference is an exception with its reason. It adds the trial balance at the end
// of the month and DOMAIN.md §8's invariants. now is the reference for "unpaid for N days".
func Reconcile(ctx context.Context, q db.DBTX, month time.Time, unpaidAfterDays int, now time.Time) (Reconciliation, error) {
	end := month.AddDate(0, 1, 0)
	r := Reconciliation{Month: month}
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
		rows, err := q.Query(ctx, x.sql, args)
		if err != nil {
			return r, fmt.Errorf("reconcile %s: %w", x.kind, err)
		}
		found, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Exception, error) {
			e := Exception{Kind: x.kind}
			err := row.Scan(&e.Subject, &e.Reason)
			return e, err
		})
		if err != nil {
			return r, fmt.Errorf("reconcile %s: %w", x.kind, err)
		}
		r.Exceptions = append(r.Exceptions, found...)
	}
	rows, err = q.Query(ctx, trialBalanceSQL, pgx.NamedArgs{"end": end})
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
