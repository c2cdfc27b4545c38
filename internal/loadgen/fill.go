package loadgen

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"taxrefund/internal/pii"
	"taxrefund/internal/refund"
)

// FillConfig is a growth fill: existing forms for the growth measurement.
type FillConfig struct {
	// Total is how many forms the database should hold when done; forms are added up to it.
	Total   int64
	Batch   int
	Workers int
	Stores  int
	// Months, if any, hold the purchase dates of the forms added (first days of months):
	// the batches are shared out over them in order, each batch within one month, a day
	// drawn at random. Otherwise the forms are of the last 89 days.
	Months []time.Time
	Keys   *pii.Keyring
	Log    io.Writer
}

// Fill adds ISSUED forms until the database holds cfg.Total, with every row IssueForm
// writes for each (form, lines, invoices, journal transaction and its two pending entries,
// pending transfer, idempotency record, audit event), by COPY in batches, cfg.Workers
// batches at a time, each batch one transaction. The forms are as the service writes them:
// real blind indexes and sealed document numbers (cfg.Keys is the server's key file), the
// issue scenario's Zipf travellers, 1–5 lines; their purchase dates spread over the last 89
// days, so none is due to expire while the benchmark runs; or, with cfg.Months, of those
// months (history for the monthly report; forms of past months are overdue for expiry,
// so the server measured runs with -expiry-interval 0).
//
// For speed the batches are written with session_replication_role = replica, which
// turns off the triggers: the per-row foreign-key checks, the forms' store check and the
// statement-level balance trigger. The rows are consistent by construction (each form's
// block is its store's), and a form's entries are pending entries of the refund expense
// and payable, whose pending balance is derived from the entries, not maintained
// (migrations/00017): invariants.Check holds throughout. That needs a superuser (pgenv's servers have one); for any other user the
// batches run with the triggers, about half as fast. At the end the written
// tables are vacuumed and analyzed and a checkpoint taken, so that neither autovacuum nor
// a checkpoint of the fill lands in the next measurement.
func Fill(ctx context.Context, pool *pgxpool.Pool, cfg FillConfig) error {
	if cfg.Batch < 1 || cfg.Workers < 1 || cfg.Stores < 1 {
		return errors.New("-batch, -workers and -stores must be at least 1")
	}
	have, err := benchStores(ctx, pool)
	if err != nil {
		return err
	}
	if have < cfg.Stores {
		return fmt.Errorf("%d bench stores are set up, %d wanted: run `loadgen setup`", have, cfg.Stores)
	}
	existing, err := countForms(ctx, pool)
	if err != nil {
		return err
	}
	todo := cfg.Total - existing
	if todo <= 0 {
		fmt.Fprintf(cfg.Log, "loadgen: fill: %d forms already, %d wanted: nothing to do\n", existing, cfg.Total)
		return nil
	}
	var expense, payable int32
	if err := pool.QueryRow(ctx, `SELECT (SELECT id FROM accounts WHERE code = 'authority:refund_expense'),
		(SELECT id FROM accounts WHERE code = 'travellers:refund_payable')`).Scan(&expense, &payable); err != nil {
		return fmt.Errorf("ledger accounts (run `loadgen setup`): %w", err)
	}
	blocks := map[string]string{}
	rows, err := pool.Query(ctx, `SELECT code, block_code FROM stores WHERE code LIKE 'BENCH-%'`)
	if err != nil {
		return fmt.Errorf("bench stores: %w", err)
	}
	for rows.Next() {
		var code, block string
		if err := rows.Scan(&code, &block); err != nil {
			return err
		}
		blocks[code] = block
	}
	if err := rows.Err(); err != nil {
		return err
	}
	replica := true
	if _, err := pool.Exec(ctx, `SET session_replication_role = replica; RESET session_replication_role`); err != nil {
		replica = false
		fmt.Fprintf(cfg.Log, "loadgen: fill: cannot turn triggers off (%v): writing with them\n", err)
	}
	fmt.Fprintf(cfg.Log, "loadgen: fill: adding %d forms to %d, %d per batch, %d at a time\n", todo, existing, cfg.Batch, cfg.Workers)
	start := time.Now()
	var done atomic.Int64
	var next atomic.Int64
	batches := (todo + int64(cfg.Batch) - 1) / int64(cfg.Batch)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	var printMu sync.Mutex
	lastPrint := time.Now()
	for w := range cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := &filler{r: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(w))), keys: cfg.Keys,
				stores: cfg.Stores, blocks: blocks, expense: expense, payable: payable, now: time.Now(), replica: replica}
			g.zipf = rand.NewZipf(g.r, ZipfS, ZipfV, IssueTravellers-1)
			for {
				b := next.Add(1) - 1
				if b >= batches || ctx.Err() != nil {
					return
				}
				n := min(int64(cfg.Batch), todo-b*int64(cfg.Batch))
				g.month = time.Time{}
				if len(cfg.Months) > 0 {
					g.month = cfg.Months[b*int64(len(cfg.Months))/batches]
				}
				if err := g.batch(ctx, pool, int(n)); err != nil {
					cancel(err)
					return
				}
				total := done.Add(n)
				printMu.Lock()
				if time.Since(lastPrint) > 5*time.Second || total == todo {
					el := time.Since(start)
					rate := float64(total) / el.Seconds()
					fmt.Fprintf(cfg.Log, "loadgen: fill: %d/%d forms, %.0f forms/s, %s elapsed, ~%s to go\n", total, todo, rate,
						el.Round(time.Second), time.Duration(float64(todo-total)/rate*float64(time.Second)).Round(time.Second))
					lastPrint = time.Now()
				}
				printMu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return fmt.Errorf("fill: %w", err)
	}
	copied := time.Since(start)
	fmt.Fprintf(cfg.Log, "loadgen: fill: %d forms copied in %s (%.0f forms/s); vacuum, analyze, checkpoint...\n",
		todo, copied.Round(time.Second), float64(todo)/copied.Seconds())
	for _, sql := range []string{
		`VACUUM (ANALYZE) forms, form_lines, form_invoices, journal_txns, journal_entries, pending_transfers, idempotency_keys, audit_events, account_balances`,
		`CHECKPOINT`,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fmt.Fprintf(cfg.Log, "loadgen: fill: skipped %s: %v\n", strings.Fields(sql)[0], err)
		}
	}
	var size string
	if err := pool.QueryRow(ctx, `SELECT pg_size_pretty(pg_database_size(current_database()))`).Scan(&size); err != nil {
		return err
	}
	fmt.Fprintf(cfg.Log, "loadgen: fill: done in %s; database size %s\n", time.Since(start).Round(time.Second), size)
	return nil
}

// filler generates the rows of one batch; each worker has its own.
type filler struct {
	r                *rand.Rand
	zipf             *rand.Zipf
	keys             *pii.Keyring
	stores           int
	blocks           map[string]string // store → block
	expense, payable int32
	now              time.Time
	// month, if not zero, is the month of this batch's purchase dates.
	month time.Time
	// replica: write with the triggers off (see Fill).
	replica bool
}

// issuedForm is what the service stores as an IssueForm's idempotent response: the JSON
// of the form (the same field names as forms.Form, so the same size).
type issuedForm struct {
	ID             uuid.UUID
	Number         string
	StoreCode      string
	State          string
	DocType        string
	DocCountry     string
	DocMasked      string
	Nationality    string
	PurchaseDate   time.Time
	IssuedAt       time.Time
	ExportDeadline time.Time
	Invoices       []issuedInvoice
	Lines          []issuedLine
	Eligible       string
	Gross          string
	Verification   *struct{}
	PayoutID       *uuid.UUID
	ClosedAt       *time.Time
}

type issuedInvoice struct {
	Number string
	Date   time.Time
}

type issuedLine struct {
	Description   string
	Category      string
	VATRate       string
	Quantity      int32
	Amount        string
	InvoiceNumber string
	RefundRate    string
	No            int
	ConfirmedQty  *int32
}

func numeric(fen int64) pgtype.Numeric {
	return pgtype.Numeric{Int: big.NewInt(fen), Exp: -2, Valid: true}
}

func fenString(fen int64) string { return fmt.Sprintf("%d.%02d", fen/100, fen%100) }

// fillBatch is the rows of a batch of forms, table by table.
type fillBatch struct {
	txns, entries, pendings, forms, lines, invoices, idems, audits [][]any
}

func (g *filler) batch(ctx context.Context, pool *pgxpool.Pool, n int) error {
	b, err := g.generate(n)
	if err != nil {
		return err
	}
	return g.write(ctx, pool, b)
}

// generate makes the rows of n forms.
func (g *filler) generate(n int) (*fillBatch, error) {
	var txns, entries, pendings, forms, lines, invoices, idems, audits [][]any
	day := today(g.now)
	rate13, rate9 := numeric(11), numeric(8)
	vat13, vat9 := numeric(13), numeric(9)
	for range n {
		k := int(g.zipf.Uint64())
		t := travellerOf("E", k)
		doc := t.doc
		docType := map[int32]string{1: "PASSPORT", 2: "HK_MACAO_PERMIT", 3: "TAIWAN_PERMIT"}[int32(doc.Type)]
		purchase := day.AddDate(0, 0, -(1 + g.r.IntN(89)))
		if !g.month.IsZero() {
			first := time.Date(g.month.Year(), g.month.Month(), 1, 0, 0, 0, 0, day.Location())
			purchase = first.AddDate(0, 0, g.r.IntN(first.AddDate(0, 1, -1).Day()))
		}
		issuedAt := purchase.Add(-8*time.Hour + time.Duration(g.r.Int64N(int64(12*time.Hour))) + 10*time.Hour)
		storeCode := storeCode(1 + g.r.IntN(g.stores))
		formID := uuid.Must(uuid.NewV7())
		txnID := uuid.Must(uuid.NewV7())
		number := refund.NewFormNumber()
		f := issuedForm{
			ID: formID, Number: number, StoreCode: storeCode, State: "ISSUED", DocType: docType,
			DocCountry: doc.IssuingCountry, DocMasked: pii.Mask(doc.Number), Nationality: t.nationality,
			PurchaseDate: purchase, IssuedAt: issuedAt, ExportDeadline: purchase.AddDate(0, 0, 90),
		}
		nlines := 1 + g.r.IntN(5)
		ninv := 1
		if nlines > 2 {
			ninv = 2
		}
		for range ninv {
			inv := issuedInvoice{Number: fmt.Sprintf("%020d", g.r.Uint64()/2), Date: purchase}
			f.Invoices = append(f.Invoices, inv)
			invoices = append(invoices, []any{formID, inv.Number, purchase, storeCode})
		}
		var eligible, refund100 int64
		for i := range nlines {
			fen := int64(8_000 + g.r.IntN(192_001))
			vat, rate, vatS, rateS, pct := vat13, rate13, "0.13", "0.11", int64(11)
			if g.r.IntN(10) < 3 {
				vat, rate, vatS, rateS, pct = vat9, rate9, "0.09", "0.08", 8
			}
			qty := int32(1 + g.r.IntN(3))
			eligible += fen
			refund100 += fen * pct
			inv := f.Invoices[i%ninv].Number
			desc := fmt.Sprintf("bench item %d", g.r.IntN(1000))
			f.Lines = append(f.Lines, issuedLine{Description: desc, Category: "GENERAL", VATRate: vatS, Quantity: qty,
				Amount: fenString(fen), InvoiceNumber: inv, RefundRate: rateS, No: i + 1})
			lines = append(lines, []any{formID, int16(i + 1), desc, "GENERAL", vat, rate, qty, numeric(fen), inv})
		}
		gross := (refund100 + 50) / 100 // round half up: G = round(Σ amount × rate, 2)
		f.Eligible, f.Gross = fenString(eligible), fenString(gross)

		keyID, cipher, err := g.keys.Seal([]byte(doc.Number), formID[:])
		if err != nil {
			return nil, fmt.Errorf("seal: %w", err)
		}
		index := g.keys.BlindIndex(docType, doc.IssuingCountry, doc.Number)
		lastEntry := purchase.AddDate(0, 0, -t.lastEntry)
		txns = append(txns, []any{txnID, "form:" + number + ":issue", "FORM_ISSUED", number, purchase, issuedAt})
		entries = append(entries,
			[]any{txnID, g.expense, true, byte('D'), numeric(gross)},
			[]any{txnID, g.payable, true, byte('C'), numeric(gross)})
		pendings = append(pendings, []any{txnID, g.expense, g.payable, numeric(gross), issuedAt})
		forms = append(forms, []any{formID, number, storeCode, g.blocks[storeCode], "ISSUED", docType, doc.IssuingCountry, index, keyID,
			cipher, f.DocMasked, day.AddDate(2, 0, 0), t.nationality, lastEntry, purchase, issuedAt, f.ExportDeadline,
			numeric(eligible), numeric(gross), txnID})
		resp, err := json.Marshal(f)
		if err != nil {
			return nil, err
		}
		requestID := uuid.New()
		hash := sha256.Sum256(requestID[:])
		caller := "taxrefund://store/" + storeCode
		idems = append(idems, []any{caller, requestID, "IssueForm", hash[:], resp, issuedAt})
		detail := fmt.Sprintf(`{"eligible": %q, "gross": %q, "document": %q}`, f.Eligible, f.Gross,
			g.keys.Fingerprint(docType, doc.IssuingCountry, doc.Number))
		audits = append(audits, []any{issuedAt, caller, "FORM_ISSUED", number, requestID, detail})
	}
	return &fillBatch{txns: txns, entries: entries, pendings: pendings, forms: forms, lines: lines, invoices: invoices,
		idems: idems, audits: audits}, nil
}

// write copies b in one transaction. With the triggers off nothing else is owed: the
// pending layer of the refund expense and payable, the only accounts a form's entries
// touch, is the sum of their entries (ledger_derived_pending, migrations/00017), not a
// maintained balance.
func (g *filler) write(ctx context.Context, pool *pgxpool.Pool, b *fillBatch) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if !g.replica {
			return copyBatch(ctx, tx, b)
		}
		if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
			return fmt.Errorf("turn triggers off: %w", err)
		}
		return copyBatch(ctx, tx, b)
	})
}

// copyBatch copies b's rows, parents before children.
func copyBatch(ctx context.Context, tx pgx.Tx, b *fillBatch) error {
	for _, c := range []struct {
		table string
		cols  []string
		rows  [][]any
	}{
		{"journal_txns", []string{"id", "idem_key", "kind", "ref", "effective_date", "created_at"}, b.txns},
		{"journal_entries", []string{"txn_id", "account_id", "pending", "side", "amount"}, b.entries},
		{"pending_transfers", []string{"id", "debit_account", "credit_account", "amount", "created_at"}, b.pendings},
		{"forms", []string{"id", "number", "store_code", "block_code", "state", "doc_type", "doc_country", "doc_index",
			"doc_key_id", "doc_cipher", "doc_masked", "doc_expiry", "nationality", "last_entry_date", "purchase_date",
			"issued_at", "export_deadline", "eligible_amount", "gross_refund", "pending_id"}, b.forms},
		{"form_lines", []string{"form_id", "line_no", "description", "category", "vat_rate", "refund_rate", "quantity",
			"amount", "invoice_number"}, b.lines},
		{"form_invoices", []string{"form_id", "invoice_number", "invoice_date", "store_code"}, b.invoices},
		{"idempotency_keys", []string{"caller", "request_id", "method", "request_hash", "response", "created_at"}, b.idems},
		{"audit_events", []string{"at", "actor", "action", "object", "request_id", "detail"}, b.audits},
	} {
		if c.table == "forms" {
			if err := copyForms(ctx, tx, c.cols, c.rows); err != nil {
				return err
			}
			continue
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{c.table}, c.cols, pgx.CopyFromRows(c.rows)); err != nil {
			return fmt.Errorf("copy %s: %w", c.table, err)
		}
	}
	return nil
}

// copyForms copies the forms through a temporary table: PostgreSQL refuses COPY into a
// table under row-level security (forms is, FORCE included, unless the loader is a
// superuser), but the owner's policy lets INSERT ... SELECT through.
func copyForms(ctx context.Context, tx pgx.Tx, cols []string, rows [][]any) error {
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS fill_forms (LIKE forms) ON COMMIT DELETE ROWS`); err != nil {
		return fmt.Errorf("staging table: %w", err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"fill_forms"}, cols, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("copy forms: %w", err)
	}
	list := strings.Join(cols, ", ")
	if _, err := tx.Exec(ctx, `INSERT INTO forms (`+list+`) SELECT `+list+` FROM fill_forms`); err != nil {
		return fmt.Errorf("insert forms: %w", err)
	}
	return nil
}
