// Package invariants checks DOMAIN.md §8's invariants over the whole database: the
// ledger's own (balanced journal, maintained balances, open pending transfers, receivable
// equals payable) and those that tie every money fact to the next: a form's lines to its
// totals (DOMAIN.md §3), its totals to its pending transfer and the transaction that
// resolved it, its confirmed totals to its payout and its prepayment, payouts and
// prepayments to their journal transactions and the acquirer's instructions, payouts to
// the declarations that claim them, and every sealed journal and audit row to its seal.
// A money column changed behind the services' back (a form's gross amount multiplied by
// 100 by whoever can write the table) breaks at least one of these, which names the form
// or row.
package invariants

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"taxrefund/internal/db"
	"taxrefund/internal/ledger"
	"taxrefund/internal/refund"
	"taxrefund/internal/seal"
)

// entries is the posted (or pending, by the caller's filter) total of each transaction,
// account and side: the checks below join it by transaction and account code.
const postedEntries = `
	SELECT e.txn_id, a.code, e.side, sum(e.amount) AS s
	  FROM journal_entries e JOIN accounts a ON a.id = e.account_id
	 WHERE NOT e.pending
	 GROUP BY e.txn_id, a.code, e.side`

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
	// The copy of a paid form's payout that the monthly report reads (migrations/00033).
	// The database fills it; a difference means a row was changed behind its triggers.
	{"paid_forms_carry_their_payout", `
		SELECT format('form %s carries payout %s of %s at %s by %s, %s/%s/%s; the payout says %s at %s by %s, %s/%s/%s',
		              f.number, f.payout_id, f.paid_date, coalesce(f.paid_port, '-'), f.paid_agency, f.paid_gross, f.paid_fee, f.paid_net,
		              p.paid_date, coalesce(p.port_code, '-'), p.agency_code, pf.gross_refund, pf.fee, pf.net_refund)
		  FROM forms f JOIN payout_forms pf ON pf.form_id = f.id AND pf.payout_id = f.payout_id JOIN payouts p ON p.id = pf.payout_id
		 WHERE (f.paid_date, f.paid_port, f.paid_agency, f.paid_gross, f.paid_fee, f.paid_net)
		       IS DISTINCT FROM (p.paid_date, p.port_code, p.agency_code, pf.gross_refund, pf.fee, pf.net_refund)`},
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

	// A line's refund rate is the one the parameters give its VAT rate (DOMAIN.md §3):
	// a changed VAT rate, refund rate or parameter value leaves no parameter that fits.
	{"line_refund_rate", `
		SELECT format('form %s line %s: refund rate %s at VAT %s is not a refund_rate parameter in force on %s',
		              f.number, l.line_no, l.refund_rate, l.vat_rate, (f.issued_at AT TIME ZONE 'Asia/Shanghai')::date)
		  FROM form_lines l JOIN forms f ON f.id = l.form_id
		 WHERE NOT EXISTS (
			SELECT 1 FROM parameters p
			 WHERE p.name = 'refund_rate' AND p.value = l.refund_rate
			   AND CASE WHEN p.scope ~ '^[0-9]+(\.[0-9]+)?$' THEN p.scope::numeric END = l.vat_rate
			   AND p.valid_from <= (f.issued_at AT TIME ZONE 'Asia/Shanghai')::date)`},
	// Issuing a form makes a pending transfer of G from the refund expense to the
	// travellers' payable: the transfer and its two pending entries carry the form's G.
	{"form_pending_transfer", `
		WITH e AS (
			SELECT e.txn_id, a.code, e.pending, e.side, sum(e.amount) AS s, count(*) AS n
			  FROM journal_entries e JOIN accounts a ON a.id = e.account_id
			 GROUP BY e.txn_id, a.code, e.pending, e.side)
		SELECT format('form %s: gross refund %s, its pending transfer %s, pending entries Dr refund_expense %s / Cr refund_payable %s',
		              f.number, f.gross_refund, coalesce(p.amount::text, 'missing'), coalesce(d.s::text, 'none'), coalesce(c.s::text, 'none'))
		  FROM forms f
		  LEFT JOIN pending_transfers p ON p.id = f.pending_id
		  LEFT JOIN accounts pd ON pd.id = p.debit_account
		  LEFT JOIN accounts pc ON pc.id = p.credit_account
		  LEFT JOIN e d ON d.txn_id = f.pending_id AND d.pending AND d.side = 'D' AND d.code = 'authority:refund_expense'
		  LEFT JOIN e c ON c.txn_id = f.pending_id AND c.pending AND c.side = 'C' AND c.code = 'travellers:refund_payable'
		 WHERE p.amount IS DISTINCT FROM f.gross_refund
		    OR pd.code IS DISTINCT FROM 'authority:refund_expense' OR pc.code IS DISTINCT FROM 'travellers:refund_payable'
		    OR d.s IS DISTINCT FROM f.gross_refund OR c.s IS DISTINCT FROM f.gross_refund
		    OR EXISTS (SELECT 1 FROM journal_entries x WHERE x.txn_id = f.pending_id AND (NOT x.pending OR x.account_id NOT IN (p.debit_account, p.credit_account)))`},
	// The transaction that resolves a pending transfer releases all of it and posts what
	// its resolution says, no more.
	{"resolution_entries", `
		WITH e AS (
			SELECT txn_id, account_id, pending, side, sum(amount) AS s FROM journal_entries GROUP BY txn_id, account_id, pending, side)
		SELECT format('form %s: pending transfer of %s resolved %s for %s, its transaction releases %s and posts %s/%s',
		              coalesce(f.number, r.pending_id::text), p.amount, r.outcome, r.posted_amount,
		              coalesce(rel.s, 0), coalesce(pd.s, 0), coalesce(pc.s, 0))
		  FROM pending_resolutions r
		  JOIN pending_transfers p ON p.id = r.pending_id
		  LEFT JOIN forms f ON f.pending_id = r.pending_id
		  LEFT JOIN e rel ON rel.txn_id = r.txn_id AND rel.account_id = p.debit_account AND rel.pending AND rel.side = 'C'
		  LEFT JOIN e pd ON pd.txn_id = r.txn_id AND pd.account_id = p.debit_account AND NOT pd.pending AND pd.side = 'D'
		  LEFT JOIN e pc ON pc.txn_id = r.txn_id AND pc.account_id = p.credit_account AND NOT pc.pending AND pc.side = 'C'
		 WHERE rel.s IS DISTINCT FROM p.amount OR coalesce(pd.s, 0) <> r.posted_amount OR coalesce(pc.s, 0) <> r.posted_amount`},
	// A paid form's payout row carries the form's confirmed A' and G'.
	{"payout_forms_match_forms", `
		SELECT format('form %s: confirmed %s/%s (eligible/gross), its payout %s row says %s/%s',
		              f.number, coalesce(f.confirmed_eligible::text, 'none'), coalesce(f.confirmed_gross::text, 'none'),
		              pf.payout_id, pf.eligible_amount, pf.gross_refund)
		  FROM payout_forms pf JOIN forms f ON f.id = pf.form_id
		 WHERE pf.eligible_amount IS DISTINCT FROM f.confirmed_eligible OR pf.gross_refund IS DISTINCT FROM f.confirmed_gross`},
	// The fee rate of a payout or prepayment is the paying agency's, in force that day.
	{"fee_rate_in_force", `
		WITH paid AS (
			SELECT 'payout' AS what, id, agency_code, paid_date, fee_rate FROM payouts
			UNION ALL
			SELECT 'prepayment', id, agency_code, paid_date, fee_rate FROM prepayments)
		SELECT format('%s %s: fee rate %s, agency %s''s rate on %s is %s', x.what, x.id, x.fee_rate, x.agency_code, x.paid_date,
		              coalesce(r.value::text, 'not set'))
		  FROM paid x
		  LEFT JOIN LATERAL (
			SELECT value FROM parameters
			 WHERE name = 'agency_fee_rate' AND scope = x.agency_code AND valid_from <= x.paid_date
			 ORDER BY valid_from DESC LIMIT 1) r ON true
		 WHERE r.value IS DISTINCT FROM x.fee_rate`},
	// A payout's transaction moves its G from the travellers' payable to the agency, its F
	// to the agency's fees and its N out of the desk's cash or the agency's transfers (a
	// completed prepayment's N comes out of the prepayments, checked with them).
	{"payout_journal", `
		WITH e AS (` + postedEntries + `)
		SELECT format('payout %s: gross %s, fee %s, net %s; its journal transaction %s moves refund %s, receivable %s, fee %s, net %s',
		              p.id, p.gross_refund, p.fee, p.net_refund, coalesce(p.txn_id::text, 'none'),
		              coalesce(g.s, 0), coalesce(r.s, 0), coalesce(f.s, 0), coalesce(n.s::text, '-'))
		  FROM payouts p
		  LEFT JOIN e g ON g.txn_id = p.txn_id AND g.code = 'travellers:refund_payable' AND g.side = 'D'
		  LEFT JOIN e r ON r.txn_id = p.txn_id AND r.code = 'agency:' || p.agency_code || ':receivable' AND r.side = 'D'
		  LEFT JOIN e f ON f.txn_id = p.txn_id AND f.code = 'agency:' || p.agency_code || ':fee_income' AND f.side = 'C'
		  LEFT JOIN e n ON n.txn_id = p.txn_id AND n.side = 'C' AND n.code = CASE p.method
		             WHEN 'CASH' THEN 'agency:' || p.agency_code || ':cash:' || p.desk_code
		             WHEN 'PREPAYMENT' THEN NULL
		             ELSE 'agency:' || p.agency_code || ':transfers' END
		 WHERE coalesce(g.s, 0) <> p.gross_refund OR coalesce(r.s, 0) <> p.gross_refund OR coalesce(f.s, 0) <> p.fee
		    OR (p.method <> 'PREPAYMENT' AND coalesce(n.s, 0) <> p.net_refund)`},
	// A prepayment is the form's G less the fee; its transaction pays N out of the refund
	// point's cash into the agency's prepayments, and the transaction that resolved it
	// (completion, capture or return) takes all of N out of them again. A completed one is
	// the form's payout, which never pays more than was prepaid.
	{"prepayment_journal", `
		WITH e AS (` + postedEntries + `)
		SELECT format('prepayment %s of form %s (%s): gross %s (form %s), net %s; paid in %s/%s, resolved %s%s',
		              p.id, f.number, p.state, p.gross_refund, f.gross_refund, p.net_refund, coalesce(d.s, 0), coalesce(c.s, 0),
		              coalesce(r.s::text, '-'), coalesce(', payout net ' || pay.net_refund, ''))
		  FROM prepayments p
		  JOIN forms f ON f.id = p.form_id
		  LEFT JOIN payouts pay ON p.state = 'COMPLETED' AND pay.txn_id = p.resolved_txn_id
		  LEFT JOIN e d ON d.txn_id = p.txn_id AND d.code = 'agency:' || p.agency_code || ':prepayments' AND d.side = 'D'
		  LEFT JOIN e c ON c.txn_id = p.txn_id AND c.code = 'agency:' || p.agency_code || ':cash:' || p.desk_code AND c.side = 'C'
		  LEFT JOIN e r ON r.txn_id = p.resolved_txn_id AND r.code = 'agency:' || p.agency_code || ':prepayments' AND r.side = 'C'
		 WHERE p.gross_refund <> f.gross_refund OR coalesce(d.s, 0) <> p.net_refund OR coalesce(c.s, 0) <> p.net_refund
		    OR (p.resolved_txn_id IS NOT NULL AND coalesce(r.s, 0) <> p.net_refund)
		    OR (p.state = 'COMPLETED' AND (pay.id IS NULL OR pay.net_refund > p.net_refund OR f.payout_id IS DISTINCT FROM pay.id))`},
	// Each instruction to the card acquirer moves the amount its prepayment calls for: a
	// release frees the whole hold, a capture takes N, a partial capture what a completed
	// prepayment's payout did not use.
	{"acquirer_amounts", `
		SELECT format('acquirer instruction %s (%s) of prepayment %s of form %s: amount %s, the prepayment calls for %s%s',
		              o.idem_key, o.kind, p.id, f.number, o.amount, coalesce(w.want::text, 'nothing'),
		              coalesce(', delivered as ' || d.amount, ''))
		  FROM acquirer_outbox o
		  JOIN prepayments p ON p.id = o.prepayment_id
		  JOIN forms f ON f.id = p.form_id
		  LEFT JOIN payouts pay ON p.state = 'COMPLETED' AND pay.txn_id = p.resolved_txn_id
		  LEFT JOIN dev_acquirer_received d ON d.idem_key = o.idem_key
		  CROSS JOIN LATERAL (SELECT CASE o.kind
		         WHEN 'RELEASE' THEN p.authorized_amount
		         WHEN 'CAPTURE' THEN p.net_refund
		         WHEN 'PARTIAL_CAPTURE' THEN p.net_refund - pay.net_refund END AS want) w
		 WHERE w.want IS DISTINCT FROM o.amount OR (d.idem_key IS NOT NULL AND d.amount <> o.amount)`},
	// A declaration claims exactly its payouts' forms; an approved one reimburses its G.
	{"declaration_totals", `
		WITH e AS (` + postedEntries + `),
		s AS (
			SELECT dp.declaration_id, count(pf.form_id) AS n, coalesce(sum(pf.gross_refund), 0) AS g,
			       coalesce(sum(pf.fee), 0) AS f, coalesce(sum(pf.net_refund), 0) AS net
			  FROM declaration_payouts dp JOIN payout_forms pf ON pf.payout_id = dp.payout_id
			 GROUP BY dp.declaration_id)
		SELECT format('declaration %s of %s for %s (%s): %s forms %s/%s/%s, its payouts %s forms %s/%s/%s, reimbursed %s',
		              d.id, d.agency_code, to_char(d.month, 'YYYY-MM'), d.status, d.forms, d.gross_refund, d.fee, d.net_refund,
		              coalesce(s.n, 0), coalesce(s.g, 0), coalesce(s.f, 0), coalesce(s.net, 0), coalesce(x.s::text, '-'))
		  FROM declarations d
		  LEFT JOIN s ON s.declaration_id = d.id
		  LEFT JOIN e x ON x.txn_id = d.txn_id AND x.code = 'authority:agency_payable:' || d.agency_code AND x.side = 'D'
		 WHERE d.forms <> coalesce(s.n, 0) OR d.gross_refund <> coalesce(s.g, 0) OR d.fee <> coalesce(s.f, 0)
		    OR d.net_refund <> coalesce(s.net, 0) OR (d.txn_id IS NOT NULL AND coalesce(x.s, 0) <> d.gross_refund)`},
}

// Check returns every violation found; none means the database is consistent. q must
// see every row (the owner, or a party of the authority or the service's jobs).
func Check(ctx context.Context, q db.DBTX) ([]ledger.Violation, error) {
	out, err := CheckLedger(ctx, q)
	if err != nil {
		return nil, err
	}
	found, err := sealedRows(ctx, q)
	if err != nil {
		return nil, err
	}
	return append(out, found...), nil
}

// CheckLedger is Check without the sealed rows: for a caller that verifies the hash
// chains itself (the server's periodic check, which reads only what was sealed since its
// last round, and all of them once a day).
func CheckLedger(ctx context.Context, q db.DBTX) ([]ledger.Violation, error) {
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
	found, err := formTotals(ctx, q)
	if err != nil {
		return nil, err
	}
	return append(out, found...), nil
}

// sealedRows verifies both hash chains from their first seal: a sealed row that changed
// or went, or a seal that did, is a violation.
func sealedRows(ctx context.Context, q db.DBTX) ([]ledger.Violation, error) {
	var out []ledger.Violation
	for _, chain := range seal.Chains {
		r, err := seal.Verify(ctx, q, chain)
		if err != nil {
			return nil, fmt.Errorf("check sealed rows: %w", err)
		}
		b := r.Broken
		if b == nil {
			continue
		}
		// A sealed row that changed or went, or a seal that did: not rows that are
		// merely not sealed yet (the chain's own verification reports those; the
		// benchmarks' bulk fill writes them with the triggers off).
		var sealed bool
		if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM seals WHERE chain = $1 AND seq = $2)`, chain, b.Seq).Scan(&sealed); err != nil {
			return nil, fmt.Errorf("check sealed rows: %w", err)
		}
		if sealed {
			out = append(out, ledger.Violation{Invariant: "sealed_rows",
				Detail: fmt.Sprintf("%s chain: seal %d (row %s) %s", chain, b.Seq, b.RowID, b.Reason)})
		}
	}
	return out, nil
}

// formTotals recomputes each form's A and G, and A' and G' once confirmed, from its lines
// with the service's own exact computation (refund.Compute: a partly confirmed line
// counts amount × q / Q, rounded once at the end, which SQL's numeric division cannot
// promise), and from them the fee and net of its payout row and of its prepayment.
func formTotals(ctx context.Context, q db.DBTX) ([]ledger.Violation, error) {
	rows, err := q.Query(ctx, `
		SELECT f.number, f.eligible_amount, f.gross_refund, f.confirmed_eligible, f.confirmed_gross,
		       coalesce(array_agg(l.amount ORDER BY l.line_no) FILTER (WHERE l.line_no IS NOT NULL), '{}'),
		       coalesce(array_agg(l.refund_rate ORDER BY l.line_no) FILTER (WHERE l.line_no IS NOT NULL), '{}'),
		       coalesce(array_agg(l.quantity ORDER BY l.line_no) FILTER (WHERE l.line_no IS NOT NULL), '{}'),
		       coalesce(array_agg(coalesce(l.confirmed_qty, -1) ORDER BY l.line_no) FILTER (WHERE l.line_no IS NOT NULL), '{}'),
		       pf.payout_id IS NOT NULL, coalesce(pf.eligible_amount, 0), coalesce(pf.gross_refund, 0), coalesce(pf.fee, 0),
		       coalesce(pf.net_refund, 0), coalesce(p.fee_rate, 0), coalesce(p.method, ''),
		       pp.id IS NOT NULL, coalesce(pp.fee_rate, 0), coalesce(pp.fee, 0), coalesce(pp.net_refund, 0)
		  FROM forms f
		  LEFT JOIN form_lines l ON l.form_id = f.id
		  LEFT JOIN payout_forms pf ON pf.form_id = f.id
		  LEFT JOIN payouts p ON p.id = pf.payout_id
		  LEFT JOIN prepayments pp ON pp.form_id = f.id
		 GROUP BY f.id, pf.payout_id, pf.form_id, p.id, pp.id`)
	if err != nil {
		return nil, fmt.Errorf("check form_totals: %w", err)
	}
	defer rows.Close()
	var out []ledger.Violation
	add := func(number, format string, args ...any) {
		out = append(out, ledger.Violation{Invariant: "form_totals", Detail: "form " + number + ": " + fmt.Sprintf(format, args...)})
	}
	var (
		number                            string
		eligible, gross                   decimal.Decimal
		confEligible, confGross           decimal.NullDecimal
		amounts, rates                    []decimal.Decimal
		qty, conf                         []int32
		paid, prepaid                     bool
		pfEligible, pfGross, pfFee, pfNet decimal.Decimal
		payRate, ppRate, ppFee, ppNet     decimal.Decimal
		method                            string
	)
	_, err = pgx.ForEachRow(rows, []any{&number, &eligible, &gross, &confEligible, &confGross, &amounts, &rates, &qty, &conf,
		&paid, &pfEligible, &pfGross, &pfFee, &pfNet, &payRate, &method, &prepaid, &ppRate, &ppFee, &ppNet}, func() error {
		if len(amounts) == 0 {
			add(number, "has no lines")
			return nil
		}
		lines := make([]refund.Line, len(amounts))
		confirmed, anyConfirmed, allConfirmed := make([]int32, len(amounts)), false, true
		for i := range amounts {
			lines[i] = refund.Line{Amount: amounts[i], RefundRate: rates[i], Quantity: qty[i]}
			confirmed[i] = max(conf[i], 0)
			anyConfirmed = anyConfirmed || conf[i] >= 0
			allConfirmed = allConfirmed && conf[i] >= 0
		}
		full := refund.Compute(lines, nil)
		if !full.Eligible.Equal(eligible) || !full.Gross.Equal(gross) {
			add(number, "eligible %s and gross %s, its lines make %s and %s", eligible, gross, full.Eligible, full.Gross)
		}
		if prepaid {
			fee := full.Fee(ppRate)
			if !fee.Equal(ppFee) || !full.Gross.Sub(fee).Equal(ppNet) {
				add(number, "prepaid fee %s and net %s, its lines make %s and %s at %s", ppFee, ppNet, fee, full.Gross.Sub(fee), ppRate)
			}
		}
		if confEligible.Valid != confGross.Valid || confEligible.Valid != allConfirmed || (anyConfirmed && !allConfirmed) {
			add(number, "confirmed totals %v/%v but confirmed quantities %v", confEligible.Valid, confGross.Valid, conf)
			return nil
		}
		if !confEligible.Valid {
			if paid {
				add(number, "has a payout row but no confirmed export")
			}
			return nil
		}
		part := refund.Compute(lines, confirmed)
		if !part.Eligible.Equal(confEligible.Decimal) || !part.Gross.Equal(confGross.Decimal) {
			add(number, "confirmed eligible %s and gross %s, its confirmed lines make %s and %s",
				confEligible.Decimal, confGross.Decimal, part.Eligible, part.Gross)
		}
		if paid {
			fee := part.Fee(payRate)
			net := part.Gross.Sub(fee)
			if method == "PREPAYMENT" && prepaid && net.GreaterThan(ppNet) {
				// immediate.OnExport: the traveller already has the prepaid N.
				net = ppNet
				fee = part.Gross.Sub(net)
			}
			if !pfEligible.Equal(part.Eligible) || !pfGross.Equal(part.Gross) || !pfFee.Equal(fee) || !pfNet.Equal(net) {
				add(number, "payout row %s/%s/%s/%s (eligible/gross/fee/net), its confirmed lines make %s/%s/%s/%s at %s",
					pfEligible, pfGross, pfFee, pfNet, part.Eligible, part.Gross, fee, net, payRate)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("check form_totals: %w", err)
	}
	return out, nil
}
