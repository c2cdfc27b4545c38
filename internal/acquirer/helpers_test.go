package acquirer_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"taxrefund/internal/acquirer"
	"taxrefund/internal/dbtest"
	"taxrefund/internal/forms"
	"taxrefund/internal/idempotency"
	"taxrefund/internal/immediate"
	"taxrefund/internal/ledger"
	"taxrefund/internal/params"
	"taxrefund/internal/refund"
)

// t0 is 12:00 on Tuesday 2026-03-10 in Asia/Shanghai; prepayments made then are due for
// capture on Wednesday 2026-04-01 (committed 2026-03-27 + 3 working days).
var t0 = time.Date(2026, 3, 10, 4, 0, 0, 0, time.UTC)

// captureDay is 00:00 on 2026-04-01 in Asia/Shanghai.
var captureDay = time.Date(2026, 3, 31, 16, 0, 0, 0, time.UTC)

// env is a fresh database with the test registry and the services of cmd/taxrefund.
type env struct {
	t     *testing.T
	ctx   context.Context
	pool  *pgxpool.Pool
	clock *dbtest.Clock
	forms *forms.Service
	imm   *immediate.Service
	seq   int
}

func newEnv(t *testing.T) *env {
	t.Helper()
	pool := dbtest.NewPool(t)
	dbtest.Registry(t, pool)
	clock := dbtest.NewClock(t0)
	led := ledger.NewStore()
	keys := dbtest.Keyring(t)
	par := params.NewCache(pool, time.Hour)
	log := slog.New(slog.DiscardHandler)
	f := forms.New(forms.Deps{Pool: pool, Ledger: led, Keys: keys, Params: par, Now: clock.Now, Log: log})
	imm := immediate.New(immediate.Deps{Pool: pool, Ledger: led, Keys: keys, Params: par, Forms: f, Now: clock.Now, Log: log})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return &env{t: t, ctx: ctx, pool: pool, clock: clock, forms: f, imm: imm}
}

// prepay issues n forms at S-CXL-1 (one line of 1000.00 at 13%: N 90.00) and prepays
// each at IFS-RP with a hold of 100.00 + i.
func (e *env) prepay(n int) []immediate.Prepayment {
	e.t.Helper()
	out := make([]immediate.Prepayment, 0, n)
	for range n {
		e.seq++
		doc := refund.Document{Type: refund.Passport, Number: fmt.Sprintf("AQ%07d", e.seq), IssuingCountry: "GB"}
		today := refund.LocalDate(e.clock.Now())
		inv := fmt.Sprintf("AQ-INV-%05d", e.seq)
		f, err := e.forms.Issue(e.ctx, forms.IssueRequest{
			Idem:      idempotency.Key{Caller: "store/S-CXL-1", RequestID: uuid.New(), Hash: idempotency.Hash([]byte(inv))},
			StoreCode: "S-CXL-1",
			Application: refund.Application{
				Traveller: refund.Traveller{Document: doc, Expiry: time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC), Nationality: "GB", LastEntry: refund.AddDays(today, -3)},
				Invoices:  []refund.Invoice{{Number: inv, Date: today}},
				Lines: []refund.Line{{Description: "tea set", Category: refund.General, VATRate: decimal.RequireFromString("0.13"),
					Quantity: 1, Amount: decimal.RequireFromString("1000.00"), InvoiceNumber: inv}},
			},
		})
		if err != nil {
			e.t.Fatalf("issue: %v", err)
		}
		p, err := e.imm.Pay(e.ctx, immediate.PayRequest{
			Idem:     idempotency.Key{Caller: "desk/IFS-RP/cashier-1", RequestID: uuid.New(), Hash: idempotency.Hash([]byte(f.Number))},
			DeskCode: "IFS-RP", Cashier: "cashier-1", Number: f.Number, Presented: doc, Agreement: "AGR-" + inv,
			PreAuth: immediate.PreAuth{Token: fmt.Sprintf("tok_aq_%05d", e.seq), Last4: "0005",
				Expiry: time.Date(2028, 1, 1, 0, 0, 0, 0, time.UTC), Authorized: decimal.NewFromInt(int64(100 + e.seq))},
			DeparturePort: "TFU",
		})
		if err != nil {
			e.t.Fatalf("pay: %v", err)
		}
		out = append(out, p)
	}
	return out
}

// instructions makes n CAPTURE instructions (n prepayments, captured when due) and
// returns their keys in outbox order.
func (e *env) instructions(n int) []string {
	e.t.Helper()
	e.clock.Set(t0)
	e.prepay(n)
	e.clock.Set(captureDay)
	got, err := e.imm.Captures(e.ctx, "test")
	if err != nil || got != n {
		e.t.Fatalf("captures: %d %v, want %d", got, err, n)
	}
	return e.undeliveredKeys()
}

func (e *env) undeliveredKeys() []string {
	e.t.Helper()
	rows, err := e.pool.Query(e.ctx, `SELECT idem_key FROM acquirer_outbox WHERE delivered_at IS NULL ORDER BY id`)
	if err != nil {
		e.t.Fatal(err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		e.t.Fatal(err)
	}
	return keys
}

func (e *env) count(sql string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(e.ctx, sql, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// outboxState is one instruction's delivery record.
type outboxState struct {
	Attempts  int
	LastError string
	Delivered bool
	// Wait is next_attempt_at − now().
	Wait time.Duration
}

func (e *env) state(key string) outboxState {
	e.t.Helper()
	var s outboxState
	var micros int64
	err := e.pool.QueryRow(e.ctx, `
		SELECT attempts, last_error, delivered_at IS NOT NULL, (extract(epoch FROM next_attempt_at - clock_timestamp()) * 1000000)::bigint
		  FROM acquirer_outbox WHERE idem_key = $1`, key).Scan(&s.Attempts, &s.LastError, &s.Delivered, &micros)
	if err != nil {
		e.t.Fatalf("outbox %s: %v", key, err)
	}
	s.Wait = time.Duration(micros) * time.Microsecond
	return s
}

// makeDue makes every undelivered instruction due now, as if its back-off had passed.
func (e *env) makeDue() {
	e.t.Helper()
	if _, err := e.pool.Exec(e.ctx, `UPDATE acquirer_outbox SET next_attempt_at = now() WHERE delivered_at IS NULL`); err != nil {
		e.t.Fatal(err)
	}
}

// received is what the development acquirer recorded, by key.
type received struct {
	Kind, Token, Amount string
	Deliveries          int
}

func (e *env) received() map[string]received {
	e.t.Helper()
	rows, err := e.pool.Query(e.ctx, `SELECT idem_key, kind, card_token, to_char(amount, 'FM9999999990.00'), deliveries FROM dev_acquirer_received`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]received{}
	for rows.Next() {
		var k string
		var r received
		if err := rows.Scan(&k, &r.Kind, &r.Token, &r.Amount, &r.Deliveries); err != nil {
			e.t.Fatal(err)
		}
		out[k] = r
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// sent is what the outbox asked for, by key.
func (e *env) sent() map[string]received {
	e.t.Helper()
	rows, err := e.pool.Query(e.ctx, `SELECT idem_key, kind, card_token, to_char(amount, 'FM9999999990.00') FROM acquirer_outbox`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]received{}
	for rows.Next() {
		var k string
		var r received
		if err := rows.Scan(&k, &r.Kind, &r.Token, &r.Amount); err != nil {
			e.t.Fatal(err)
		}
		out[k] = r
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *env) checkInvariants() {
	e.t.Helper()
	dbtest.CheckInvariants(e.t, e.ctx, e.pool)
}

// failing is an acquirer that is down.
type failing struct{ msg string }

func (f failing) Deliver(context.Context, acquirer.Instruction) error {
	return fmt.Errorf("%s", f.msg)
}

// selective delivers through next except for the keys in down, which fail.
type selective struct {
	next acquirer.Acquirer
	down map[string]bool
}

func (s selective) Deliver(ctx context.Context, in acquirer.Instruction) error {
	if s.down[in.IdemKey] {
		return fmt.Errorf("acquirer refused %s: 503 service unavailable", in.Kind)
	}
	return s.next.Deliver(ctx, in)
}

// records is a slog handler that keeps every record.
type records struct {
	mu   sync.Mutex
	list []slog.Record
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append(r.list, rec)
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

// levels lists the records' levels and messages.
func (r *records) levels() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, rec := range r.list {
		out = append(out, rec.Level.String()+" "+rec.Message)
	}
	return out
}
