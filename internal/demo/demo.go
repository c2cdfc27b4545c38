// Package demo issues, verifies and pays demonstration forms through the real services,
// dated in the previous and the current month (Asia/Shanghai), so that a fresh `make run`
// has figures in the monthly report and the ledger balances as in production.
package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"taxrefund/internal/db"
	"taxrefund/internal/fault"
	"taxrefund/internal/forms"
	"taxrefund/internal/ledger"
	"taxrefund/internal/params"
	"taxrefund/internal/payouts"
	"taxrefund/internal/pii"
	"taxrefund/internal/refund"
)

// shanghai is China Standard Time (no daylight saving time since 1991).
var shanghai = time.FixedZone("Asia/Shanghai", 8*60*60)

// The demo's parties (seeds/): a Jiefangbei store, customs and a cashier at Jiangbei.
const (
	store = "CQ-JFB-001"
	port  = "CKG"
	desk  = "CKG-01"
)

// namespace makes the demo's request ids: the same form gets the same ids on every run,
// so running the seed again changes nothing.
var namespace = uuid.MustParse("6f1d7c1e-4c53-4c8e-9a2b-2f6a1c0de5a1")

// Stage is how far a demo form goes.
type Stage int

const (
	Issued Stage = iota
	Verified
	Paid
)

// plan is the demo: in each of the two months, one form paid, one verified and unpaid,
// one issued and still open.
var plan = []struct {
	doc         string
	nationality string
	stage       Stage
	amount      string
}{
	{"DEMO00001", "JP", Paid, "1200.00"},
	{"DEMO00002", "US", Verified, "860.00"},
	{"DEMO00003", "DE", Issued, "2400.00"},
}

// Forms issues (and verifies, and pays) the demo forms of the previous and the current
// month at now, and returns their numbers. It is idempotent: forms already made are
// returned as they are.
func Forms(ctx context.Context, pool *pgxpool.Pool, keys *pii.Keyring, log *slog.Logger, now time.Time) ([]string, error) {
	local := now.In(shanghai)
	first := time.Date(local.Year(), local.Month(), 1, 10, 0, 0, 0, shanghai)
	months := []struct {
		label         string
		issue, settle time.Time
	}{
		// The previous month: issued on the 10th, confirmed and paid on the 12th.
		{first.AddDate(0, -1, 0).Format("2006-01"), first.AddDate(0, -1, 9), first.AddDate(0, -1, 11)},
		// This month: issued and settled just now.
		{local.Format("2006-01"), now.Add(-2 * time.Minute), now.Add(-time.Minute)},
	}
	var numbers []string
	for _, m := range months {
		for i, p := range plan {
			n, err := oneForm(ctx, pool, keys, log, m.label, i, p.doc, p.nationality, p.stage, p.amount, m.issue, m.settle)
			if err != nil {
				return numbers, fmt.Errorf("demo form %s %s: %w", m.label, p.doc, err)
			}
			numbers = append(numbers, n)
		}
	}
	return numbers, nil
}

func oneForm(ctx context.Context, pool *pgxpool.Pool, keys *pii.Keyring, log *slog.Logger, month string, i int, number, nationality string,
	stage Stage, amount string, issueAt, settleAt time.Time) (string, error) {
	clock := func(t time.Time) func() time.Time { return func() time.Time { return t } }
	led := ledger.NewStore()
	par := params.NewCache(pool, 0)
	issuer := forms.New(forms.Deps{Pool: pool, Ledger: led, Keys: keys, Params: par, Now: clock(issueAt), Log: log})
	settler := forms.New(forms.Deps{Pool: pool, Ledger: led, Keys: keys, Params: par, Now: clock(settleAt), Log: log})
	pay := payouts.New(payouts.Deps{Pool: pool, Ledger: led, Keys: keys, Params: par, Forms: settler, Now: clock(settleAt), Log: log})

	id := func(step string) uuid.UUID { return uuid.NewSHA1(namespace, []byte(month+"/"+number+"/"+step)) }
	civil := func(t time.Time) time.Time {
		t = t.In(shanghai)
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	}
	doc := refund.Document{Type: refund.Passport, Number: number, IssuingCountry: nationality}
	inv := fmt.Sprintf("DEMO-%s-%d", month, i+1)
	form, err := issuer.Issue(db.WithParty(ctx, "store", store), forms.IssueRequest{
		Idem:      forms.Idempotency{Caller: "taxrefund://store/" + store, RequestID: id("issue"), Hash: forms.HashOf([]byte(inv))},
		StoreCode: store,
		Application: refund.Application{
			Traveller: refund.Traveller{Document: doc, Expiry: civil(issueAt).AddDate(5, 0, 0), Nationality: nationality,
				LastEntry: civil(issueAt).AddDate(0, 0, -5)},
			Invoices: []refund.Invoice{{Number: inv, Date: civil(issueAt)}},
			Lines: []refund.Line{{Description: "Shu brocade (demo)", Category: refund.General, VATRate: decimal.RequireFromString("0.13"),
				Quantity: 1, Amount: decimal.RequireFromString(amount), InvoiceNumber: inv}},
		},
	})
	if err != nil {
		return "", fmt.Errorf("issue: %w", err)
	}
	if stage >= Verified {
		_, err := settler.Verify(db.WithParty(ctx, "customs", port), forms.VerifyRequest{
			Idem:      forms.Idempotency{Caller: "taxrefund://customs/" + port + "/officer-01", RequestID: id("verify"), Hash: forms.HashOf([]byte(form.Number))},
			Port:      port,
			Officer:   "officer-01",
			Number:    form.Number,
			Presented: doc,
			Confirmed: map[int]int32{1: 1},
		})
		if err != nil {
			return "", fmt.Errorf("verify: %w", err)
		}
	}
	if stage >= Paid {
		_, err := pay.Settle(db.WithParty(ctx, "desk", desk), payouts.SettleRequest{
			Idem:      forms.Idempotency{Caller: "taxrefund://desk/" + desk + "/cashier-01", RequestID: id("pay"), Hash: forms.HashOf([]byte(form.Number))},
			DeskCode:  desk,
			Cashier:   "cashier-01",
			Numbers:   []string{form.Number},
			Presented: doc,
			Method:    payouts.Cash,
			Receipt:   "DEMO-" + form.Number,
		})
		var f *fault.Error
		if err != nil && !(errors.As(err, &f) && f.Reason == "FORM_ALREADY_PAID") {
			return "", fmt.Errorf("pay: %w", err)
		}
	}
	return form.Number, nil
}
