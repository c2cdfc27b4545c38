// Package invariants checks DOMAIN.md §8's invariants over the whole database: the
// ledger's own (balanced journal, maintained balances, open pending transfers, receivable
// equals payable) and those that tie forms and payouts to the ledger.
package invariants

import (
	"context"

	"taxrefund/internal/ledger"
)

var checks = []struct{ name, sql string }{
	{"refund_payable_equals_verified_unpaid", `
		WITH want AS (SELECT coalesce(sum(confirmed_gross), 0) AS v FROM forms WHERE state = 'VERIFIED'),
		have AS (
			SELECT coalesce(sum(b.posted_cr - b.posted_dr), 0) AS v
			  FROM accounts a JOIN account_balances b ON b.account_id = a.id
			 WHERE a.code = 'travellers:refund_payable')
		SELECT format('travellers:refund_payable is %s; VERIFIED unpaid forms owe %s', have.v, want.v)
		  FROM want, have WHERE want.v <> have.v`},
	{"paid_forms_have_one_payout", `
		SELECT format('form %s is %s with payout %s but %s payout rows', f.number, f.state, coalesce(f.payout_id::text, 'none'), count(pf.form_id))
		  FROM forms f LEFT JOIN payout_forms pf ON pf.form_id = f.id AND pf.payout_id = f.payout_id
		 WHERE f.state IN ('REFUNDED', 'SETTLED')
		 GROUP BY f.id, f.number, f.state, f.payout_id
		HAVING count(pf.form_id) <> 1`},
	{"payout_rows_match_forms", `
		SELECT format('form %s has a payout row but is %s', f.number, f.state)
		  FROM payout_forms pf JOIN forms f ON f.id = pf.form_id
		 WHERE f.state NOT IN ('REFUNDED', 'SETTLED') OR f.payout_id IS DISTINCT FROM pf.payout_id`},
	{"payout_totals", `
		SELECT format('payout %s: totals %s/%s/%s, its forms sum to %s/%s/%s', p.id, p.gross_refund, p.fee, p.net_refund,
		              sum(pf.gross_refund), sum(pf.fee), sum(pf.net_refund))
		  FROM payouts p JOIN payout_forms pf ON pf.payout_id = p.id
		 GROUP BY p.id
		HAVING p.gross_refund <> sum(pf.gross_refund) OR p.fee <> sum(pf.fee) OR p.net_refund <> sum(pf.net_refund)`},
	{"form_pending_matches_state", `
		SELECT format('form %s is %s but its pending transfer is %s (posted %s, confirmed gross %s)', f.number, f.state,
		              coalesce(r.outcome, 'open'), coalesce(r.posted_amount::text, '-'), coalesce(f.confirmed_gross::text, '-'))
		  FROM forms f LEFT JOIN pending_resolutions r ON r.pending_id = f.pending_id
		 WHERE CASE
		         WHEN f.state = 'ISSUED' THEN r.pending_id IS NOT NULL
		         WHEN f.state IN ('VOIDED', 'EXPIRED', 'REJECTED') THEN r.outcome IS DISTINCT FROM 'VOIDED'
		         ELSE r.posted_amount IS DISTINCT FROM f.confirmed_gross
		             OR (r.outcome IS DISTINCT FROM 'POSTED' AND f.confirmed_gross > 0)
		       END`},
	{"prepayments_match_outstanding", `
		WITH want AS (
			SELECT agency_code, sum(net_refund) AS v FROM prepayments WHERE state = 'PREPAID' GROUP BY agency_code),
		have AS (
			SELECT substring(a.code FROM '^agency:(.*):prepayments$') AS agency_code, coalesce(sum(b.posted_dr - b.posted_cr), 0) AS v
			  FROM accounts a JOIN account_balances b ON b.account_id = a.id
			 WHERE a.code LIKE 'agency:%:prepayments' GROUP BY a.code)
		SELECT format('agency %s: prepayments account %s, outstanding prepayments %s', coalesce(w.agency_code, h.agency_code),
		              coalesce(h.v, 0), coalesce(w.v, 0))
		  FROM want w FULL JOIN have h ON h.agency_code = w.agency_code
		 WHERE coalesce(w.v, 0) <> coalesce(h.v, 0)`},
}

// Check returns every violation found; none means the database is consistent.
func Check(ctx context.Context, q ledger.Querier) ([]ledger.Violation, error) {
	out, err := ledger.Check(ctx, q)
	if err != nil {
		return nil, err
	}
	for _, c := range checks {
		found, err := ledger.QueryViolations(ctx, q, c.name, c.sql)
		if err != nil {
			return nil, err
		}
		out = append(out, found...)
	}
	return out, nil
}
