package report_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"taxrefund/internal/dbtest"
	"taxrefund/internal/forms"
	"taxrefund/internal/idempotency"
	"taxrefund/internal/ledger"
	"taxrefund/internal/params"
	"taxrefund/internal/payouts"
	"taxrefund/internal/refund"
	"taxrefund/internal/settlement"
)

// shanghai is UTC+8, written out here rather than taken from package refund.
var shanghai = time.FixedZone("UTC+8", 8*60*60)

// local is y-m-d hh:mm in Shanghai, as an instant.
func local(y int, m time.Month, d, hh, mm int) time.Time {
	return time.Date(y, m, d, hh, mm, 0, 0, shanghai).UTC()
}

// october is the month every test here reports on.
var october = time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)

// env is a fresh database with dbtest.Registry's registry (stores S-JFB-1, S-JFB-2 in JFB,
// S-CXL-1 in CXL; AG-CQ desks CKG-01, CKG-02 at CKG; AG-CD desks TFU-01 at TFU and CTU-01
// at CTU; fee 0.02) and the forms, payouts and settlement services on one settable clock.
type env struct {
	t       testing.TB
	ctx     context.Context
	pool    *pgxpool.Pool
	clock   *dbtest.Clock
	ledger  *ledger.Store
	forms   *forms.Service
	payouts *payouts.Service
	settle  *settlement.Service
	seq     atomic.Int64
}

func newEnv(t testing.TB) *env {
	t.Helper()
	pool := dbtest.NewPool(t)
	dbtest.Registry(t, pool)
	clock := dbtest.NewClock(local(2026, 10, 1, 9, 0))
	led := ledger.NewStore()
	keys := dbtest.Keyring(t)
	par := params.NewCache(pool, 0)
	log := slog.New(slog.DiscardHandler)
	f := forms.New(forms.Deps{Pool: pool, Ledger: led, Keys: keys, Params: par, Now: clock.Now, Log: log})
	p := payouts.New(payouts.Deps{Pool: pool, Ledger: led, Keys: keys, Params: par, Forms: f, Now: clock.Now, Log: log})
	return &env{t: t, ctx: context.Background(), pool: pool, clock: clock, ledger: led, forms: f, payouts: p,
		settle: settlement.New(pool, led, clock.Now)}
}

func key(caller, content string) idempotency.Key {
	return idempotency.Key{Caller: caller, RequestID: uuid.New(), Hash: idempotency.Hash([]byte(content))}
}

// traveller is a passport holder of a nationality.
type traveller struct{ doc, nationality string }

func (tr traveller) document() refund.Document {
	return refund.Document{Type: refund.Passport, Number: tr.doc, IssuingCountry: tr.nationality}
}

// item is one line: qty units for amount (a decimal string) at VAT rate vat.
type item struct {
	qty         int32
	amount, vat string
}

// issue issues a form at store to tr, at the clock's time.
func (e *env) issue(store string, tr traveller, items ...item) forms.Form {
	e.t.Helper()
	today := refund.LocalDate(e.clock.Now())
	inv := fmt.Sprintf("INV-%06d", e.seq.Add(1))
	app := refund.Application{
		Traveller: refund.Traveller{
			Document: tr.document(), Expiry: time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC), Nationality: tr.nationality,
			LastEntry: refund.AddDays(today, -5),
		},
		Invoices: []refund.Invoice{{Number: inv, Date: today}},
	}
	for i, it := range items {
		app.Lines = append(app.Lines, refund.Line{
			Description: fmt.Sprintf("goods %d", i+1), Category: refund.General, VATRate: decimal.RequireFromString(it.vat),
			Quantity: it.qty, Amount: decimal.RequireFromString(it.amount), InvoiceNumber: inv,
		})
	}
	f, err := e.forms.Issue(e.ctx, forms.IssueRequest{
		Idem:      key("taxrefund://store/"+store, inv),
		StoreCode: store, Application: app,
	})
	if err != nil {
		e.t.Fatalf("issue at %s: %v", store, err)
	}
	return f
}

// verify confirms f at port: confirmed units per line (nil: every unit).
func (e *env) verify(f forms.Form, tr traveller, port string, confirmed map[int]int32) forms.Form {
	e.t.Helper()
	if confirmed == nil {
		confirmed = map[int]int32{}
		for _, l := range f.Lines {
			confirmed[l.No] = l.Quantity
		}
	}
	v, err := e.forms.Verify(e.ctx, forms.VerifyRequest{
		Idem: key("taxrefund://customs/"+port+"/officer-3", f.Number+fmt.Sprint(confirmed)),
		Port: port, Officer: "officer-3", Number: f.Number, Presented: tr.document(), Confirmed: confirmed,
	})
	if err != nil {
		e.t.Fatalf("verify %s: %v", f.Number, err)
	}
	return v
}

// pay pays forms of tr at desk, by bank card.
func (e *env) pay(desk string, tr traveller, fs ...forms.Form) payouts.Payout {
	e.t.Helper()
	var numbers []string
	for _, f := range fs {
		numbers = append(numbers, f.Number)
	}
	receipt := fmt.Sprintf("RCPT-%s-%03d", desk, e.seq.Add(1))
	p, err := e.payouts.Settle(e.ctx, payouts.SettleRequest{
		Idem:     key("taxrefund://desk/"+desk+"/cashier-1", receipt),
		DeskCode: desk, Cashier: "cashier-1", Numbers: numbers, Presented: tr.document(), Method: payouts.BankCard,
		Account: "6222020200001234", Receipt: receipt,
	})
	if err != nil {
		e.t.Fatalf("pay %v at %s: %v", numbers, desk, err)
	}
	return p
}

func (e *env) void(f forms.Form) {
	e.t.Helper()
	if _, err := e.forms.Void(e.ctx, forms.VoidRequest{
		Idem: key("taxrefund://store/"+f.StoreCode, "void "+f.Number), StoreCode: f.StoreCode, Number: f.Number, Reason: "goods returned",
	}); err != nil {
		e.t.Fatalf("void %s: %v", f.Number, err)
	}
}

// at sets the clock.
func (e *env) at(t time.Time) { e.clock.Set(t) }

func (e *env) count(sql string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(e.ctx, sql, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// superuser connects to this test's database as the superuser of TEST_DATABASE_URL. The
// reconciliation tests use it to write what the services and the schema never let the
// application write (corrupt rows), so that every exception the reconciliation looks for
// can be produced.
func (e *env) superuser() *pgx.Conn {
	e.t.Helper()
	cfg, err := pgx.ParseConfig(dbtest.URL(e.t))
	if err != nil {
		e.t.Fatal(err)
	}
	cfg.Database = e.pool.Config().ConnConfig.Database
	conn, err := pgx.ConnectConfig(e.ctx, cfg)
	if err != nil {
		e.t.Fatalf("connect as superuser: %v", err)
	}
	e.t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// exec runs statements on conn, failing the test on error.
func (e *env) exec(conn *pgx.Conn, sql string, args ...any) {
	e.t.Helper()
	tag, err := conn.Exec(e.ctx, sql, args...)
	if err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	if tag.RowsAffected() == 0 && (tag.Update() || tag.Insert() || tag.Delete()) {
		e.t.Fatalf("%s: no row affected", sql)
	}
}
