package ledger

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Violation is one broken ledger invariant.
type Violation struct {
	Invariant string
	Detail    string
}

// ledgerChecks are the invariants the ledger keeps on its own (DOMAIN.md §8). Each query
// returns one text row per violation.
var ledgerChecks = []struct{ name, sql string }{
	{"journal_balanced", `
		SELECT format('txn %s (%s layer): debits %s, credits %s', txn_id, CASE WHEN pending THEN 'pending' ELSE 'posted' END,
		              coalesce(sum(amount) FILTER (WHERE side = 'D'), 0), coalesce(sum(amount) FILTER (WHERE side = 'C'), 0))
		  FROM journal_entries
		 GROUP BY txn_id, pending
		HAVING coalesce(sum(amount) FILTER (WHERE side = 'D'), 0) <> coalesce(sum(amount) FILTER (WHERE side = 'C'), 0)`},
	{"balances_match_entries", `
		WITH e AS (
			SELECT account_id,
			       coalesce(sum(amount) FILTER (WHERE NOT pending AND side = 'D'), 0) - coalesce(sum(amount) FILTER (WHERE NOT pending AND side = 'C'), 0) AS posted,
			       coalesce(sum(amount) FILTER (WHERE pending AND side = 'D'), 0) - coalesce(sum(amount) FILTER (WHERE pending AND side = 'C'), 0) AS pending
			  FROM journal_entries GROUP BY account_id),
		b AS (
			SELECT account_id, sum(posted_dr - posted_cr) AS posted, sum(pending_dr - pending_cr) AS pending
			  FROM ledger_balances GROUP BY account_id)
		SELECT format('account %s: maintained balance %s/%s (posted/pending), entries say %s/%s', a.code,
		              coalesce(b.posted, 0), coalesce(b.pending, 0), coalesce(e.posted, 0), coalesce(e.pending, 0))
		  FROM accounts a LEFT JOIN e ON e.account_id = a.id LEFT JOIN b ON b.account_id = a.id
		 WHERE coalesce(b.posted, 0) <> coalesce(e.posted, 0) OR coalesce(b.pending, 0) <> coalesce(e.pending, 0)`},
	{"pending_matches_open_transfers", `
		WITH open AS (
			SELECT p.* FROM pending_transfers p
			 WHERE NOT EXISTS (SELECT 1 FROM pending_resolutions r WHERE r.pending_id = p.id)),
		want AS (
			SELECT account, sum(amount) AS pending FROM (
				SELECT debit_account AS account, amount FROM open
				UNION ALL
				SELECT credit_account, -amount FROM open) x
			 GROUP BY account),
		have AS (
			SELECT account_id, sum(pending_dr - pending_cr) AS pending FROM ledger_balances GROUP BY account_id)
		SELECT format('account %s: pending balance %s, open pending transfers sum to %s', a.code, coalesce(h.pending, 0), coalesce(w.pending, 0))
		  FROM accounts a LEFT JOIN want w ON w.account = a.id LEFT JOIN have h ON h.account_id = a.id
		 WHERE coalesce(h.pending, 0) <> coalesce(w.pending, 0)`},
	{"receivable_equals_payable", `
		WITH bal AS (
			SELECT a.code, coalesce(sum(b.posted_dr - b.posted_cr), 0) AS posted
			  FROM accounts a LEFT JOIN account_balances b ON b.account_id = a.id GROUP BY a.code),
		agencies AS (
			SELECT substring(code FROM '^agency:(.*):receivable$') AS agency FROM accounts WHERE code LIKE 'agency:%:receivable'
			UNION
			SELECT substring(code FROM '^authority:agency_payable:(.*)$') FROM accounts WHERE code LIKE 'authority:agency_payable:%')
		SELECT format('agency %s: receivable %s, authority payable %s', g.agency, coalesce(r.posted, 0), coalesce(-p.posted, 0))
		  FROM agencies g
		  LEFT JOIN bal r ON r.code = 'agency:' || g.agency || ':receivable'
		  LEFT JOIN bal p ON p.code = 'authority:agency_payable:' || g.agency
		 WHERE coalesce(r.posted, 0) <> coalesce(-p.posted, 0)`},
}

// Check runs the ledger's own invariants over the whole database and returns every
// violation found (none: a consistent ledger).
func Check(ctx context.Context, q Querier) ([]Violation, error) {
	var out []Violation
	for _, c := range ledgerChecks {
		found, err := QueryViolations(ctx, q, c.name, c.sql)
		if err != nil {
			return nil, err
		}
		out = append(out, found...)
	}
	return out, nil
}

// QueryViolations runs a check query that returns one text row per violation.
func QueryViolations(ctx context.Context, q Querier, name, sql string) ([]Violation, error) {
	rows, err := q.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("check %s: %w", name, err)
	}
	details, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("check %s: %w", name, err)
	}
	out := make([]Violation, len(details))
	for i, d := range details {
		out[i] = Violation{Invariant: name, Detail: d}
	}
	return out, nil
}
