package invariants_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"taxrefund/internal/dbtest"
	"taxrefund/internal/forms"
	"taxrefund/internal/idempotency"
	"taxrefund/internal/immediate"
	"taxrefund/internal/invariants"
	"taxrefund/internal/ledger"
	"taxrefund/internal/params"
	"taxrefund/internal/payouts"
	"taxrefund/internal/refund"
	"taxrefund/internal/seal"
	"taxrefund/internal/settlement"
)

// t0 is 12:00 on Tuesday 2026-03-10 in Asia/Shanghai.
var t0 = time.Date(2026, 3, 10, 4, 0, 0, 0, time.UTC)

// world is a database in which every kind of money fact exists, made by the services:
//
//   - issued: a form still ISSUED (2 × 1,000.00 at 13%, 500.00 at 9%: A 1,500.00, G 150.00);
//   - paid: a form of 3 units of 1,000.00 at 13% and 500.00 at 9%, confirmed at CKG for
//     2 of the 3 units (A' 1,166.67, G' 113.33) and paid in cash at CKG-01;
//   - completed: an immediate refund prepaid at IFS-RP and completed by customs at TFU
//     (a PREPAYMENT payout; the hold released);
//   - captured: an immediate refund prepaid at IFS-RP and never exported (captured);
//   - AG-CQ's March 2026 declaration (the cash payout), approved;
//   - every journal transaction and audit event sealed.
type world struct {
	pool                        *pgxpool.Pool
	issued, paid, completed     forms.Form
	captured                    forms.Form
	payout                      payouts.Payout
	completedPrep, capturedPrep immediate.Prepayment
	declaration                 uuid.UUID
}

func newWorld(t *testing.T) world {
	t.Helper()
	ctx := context.Background()
	pool := dbtest.NewPool(t)
	dbtest.Registry(t, pool)
	clock := dbtest.NewClock(t0)
	led := ledger.NewStore()
	keys := dbtest.Keyring(t)
	par := params.NewCache(pool, 0)
	log := slog.New(slog.DiscardHandler)
	fs := forms.New(forms.Deps{Pool: pool, Ledger: led, Keys: keys, Params: par, Now: clock.Now, Log: log})
	ps := payouts.New(payouts.Deps{Pool: pool, Ledger: led, Keys: keys, Params: par, Forms: fs, Now: clock.Now, Log: log})
	imm := immediate.New(immediate.Deps{Pool: pool, Ledger: led, Keys: keys, Params: par, Forms: fs, Now: clock.Now, Log: log})
	set := settlement.New(pool, led, clock.Now)

	seq := 0
	issue := func(store, doc string, lines ...refund.Line) forms.Form {
		t.Helper()
		seq++
		today := refund.LocalDate(clock.Now())
		inv := fmt.Sprintf("INV-%04d", seq)
		for i := range lines {
			lines[i].Description, lines[i].Category, lines[i].InvoiceNumber = fmt.Sprintf("goods %d", i+1), refund.General, inv
		}
		f, err := fs.Issue(ctx, forms.IssueRequest{
			Idem:      forms.Idempotency{Caller: "store/" + store, RequestID: uuid.New(), Hash: forms.HashOf([]byte(inv))},
			StoreCode: store,
			Application: refund.Application{
				Traveller: refund.Traveller{
					Document:    passport(doc),
					Expiry:      time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC),
					Nationality: "GB", LastEntry: refund.AddDays(today, -5),
				},
				Invoices: []refund.Invoice{{Number: inv, Date: today}},
				Lines:    lines,
			},
		})
		if err != nil {
			t.Fatalf("issue at %s: %v", store, err)
		}
		return f
	}
	line := func(qty int32, amount, vat string) refund.Line {
		return refund.Line{Quantity: qty, Amount: decimal.RequireFromString(amount), VATRate: decimal.RequireFromString(vat)}
	}
	verify := func(port string, f forms.Form, doc string, confirmed map[int]int32) forms.Form {
		t.Helper()
		v, err := fs.Verify(ctx, forms.VerifyRequest{
			Idem: forms.Idempotency{Caller: "customs/" + port + "/officer-3", RequestID: uuid.New(), Hash: forms.HashOf([]byte(f.Number))},
			Port: port, Officer: "officer-3", Number: f.Number, Presented: passport(doc), Confirmed: confirmed,
		})
		if err != nil {
			t.Fatalf("verify %s at %s: %v", f.Number, port, err)
		}
		return v
	}
	prepay := func(f forms.Form, doc string) immediate.Prepayment {
		t.Helper()
		p, err := imm.Pay(ctx, immediate.PayRequest{
			Idem:     idempotency.Key{Caller: "desk/IFS-RP/cashier-7", RequestID: uuid.New(), Hash: idempotency.Hash([]byte(f.Number))},
			DeskCode: "IFS-RP", Cashier: "cashier-7", Number: f.Number, Presented: passport(doc), Agreement: "AGR-" + f.Number,
			PreAuth: immediate.PreAuth{Token: "tok_" + strings.ReplaceAll(doc, "0", "x"), Last4: "4242",
				Expiry: time.Date(2027, 12, 1, 0, 0, 0, 0, time.UTC), Authorized: decimal.RequireFromString("150.00")},
			DeparturePort: "TFU",
		})
		if err != nil {
			t.Fatalf("prepay %s: %v", f.Number, err)
		}
		return p
	}
	authority := func(what string) idempotency.Key {
		return idempotency.Key{Caller: "authority/sat-test", RequestID: uuid.New(), Hash: idempotency.Hash([]byte(what))}
	}

	var w world
	w.pool = pool
	w.issued = issue("S-JFB-1", "E1000001", line(2, "1000.00", "0.13"), line(1, "500.00", "0.09"))
	w.paid = issue("S-JFB-2", "E1000002", line(3, "1000.00", "0.13"), line(1, "500.00", "0.09"))
	w.completed = issue("S-CXL-1", "E1000003", line(2, "1000.00", "0.13"), line(1, "500.00", "0.09"))
	w.captured = issue("S-CXL-1", "E1000004", line(1, "900.00", "0.13"))
	w.completedPrep = prepay(w.completed, "E1000003")
	w.capturedPrep = prepay(w.captured, "E1000004")

	clock.Set(t0.Add(24 * time.Hour))
	w.paid = verify("CKG", w.paid, "E1000002", map[int]int32{1: 2, 2: 1})
	var err error
	w.payout, err = ps.Settle(ctx, payouts.SettleRequest{
		Idem:     idempotency.Key{Caller: "desk/CKG-01/cashier-2", RequestID: uuid.New(), Hash: idempotency.Hash([]byte(w.paid.Number))},
		DeskCode: "CKG-01", Cashier: "cashier-2", Numbers: []string{w.paid.Number}, Presented: passport("E1000002"),
		Method: payouts.Cash, Receipt: "RCPT-1",
	})
	if err != nil {
		t.Fatalf("settle: %v", err)
	}
	w.completed = verify("TFU", w.completed, "E1000003", map[int]int32{1: 2, 2: 1})

	// After the capture date of the one never exported (committed 03-27, due 04-01).
	clock.Set(time.Date(2026, 4, 2, 4, 0, 0, 0, time.UTC))
	if n, err := imm.Captures(ctx, "test capture job"); err != nil || n != 1 {
		t.Fatalf("captures: %d, %v; want 1", n, err)
	}
	d, err := set.Declare(ctx, idempotency.Key{Caller: "agency/AG-CQ/clerk", RequestID: uuid.New(), Hash: idempotency.Hash([]byte("2026-03"))},
		"AG-CQ", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatalf("declare: %v", err)
	}
	if d.Forms != 1 {
		t.Fatalf("the declaration has %d forms, want the paid one", d.Forms)
	}
	if _, err := set.Approve(ctx, authority("approve"), d.ID); err != nil {
		t.Fatalf("approve: %v", err)
	}
	w.declaration = d.ID
	if _, err := (&seal.Sealer{Pool: pool, Log: log}).SealAll(ctx); err != nil {
		t.Fatalf("seal: %v", err)
	}
	var unsealed int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM seal_queue`).Scan(&unsealed); err != nil || unsealed != 0 {
		t.Fatalf("%d rows left unsealed (%v)", unsealed, err)
	}
	return w
}

func passport(number string) refund.Document {
	return refund.Document{Type: refund.Passport, Number: number, IssuingCountry: "GB"}
}

// TestTamperedMoneyColumns changes one money column (or one sealed row) at a time, as the
// tables' owner would, with the append-only triggers out of the way, and wants the
// invariant check to name the form or row. Each change is rolled back before the next.
func TestTamperedMoneyColumns(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()

	vs, err := invariants.Check(ctx, w.pool)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		t.Errorf("untampered: invariant %s violated: %s", v.Invariant, v.Detail)
	}
	if t.Failed() {
		t.FailNow()
	}

	var payoutTxn, completedPayout, issueTxn, auditID string
	if err := w.pool.QueryRow(ctx, `SELECT txn_id::text FROM payouts WHERE id = $1`, w.payout.ID).Scan(&payoutTxn); err != nil {
		t.Fatal(err)
	}
	if err := w.pool.QueryRow(ctx, `SELECT id::text FROM payouts WHERE method = 'PREPAYMENT'`).Scan(&completedPayout); err != nil {
		t.Fatal(err)
	}
	if err := w.pool.QueryRow(ctx, `SELECT pending_id::text FROM forms WHERE number = $1`, w.issued.Number).Scan(&issueTxn); err != nil {
		t.Fatal(err)
	}
	if err := w.pool.QueryRow(ctx, `SELECT id::text FROM audit_events WHERE object = $1 AND action = 'FORM_ISSUED'`, w.issued.Number).Scan(&auditID); err != nil {
		t.Fatal(err)
	}
	formID := func(f forms.Form) string { return f.ID.String() }
	payout, decl := w.payout.ID.String(), w.declaration.String()
	completedPrep, capturedPrep := w.completedPrep.ID.String(), w.capturedPrep.ID.String()

	cases := []struct {
		name  string
		table string
		sql   string
		args  []any
		want  string // what a violation's detail must name
	}{
		{"form_lines.amount", "form_lines", `UPDATE form_lines SET amount = amount * 100 WHERE form_id = $1 AND line_no = 1`, []any{formID(w.issued)}, w.issued.Number},
		{"form_lines.vat_rate", "form_lines", `UPDATE form_lines SET vat_rate = 0.09 WHERE form_id = $1 AND line_no = 1`, []any{formID(w.issued)}, w.issued.Number},
		{"form_lines.refund_rate", "form_lines", `UPDATE form_lines SET refund_rate = 0.13 WHERE form_id = $1 AND line_no = 1`, []any{formID(w.issued)}, w.issued.Number},
		{"form_lines.quantity", "form_lines", `UPDATE form_lines SET quantity = 4 WHERE form_id = $1 AND line_no = 1`, []any{formID(w.paid)}, w.paid.Number},
		{"form_lines.confirmed_qty", "form_lines", `UPDATE form_lines SET confirmed_qty = 3 WHERE form_id = $1 AND line_no = 1`, []any{formID(w.paid)}, w.paid.Number},
		{"forms.eligible_amount", "forms", `UPDATE forms SET eligible_amount = eligible_amount + 0.01 WHERE id = $1`, []any{formID(w.issued)}, w.issued.Number},
		{"forms.gross_refund", "forms", `UPDATE forms SET gross_refund = gross_refund * 100 WHERE id = $1`, []any{formID(w.issued)}, w.issued.Number},
		{"forms.confirmed_eligible", "forms", `UPDATE forms SET confirmed_eligible = confirmed_eligible - 100 WHERE id = $1`, []any{formID(w.paid)}, w.paid.Number},
		{"forms.confirmed_gross", "forms", `UPDATE forms SET confirmed_gross = confirmed_gross - 0.01 WHERE id = $1`, []any{formID(w.paid)}, w.paid.Number},
		{"forms.paid_fee", "forms", `UPDATE forms SET paid_fee = paid_fee + 1, paid_net = paid_net - 1 WHERE id = $1`, []any{formID(w.paid)}, w.paid.Number},
		{"forms.paid_date", "forms", `UPDATE forms SET paid_date = paid_date - 31 WHERE id = $1`, []any{formID(w.paid)}, w.paid.Number},
		{"forms.paid_agency", "forms", `UPDATE forms SET paid_agency = paid_agency || '-X' WHERE id = $1`, []any{formID(w.completed)}, w.completed.Number},
		{"pending_transfers.amount", "pending_transfers", `UPDATE pending_transfers SET amount = amount * 100 WHERE id = $1`, []any{issueTxn}, w.issued.Number},
		{"pending_resolutions.posted_amount", "pending_resolutions", `UPDATE pending_resolutions r SET posted_amount = posted_amount - 1 FROM forms f WHERE f.pending_id = r.pending_id AND f.id = $1`, []any{formID(w.paid)}, w.paid.Number},
		{"journal_entries.amount", "journal_entries", `UPDATE journal_entries SET amount = amount * 100 WHERE id = (
			SELECT e.id FROM journal_entries e JOIN accounts a ON a.id = e.account_id WHERE e.txn_id = $1 AND a.code = 'travellers:refund_payable')`, []any{payoutTxn}, payout},
		{"account_balances.posted_cr", "account_balances", `UPDATE account_balances SET posted_cr = posted_cr + 1000 WHERE (account_id, shard) = (
			SELECT b.account_id, b.shard FROM account_balances b JOIN accounts a ON a.id = b.account_id WHERE a.code = 'travellers:refund_payable' LIMIT 1)`, nil, "travellers:refund_payable"},
		{"payouts.gross_refund", "payouts", `UPDATE payouts SET gross_refund = gross_refund + 10, net_refund = net_refund + 10 WHERE id = $1`, []any{payout}, payout},
		{"payouts.fee", "payouts", `UPDATE payouts SET fee = fee + 1, net_refund = net_refund - 1 WHERE id = $1`, []any{payout}, payout},
		{"payouts.net_refund", "payouts", `UPDATE payouts SET net_refund = net_refund + 1, fee = fee - 1 WHERE id = $1`, []any{completedPayout}, completedPayout},
		{"payouts.fee_rate", "payouts", `UPDATE payouts SET fee_rate = 0.01 WHERE id = $1`, []any{payout}, payout},
		{"payout_forms.eligible_amount", "payout_forms", `UPDATE payout_forms SET eligible_amount = eligible_amount + 1 WHERE form_id = $1`, []any{formID(w.paid)}, w.paid.Number},
		{"payout_forms.gross_refund", "payout_forms", `UPDATE payout_forms SET gross_refund = gross_refund + 1, net_refund = net_refund + 1 WHERE form_id = $1`, []any{formID(w.paid)}, w.paid.Number},
		{"payout_forms.fee", "payout_forms", `UPDATE payout_forms SET fee = fee + 1, net_refund = net_refund - 1 WHERE form_id = $1`, []any{formID(w.paid)}, w.paid.Number},
		{"prepayments.gross_refund", "prepayments", `UPDATE prepayments SET gross_refund = gross_refund - 1, net_refund = net_refund - 1 WHERE id = $1`, []any{capturedPrep}, capturedPrep},
		{"prepayments.fee", "prepayments", `UPDATE prepayments SET fee = fee + 1, net_refund = net_refund - 1 WHERE id = $1`, []any{completedPrep}, w.completed.Number},
		{"prepayments.fee_rate", "prepayments", `UPDATE prepayments SET fee_rate = 0.03 WHERE id = $1`, []any{capturedPrep}, capturedPrep},
		{"prepayments.authorized_amount", "prepayments", `UPDATE prepayments SET authorized_amount = authorized_amount + 100 WHERE id = $1`, []any{completedPrep}, w.completed.Number},
		{"acquirer_outbox.amount", "acquirer_outbox", `UPDATE acquirer_outbox SET amount = amount * 100 WHERE prepayment_id = $1`, []any{capturedPrep}, w.captured.Number},
		{"declarations.gross_refund", "declarations", `UPDATE declarations SET gross_refund = gross_refund * 100, net_refund = gross_refund * 100 - fee WHERE id = $1`, []any{decl}, decl},
		{"declarations.forms", "declarations", `UPDATE declarations SET forms = forms + 1 WHERE id = $1`, []any{decl}, decl},
		{"parameters.refund_rate", "parameters", `UPDATE parameters SET value = 0.12 WHERE name = 'refund_rate' AND scope = '0.13'`, nil, w.issued.Number},
		{"parameters.agency_fee_rate", "parameters", `UPDATE parameters SET value = 0.05 WHERE name = 'agency_fee_rate' AND scope = 'AG-CQ'`, nil, payout},
		{"journal_txns.effective_date (sealed)", "journal_txns", `UPDATE journal_txns SET effective_date = effective_date - 1 WHERE id = $1`, []any{issueTxn}, issueTxn},
		{"audit_events.detail (sealed)", "audit_events", `UPDATE audit_events SET detail = detail || '{"gross": "15000.00"}' WHERE id = $1`, []any{auditID}, auditID},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tx, err := w.pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tx.Rollback(ctx) }()
			// The owner may switch off its own tables' append-only triggers; the change is
			// rolled back with the transaction.
			if _, err := tx.Exec(ctx, `ALTER TABLE `+pgx.Identifier{c.table}.Sanitize()+` DISABLE TRIGGER USER`); err != nil {
				t.Fatal(err)
			}
			tag, err := tx.Exec(ctx, c.sql, c.args...)
			if err != nil {
				t.Fatalf("tamper: %v", err)
			}
			if tag.RowsAffected() == 0 {
				t.Fatalf("tamper changed no row")
			}
			if _, err := tx.Exec(ctx, `ALTER TABLE `+pgx.Identifier{c.table}.Sanitize()+` ENABLE TRIGGER USER`); err != nil {
				t.Fatal(err)
			}
			vs, err := invariants.Check(ctx, tx)
			if err != nil {
				t.Fatal(err)
			}
			var named bool
			for _, v := range vs {
				named = named || strings.Contains(v.Detail, c.want)
			}
			if !named {
				t.Errorf("no violation names %s; found %d: %v", c.want, len(vs), vs)
			}
		})
	}
}

// TestPaidFormsCarryTheirPayoutAsTheDatabaseCopiedIt: a paid form's copy of its payout's
// date, port, agency and its share (migrations/00033) is the database's. It is filled as
// the desk pays and as customs' confirmation completes an immediate refund (a party
// that may not read payouts); a write to it, even the owner's, is overwritten from the
// payout's rows; a form that names a payout with no row for it is refused; and a form
// not paid carries nothing. Its broken control is TestTamperedMoneyColumns: with the
// trigger switched off, the same write sticks and paid_forms_carry_their_payout names it.
func TestPaidFormsCarryTheirPayoutAsTheDatabaseCopiedIt(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	const copyOf = `
		SELECT f.paid_date = p.paid_date AND f.paid_port IS NOT DISTINCT FROM p.port_code AND f.paid_agency = p.agency_code
		       AND f.paid_gross = pf.gross_refund AND f.paid_fee = pf.fee AND f.paid_net = pf.net_refund,
		       format('%s %s %s %s/%s/%s', f.paid_date, f.paid_port, f.paid_agency, f.paid_gross, f.paid_fee, f.paid_net)
		  FROM forms f JOIN payout_forms pf ON pf.form_id = f.id AND pf.payout_id = f.payout_id JOIN payouts p ON p.id = f.payout_id
		 WHERE f.number = $1`
	same := func(number string) {
		t.Helper()
		var ok bool
		var got string
		if err := w.pool.QueryRow(ctx, copyOf, number).Scan(&ok, &got); err != nil {
			t.Fatalf("form %s: %v", number, err)
		}
		if !ok {
			t.Errorf("form %s carries %s, not its payout's", number, got)
		}
	}
	same(w.paid.Number)      // paid at the desk
	same(w.completed.Number) // an immediate refund, completed by customs' confirmation
	var got string
	if err := w.pool.QueryRow(ctx, `SELECT format('%s %s %s %s', paid_date, paid_port, paid_agency, paid_fee) FROM forms WHERE number = $1`,
		w.paid.Number).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if want := "2026-03-11 CKG AG-CQ"; !strings.HasPrefix(got, want) {
		t.Errorf("the paid form carries %q, want %q…", got, want)
	}

	// The owner's write to the copy is overwritten from the payout's rows.
	tag, err := w.pool.Exec(ctx, `UPDATE forms SET paid_fee = paid_fee + 1, paid_date = paid_date - 31, paid_agency = 'AG-CD' WHERE number = $1`, w.paid.Number)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("owner's write: %v, %d rows", err, tag.RowsAffected())
	}
	same(w.paid.Number)
	// A form not paid carries nothing, whatever is written.
	if _, err := w.pool.Exec(ctx, `UPDATE forms SET paid_date = date '2026-03-10' WHERE number = $1`, w.issued.Number); err != nil {
		t.Fatal(err)
	}
	var carried int
	if err := w.pool.QueryRow(ctx, `SELECT num_nonnulls(paid_date, paid_port, paid_agency, paid_gross, paid_fee, paid_net) FROM forms WHERE number = $1`,
		w.issued.Number).Scan(&carried); err != nil {
		t.Fatal(err)
	}
	if carried != 0 {
		t.Errorf("the unpaid form carries %d payout figures", carried)
	}
	// A form that names a payout without a row for it is refused, on insert and on update.
	_, err = w.pool.Exec(ctx, `INSERT INTO forms SELECT (jsonb_populate_record(f, jsonb_build_object(
		'id', gen_random_uuid(), 'number', 'TRCOPY1', 'pending_id', (SELECT pending_id FROM forms WHERE number = $2)))).*
		  FROM forms f WHERE number = $1`, w.paid.Number, w.issued.Number)
	if code := dbtest.SQLState(err); code != "23503" {
		t.Errorf("a new form naming another form's payout: %v (SQLSTATE %s), want 23503", err, code)
	}
	_, err = w.pool.Exec(ctx, `UPDATE forms SET payout_id = $2 WHERE number = $1`, w.completed.Number, w.payout.ID)
	if code := dbtest.SQLState(err); code != "23503" {
		t.Errorf("a form moved to another payout: %v (SQLSTATE %s), want 23503", err, code)
	}
	vs, err := invariants.Check(ctx, w.pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 0 {
		t.Errorf("violations after the refused and overwritten writes: %v", vs)
	}
}
