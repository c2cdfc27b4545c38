package forms_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"taxrefund/internal/fault"
	"taxrefund/internal/forms"
	"taxrefund/internal/ledger"
	"taxrefund/internal/refund"
)

// Every rule of DOMAIN.md §2–§4 through Issue, with the numbers written out. The clock is
// 2026-03-10 12:00 in Shanghai; the default traveller entered on 2026-02-28. A refusal
// writes nothing; an accepted form writes exactly its rows.
func TestIssueRules(t *testing.T) {
	t.Parallel()
	withTraveller := func(edit func(*refund.Traveller), lines ...refund.Line) func(*skeleton) refund.Application {
		return func(s *skeleton) refund.Application {
			tr := passport(defaultDoc)
			edit(&tr)
			return s.sale(tr, lines...)
		}
	}
	plain := func(lines ...refund.Line) func(*skeleton) refund.Application {
		return withTraveller(func(*refund.Traveller) {}, lines...)
	}
	tests := []struct {
		name  string
		store string // S-JFB-1 when empty
		app   func(*skeleton) refund.Application
		// For an accepted form:
		wantA, wantG string
		// For a refusal:
		kind          fault.Kind
		reason, field string
	}{
		{
			name:  "DOMAIN example: 1,000.00 at 13% and 500.00 at 9%",
			app:   plain(goods("1000.00", "0.13"), goods("500.00", "0.09")),
			wantA: "1500.00", wantG: "150.00",
		},
		{
			name: "passport issued by China",
			app: withTraveller(func(tr *refund.Traveller) { tr.Document.IssuingCountry = "CN"; tr.Nationality = "CN" },
				goods("1000.00", "0.13")),
			kind: fault.Precondition, reason: "DOCUMENT_NOT_ACCEPTED", field: "traveller.document.issuing_country",
		},
		{
			name: "Hong Kong and Macao permit issued in CN",
			app: withTraveller(func(tr *refund.Traveller) {
				tr.Document = refund.Document{Type: refund.HKMacaoPermit, Number: "H12345678", IssuingCountry: "CN"}
				tr.Nationality = "CN"
			}, goods("300.00", "0.13")),
			wantA: "300.00", wantG: "33.00",
		},
		{
			name: "Taiwan permit issued in CN",
			app: withTraveller(func(tr *refund.Traveller) {
				tr.Document = refund.Document{Type: refund.TaiwanPermit, Number: "T1234567", IssuingCountry: "CN"}
				tr.Nationality = "CN"
			}, goods("250.00", "0.09")),
			wantA: "250.00", wantG: "20.00",
		},
		{
			name: "document expired 2026-03-09, the day before the purchase",
			app:  withTraveller(func(tr *refund.Traveller) { tr.Expiry = civilDate("2026-03-09") }, goods("1000.00", "0.13")),
			kind: fault.Precondition, reason: "DOCUMENT_EXPIRED", field: "traveller.document_expiry_date",
		},
		{
			name:  "document expiring 2026-03-10, the purchase date",
			app:   withTraveller(func(tr *refund.Traveller) { tr.Expiry = civilDate("2026-03-10") }, goods("200.00", "0.13")),
			wantA: "200.00", wantG: "22.00",
		},
		{
			name: "purchase 184 days after entry on 2025-09-07",
			app:  withTraveller(func(tr *refund.Traveller) { tr.LastEntry = civilDate("2025-09-07") }, goods("1000.00", "0.13")),
			kind: fault.Precondition, reason: "STAY_LIMIT_EXCEEDED", field: "traveller.last_entry_date",
		},
		{
			name:  "purchase 183 days after entry on 2025-09-08",
			app:   withTraveller(func(tr *refund.Traveller) { tr.LastEntry = civilDate("2025-09-08") }, goods("1000.00", "0.13")),
			wantA: "1000.00", wantG: "110.00",
		},
		{
			name: "second invoice dated 2026-02-27, the day before entry",
			app: func(s *skeleton) refund.Application {
				app := s.sale(passport(defaultDoc), goods("300.00", "0.13"), goods("300.00", "0.09"))
				app.Invoices = append(app.Invoices, refund.Invoice{Number: "INV-EARLY", Date: civilDate("2026-02-27")})
				app.Lines[1].InvoiceNumber = "INV-EARLY"
				return app
			},
			kind: fault.Precondition, reason: "INVOICE_BEFORE_ENTRY", field: "invoices[1].date",
		},
		{
			name: "second invoice dated 2026-02-28, the entry date",
			app: func(s *skeleton) refund.Application {
				app := s.sale(passport(defaultDoc), goods("300.00", "0.13"), goods("300.00", "0.09"))
				app.Invoices = append(app.Invoices, refund.Invoice{Number: "INV-ENTRY-DAY", Date: civilDate("2026-02-28")})
				app.Lines[1].InvoiceNumber = "INV-ENTRY-DAY"
				return app
			},
			wantA: "600.00", wantG: "57.00",
		},
		{
			name: "second line of precious metal",
			app: func(s *skeleton) refund.Application {
				app := s.sale(passport(defaultDoc), goods("300.00", "0.13"), goods("5000.00", "0.13"))
				app.Lines[1].Category = refund.PreciousMetal
				return app
			},
			kind: fault.Precondition, reason: "GOODS_NOT_REFUNDABLE", field: "lines[1].category",
		},
		{
			name: "VAT-exempt line",
			app: func(s *skeleton) refund.Application {
				app := s.sale(passport(defaultDoc), goods("300.00", "0.13"))
				app.Lines[0].Category = refund.VATExempt
				return app
			},
			kind: fault.Precondition, reason: "GOODS_NOT_REFUNDABLE", field: "lines[0].category",
		},
		{
			name: "line at 6% VAT",
			app:  plain(goods("300.00", "0.13"), goods("300.00", "0.06")),
			kind: fault.Precondition, reason: "VAT_RATE_NOT_REFUNDABLE", field: "lines[1].vat_rate",
		},
		{
			name: "total 199.99",
			app:  plain(goods("199.99", "0.13")),
			kind: fault.Precondition, reason: "BELOW_MINIMUM", field: "lines",
		},
		{
			name: "total 199.99 over two lines",
			app:  plain(goods("100.00", "0.13"), goods("99.99", "0.09")),
			kind: fault.Precondition, reason: "BELOW_MINIMUM", field: "lines",
		},
		{
			name:  "total 200.00",
			app:   plain(goods("200.00", "0.13")),
			wantA: "200.00", wantG: "22.00",
		},
		{
			name:  "G rounded half up: 201.50 at 13% gives 22.165",
			app:   plain(goods("201.50", "0.13")),
			wantA: "201.50", wantG: "22.17",
		},
		{
			name:  "G rounded once: 100.05 + 100.05 at 13% gives 11.0055 + 11.0055 = 22.011",
			app:   plain(goods("100.05", "0.13"), goods("100.05", "0.13")),
			wantA: "200.10", wantG: "22.01",
		},
		{
			name:  "suspended store",
			store: "S-SUSP",
			app:   plain(goods("1000.00", "0.13")),
			kind:  fault.Precondition, reason: "STORE_NOT_ACTIVE",
		},
		{
			name:  "exited store",
			store: "S-EXIT",
			app:   plain(goods("1000.00", "0.13")),
			kind:  fault.Precondition, reason: "STORE_NOT_ACTIVE",
		},
	}
	// One database: the refusals run first, each on the empty database, which it must
	// leave empty; then the accepted forms, each writing exactly its rows.
	base := newSkeleton(t, noonMarch10)
	for _, wantRefusal := range []bool{true, false} {
		for _, tt := range tests {
			if (tt.reason != "") != wantRefusal {
				continue
			}
			t.Run(tt.name, func(t *testing.T) {
				s := base.as(t)
				store := tt.store
				if store == "" {
					store = "S-JFB-1"
				}
				app := tt.app(s)
				before := s.counts()
				f, err := s.issue(store, app)
				if tt.reason != "" {
					requireFault(t, err, tt.kind, tt.reason, tt.field)
					s.requireUnchanged(before, "the refusal")
					for _, table := range []string{"forms", "journal_txns", "idempotency_keys", "audit_events"} {
						s.requireCount(table, 0)
					}
					return
				}
				if err != nil {
					t.Fatalf("issue: %v, want A %s G %s", err, tt.wantA, tt.wantG)
				}
				requireAmounts(t, f, tt.wantA, tt.wantG)
				if !refund.ValidFormNumber(f.Number) || f.State != refund.Issued || f.StoreCode != store {
					t.Errorf("form %q state %s store %s, want a valid number, ISSUED, %s", f.Number, f.State, f.StoreCode, store)
				}
				if !f.PurchaseDate.Equal(civilDate("2026-03-10")) || !f.ExportDeadline.Equal(civilDate("2026-06-08")) {
					t.Errorf("purchase %s deadline %s, want 2026-03-10 and 2026-06-08", refund.FormatDate(f.PurchaseDate), refund.FormatDate(f.ExportDeadline))
				}
				if strings.Contains(f.DocMasked, app.Traveller.Document.Number) {
					t.Errorf("masked document %q shows the number", f.DocMasked)
				}
				got, err := s.svc.Get(s.ctx, store, f.Number)
				if err != nil {
					t.Fatalf("get: %v", err)
				}
				requireAmounts(t, got, tt.wantA, tt.wantG)
				if len(got.Lines) != len(app.Lines) || len(got.Invoices) != len(app.Invoices) {
					t.Errorf("stored %d lines, %d invoices; want %d, %d", len(got.Lines), len(got.Invoices), len(app.Lines), len(app.Invoices))
				}
				after := s.counts()
				want := map[string]int64{
					"forms": 1, "form_lines": int64(len(app.Lines)), "form_invoices": int64(len(app.Invoices)),
					"journal_txns": 1, "journal_entries": 2, "pending_transfers": 1, "pending_resolutions": 0,
					"idempotency_keys": 1, "audit_events": 1,
				}
				for table, n := range want {
					if d := after[table] - before[table]; d != n {
						t.Errorf("%s: %d rows written, want %d", table, d, n)
					}
				}
				s.requireConsistent()
			})
		}
	}
}

// The minimum is the one in force on the local purchase date: 500.00 until 2025-04-26,
// 200.00 from 2025-04-27 00:00 in Shanghai (2025-04-26T16:00Z).
func TestIssueMinimumIsEffectiveDated(t *testing.T) {
	t.Parallel()
	s := newSkeleton(t, time.Date(2025, 4, 26, 4, 0, 0, 0, time.UTC)) // 2025-04-26 12:00 local
	traveller := func(doc string) refund.Traveller {
		tr := passport(doc)
		tr.LastEntry = civilDate("2025-04-20")
		return tr
	}

	before := s.counts()
	_, err := s.issue("S-JFB-1", s.sale(traveller("E0000001"), goods("300.00", "0.13")))
	fe := requireFault(t, err, fault.Precondition, "BELOW_MINIMUM", "lines")
	if !strings.Contains(fe.Message, "500.00") {
		t.Errorf("message %q does not name the minimum 500.00", fe.Message)
	}
	s.requireUnchanged(before, "300.00 on 2025-04-26")

	f := s.mustIssue("S-JFB-1", s.sale(traveller("E0000002"), goods("500.00", "0.13")))
	requireAmounts(t, f, "500.00", "55.00")

	s.clock.Set(time.Date(2025, 4, 26, 15, 59, 59, 0, time.UTC)) // 23:59:59 local, still the 26th
	before = s.counts()
	_, err = s.issue("S-JFB-1", s.sale(traveller("E0000003"), goods("300.00", "0.13")))
	requireFault(t, err, fault.Precondition, "BELOW_MINIMUM", "lines")
	s.requireUnchanged(before, "300.00 at 2025-04-26 23:59:59 local")

	s.clock.Set(time.Date(2025, 4, 26, 16, 0, 0, 0, time.UTC)) // 2025-04-27 00:00 local
	f = s.mustIssue("S-JFB-1", s.sale(traveller("E0000003"), goods("300.00", "0.13")))
	requireAmounts(t, f, "300.00", "33.00")
	if !f.PurchaseDate.Equal(civilDate("2025-04-27")) {
		t.Errorf("purchase date %s, want 2025-04-27", refund.FormatDate(f.PurchaseDate))
	}

	before = s.counts()
	_, err = s.issue("S-JFB-1", s.sale(traveller("E0000004"), goods("199.99", "0.13")))
	fe = requireFault(t, err, fault.Precondition, "BELOW_MINIMUM", "lines")
	if !strings.Contains(fe.Message, "200.00") {
		t.Errorf("message %q does not name the minimum 200.00", fe.Message)
	}
	s.requireUnchanged(before, "199.99 on 2025-04-27")
}

// Same traveller (document), same store, same local day: the live forms' amounts add up
// to the minimum. A = 250.00 is issued; B = 50.00 alone is below 200.00.
func TestIssueSameDayThreshold(t *testing.T) {
	t.Parallel()
	s := newSkeleton(t, noonMarch10)
	traveller := passport(defaultDoc)

	a := s.mustIssue("S-JFB-1", s.sale(traveller, goods("250.00", "0.13")))

	refused := []struct {
		name  string
		store string
		tr    refund.Traveller
	}{
		{"B at another store", "S-JFB-2", traveller},
		{"B by another document", "S-JFB-1", passport("E7654321")},
		{"B by the same number on another document type", "S-JFB-1", func() refund.Traveller {
			tr := passport(defaultDoc)
			tr.Document.Type, tr.Document.IssuingCountry = refund.HKMacaoPermit, "CN"
			return tr
		}()},
	}
	for _, r := range refused {
		before := s.counts()
		_, err := s.issue(r.store, s.sale(r.tr, goods("50.00", "0.13")))
		fe := requireFault(t, err, fault.Precondition, "BELOW_MINIMUM", "lines")
		if !strings.Contains(fe.Message, "50.00") {
			t.Errorf("%s: message %q, want the total 50.00", r.name, fe.Message)
		}
		s.requireUnchanged(before, r.name)
	}

	b := s.mustIssue("S-JFB-1", s.sale(traveller, goods("50.00", "0.13")))
	requireAmounts(t, b, "50.00", "5.50")

	s.mustVoid("S-JFB-1", a.Number)
	before := s.counts()
	_, err := s.issue("S-JFB-1", s.sale(traveller, goods("50.00", "0.13")))
	fe := requireFault(t, err, fault.Precondition, "BELOW_MINIMUM", "lines")
	if !strings.Contains(fe.Message, "100.00") {
		t.Errorf("after voiding A: message %q, want the total 100.00 (B 50.00 + 50.00)", fe.Message)
	}
	s.requireUnchanged(before, "50.00 after voiding A")

	c := s.mustIssue("S-JFB-1", s.sale(traveller, goods("150.00", "0.09")))
	requireAmounts(t, c, "150.00", "12.00")
	s.requireBalance(ledger.RefundExpense, "0", "17.50") // B 5.50 + C 12.00
	s.requireConsistent()
}

// The day of the threshold is the Asia/Shanghai day: local midnight is 16:00Z.
func TestIssueSameDayThresholdAcrossShanghaiMidnight(t *testing.T) {
	t.Parallel()

	t.Run("16:00Z is the next local day", func(t *testing.T) {
		t.Parallel()
		s := newSkeleton(t, time.Date(2026, 3, 10, 15, 59, 59, 0, time.UTC)) // 2026-03-10 23:59:59 local
		tr := passport(defaultDoc)
		a := s.mustIssue("S-JFB-1", s.sale(tr, goods("250.00", "0.13")))
		if !a.PurchaseDate.Equal(civilDate("2026-03-10")) {
			t.Fatalf("A purchase date %s, want 2026-03-10", refund.FormatDate(a.PurchaseDate))
		}

		s.clock.Set(time.Date(2026, 3, 10, 16, 0, 0, 0, time.UTC)) // 2026-03-11 00:00 local
		before := s.counts()
		_, err := s.issue("S-JFB-1", s.sale(tr, goods("100.00", "0.13")))
		requireFault(t, err, fault.Precondition, "BELOW_MINIMUM", "lines")
		s.requireUnchanged(before, "B at 16:00:00Z")

		s.clock.Set(time.Date(2026, 3, 10, 15, 59, 59, 0, time.UTC))
		b := s.mustIssue("S-JFB-1", s.sale(tr, goods("100.00", "0.13")))
		requireAmounts(t, b, "100.00", "11.00")
		if !b.PurchaseDate.Equal(civilDate("2026-03-10")) {
			t.Errorf("B purchase date %s, want 2026-03-10", refund.FormatDate(b.PurchaseDate))
		}
	})

	t.Run("two UTC days, one local day", func(t *testing.T) {
		t.Parallel()
		s := newSkeleton(t, time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)) // 2026-03-10 08:00 local
		tr := passport(defaultDoc)
		s.mustIssue("S-JFB-1", s.sale(tr, goods("250.00", "0.13")))
		s.clock.Set(time.Date(2026, 3, 9, 23, 59, 59, 0, time.UTC)) // 2026-03-10 07:59:59 local
		b := s.mustIssue("S-JFB-1", s.sale(tr, goods("100.00", "0.13")))
		if !b.PurchaseDate.Equal(civilDate("2026-03-10")) {
			t.Errorf("B purchase date %s, want 2026-03-10", refund.FormatDate(b.PurchaseDate))
		}
	})
}

// The same request_id and content twice gives the first form; the same request_id with
// another content is refused and writes nothing.
func TestIssueIdempotent(t *testing.T) {
	t.Parallel()
	s := newSkeleton(t, noonMarch10)
	rid := uuid.New()
	app := s.sale(passport(defaultDoc), goods("1000.00", "0.13"), goods("500.00", "0.09"))

	first, err := s.issueAs(rid, "S-JFB-1", app)
	if err != nil {
		t.Fatal(err)
	}
	after := s.counts()
	s.clock.Set(noonMarch10.Add(time.Minute))
	again, err := s.issueAs(rid, "S-JFB-1", app)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if again.Number != first.Number || again.ID != first.ID || again.State != refund.Issued ||
		!again.IssuedAt.Equal(first.IssuedAt) || !again.PurchaseDate.Equal(first.PurchaseDate) ||
		len(again.Lines) != 2 || len(again.Invoices) != 1 {
		t.Errorf("retry gave %+v, want the first form %+v", again, first)
	}
	requireAmounts(t, again, "1500.00", "150.00")
	s.requireUnchanged(after, "the retry")
	s.requireCount("forms", 1)

	other := app
	other.Lines = []refund.Line{goods("300.00", "0.13")}
	other.Lines[0].InvoiceNumber = app.Invoices[0].Number
	_, err = s.issueAs(rid, "S-JFB-1", other)
	requireFault(t, err, fault.Precondition, "REQUEST_ID_REUSED", "request_id")
	s.requireUnchanged(after, "the same request_id with other content")

	_, err = s.voidAs(rid, "S-JFB-1", first.Number)
	requireFault(t, err, fault.Precondition, "REQUEST_ID_REUSED", "request_id")
	s.requireUnchanged(after, "the issue's request_id used for a void")
	if f, err := s.svc.Get(s.ctx, "S-JFB-1", first.Number); err != nil || f.State != refund.Issued {
		t.Errorf("form after the refused void: %s, %v; want ISSUED", f.State, err)
	}

	// Idempotency keys are per caller: another store's request with the same id is its own.
	f, err := s.issueAs(rid, "S-JFB-2", s.sale(passport(defaultDoc), goods("300.00", "0.13")))
	if err != nil {
		t.Fatalf("another store, same request_id: %v", err)
	}
	if f.Number == first.Number || f.StoreCode != "S-JFB-2" {
		t.Errorf("another store's request got form %s of %s", f.Number, f.StoreCode)
	}
}

// A retry of an issued request (same request_id, same content) gets the first answer,
// whatever changed since: the issue's rule "same request_id + same content → the original
// response".
func TestIssueRetryReturnsFirstAnswerAfterChanges(t *testing.T) {
	t.Parallel()

	t.Run("after the form that made up the minimum was voided", func(t *testing.T) {
		t.Parallel()
		s := newSkeleton(t, noonMarch10)
		tr := passport(defaultDoc)
		a := s.mustIssue("S-JFB-1", s.sale(tr, goods("250.00", "0.13")))
		rid := uuid.New()
		appB := s.sale(tr, goods("50.00", "0.13"))
		b, err := s.issueAs(rid, "S-JFB-1", appB)
		if err != nil {
			t.Fatal(err)
		}
		s.mustVoid("S-JFB-1", a.Number)
		before := s.counts()
		again, err := s.issueAs(rid, "S-JFB-1", appB)
		if err != nil {
			t.Fatalf("retry of B (form %s, issued) after voiding A: %v; want form %s again", b.Number, err, b.Number)
		}
		if again.Number != b.Number {
			t.Errorf("retry gave form %s, want %s", again.Number, b.Number)
		}
		s.requireUnchanged(before, "the retry")
	})

	t.Run("the next day, after the document expired", func(t *testing.T) {
		t.Parallel()
		s := newSkeleton(t, noonMarch10)
		tr := passport(defaultDoc)
		tr.Expiry = civilDate("2026-03-10")
		rid := uuid.New()
		app := s.sale(tr, goods("300.00", "0.13"))
		first, err := s.issueAs(rid, "S-JFB-1", app)
		if err != nil {
			t.Fatal(err)
		}
		s.clock.Set(noonMarch10.Add(24 * time.Hour))
		before := s.counts()
		again, err := s.issueAs(rid, "S-JFB-1", app)
		if err != nil {
			t.Fatalf("retry of form %s on 2026-03-11: %v; want form %s again", first.Number, err, first.Number)
		}
		if again.Number != first.Number {
			t.Errorf("retry gave form %s, want %s", again.Number, first.Number)
		}
		s.requireUnchanged(before, "the retry")
	})

	t.Run("after the store was suspended", func(t *testing.T) {
		t.Parallel()
		s := newSkeleton(t, noonMarch10)
		rid := uuid.New()
		app := s.sale(passport(defaultDoc), goods("300.00", "0.13"))
		first, err := s.issueAs(rid, "S-JFB-1", app)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.pool.Exec(s.ctx, `UPDATE stores SET status = 'SUSPENDED' WHERE code = 'S-JFB-1'`); err != nil {
			t.Fatal(err)
		}
		before := s.counts()
		again, err := s.issueAs(rid, "S-JFB-1", app)
		if err != nil {
			t.Fatalf("retry: %v", err)
		}
		if again.Number != first.Number {
			t.Errorf("retry gave form %s, want %s", again.Number, first.Number)
		}
		s.requireUnchanged(before, "the retry")
		_, err = s.issue("S-JFB-1", s.sale(passport(defaultDoc), goods("300.00", "0.13")))
		requireFault(t, err, fault.Precondition, "STORE_NOT_ACTIVE", "")
		s.requireUnchanged(before, "a new form at the suspended store")
	})
}

// race runs n calls of fn at once (a start barrier releases them together) and returns
// their results in call order.
func race[T any](n int, fn func(i int) (T, error)) ([]T, []error) {
	out := make([]T, n)
	errs := make([]error, n)
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			out[i], errs[i] = fn(i)
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
	return out, errs
}

// 50 concurrent Issue calls with one request_id create one form, and every caller gets it.
func TestIssueRaceOneRequestID(t *testing.T) {
	t.Parallel()
	const n = 50
	tests := []struct {
		name string
		// earlier is issued first (same traveller, store and day); nil for none.
		earlier []refund.Line
		line    refund.Line
		wantA   string
		wantG   string
	}{
		{name: "form above the minimum on its own", line: goods("1500.00", "0.13"), wantA: "1500.00", wantG: "165.00"},
		{name: "form below the minimum, made up by an earlier form", earlier: []refund.Line{goods("250.00", "0.13")},
			line: goods("50.00", "0.13"), wantA: "50.00", wantG: "5.50"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newSkeleton(t, noonMarch10)
			s.warmAccounts()
			tr := passport(defaultDoc)
			var base int64
			if tt.earlier != nil {
				s.mustIssue("S-JFB-1", s.sale(tr, tt.earlier...))
				base = 1
			}
			rid := uuid.New()
			app := s.sale(tr, tt.line)
			got, errs := race(n, func(int) (forms.Form, error) { return s.issueAs(rid, "S-JFB-1", app) })
			numbers := map[string]int{}
			for i, err := range errs {
				if err != nil {
					t.Errorf("call %d: %v", i, err)
					continue
				}
				numbers[got[i].Number]++
				requireAmounts(t, got[i], tt.wantA, tt.wantG)
			}
			t.Logf("%d concurrent calls with one request_id: %d distinct form numbers %v", n, len(numbers), numbers)
			if len(numbers) != 1 {
				t.Errorf("got %d distinct form numbers, want 1", len(numbers))
			}
			s.requireCount("forms", base+1)
			s.requireCount("journal_txns", base+1)
			s.requireCount("pending_transfers", base+1)
			s.requireCount("idempotency_keys", base+1)
			s.requireCount("audit_events", base+1)
			s.requireConsistent()
		})
	}
}

// 50 concurrent requests (different request_ids, travellers) claim one invoice of one
// store: exactly one form, 49 refusals naming it.
func TestIssueRaceOneInvoice(t *testing.T) {
	t.Parallel()
	const n = 50
	s := newSkeleton(t, noonMarch10)
	s.warmAccounts()
	apps := make([]refund.Application, n)
	for i := range apps {
		apps[i] = s.saleOn(passport(fmt.Sprintf("E9%05d", i)),
			"INV-RACE-1", goods("300.00", "0.13"))
	}
	got, errs := race(n, func(i int) (forms.Form, error) { return s.issue("S-JFB-1", apps[i]) })
	var winners []forms.Form
	for i, err := range errs {
		if err == nil {
			winners = append(winners, got[i])
		}
	}
	t.Logf("%d concurrent claims of one invoice: %d winners", n, len(winners))
	if len(winners) != 1 {
		t.Fatalf("%d winners, want 1", len(winners))
	}
	win := winners[0].Number
	losers := 0
	for i, err := range errs {
		if err == nil {
			continue
		}
		fe := requireFault(t, err, fault.Precondition, "INVOICE_ALREADY_CLAIMED", "invoices[0].number")
		if len(fe.Violations) == 1 && !strings.Contains(fe.Violations[0].Description, win) {
			t.Errorf("call %d: %q does not name the winning form %s", i, fe.Violations[0].Description, win)
		}
		losers++
	}
	if losers != n-1 {
		t.Errorf("%d refusals, want %d", losers, n-1)
	}
	var live int
	if err := s.pool.QueryRow(s.ctx, `SELECT count(*) FROM form_invoices WHERE store_code = 'S-JFB-1' AND invoice_number = 'INV-RACE-1' AND live`).Scan(&live); err != nil {
		t.Fatal(err)
	}
	if live != 1 {
		t.Errorf("%d live form_invoices rows for INV-RACE-1, want 1", live)
	}
	for _, table := range []string{"forms", "journal_txns", "pending_transfers", "idempotency_keys", "audit_events"} {
		s.requireCount(table, 1)
	}
	s.requireConsistent()
}

// The first requests on a new database create the ledger accounts. When another request
// (or another server) is creating them at the same moment, Issue must still succeed: here
// another transaction has inserted the two accounts and commits only once Issue waits on
// them.
func TestIssueWhileAnotherRequestCreatesTheLedgerAccounts(t *testing.T) {
	t.Parallel()
	s := newSkeleton(t, noonMarch10) // no warmAccounts: the accounts do not exist yet
	tx, err := s.pool.Begin(s.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(s.ctx)
	if _, err := tx.Exec(s.ctx, `INSERT INTO accounts (code) VALUES ($1), ($2)`, ledger.RefundExpense, ledger.RefundPayable); err != nil {
		t.Fatal(err)
	}
	app := s.sale(passport(defaultDoc), goods("300.00", "0.13"))
	type result struct {
		f   forms.Form
		err error
	}
	done := make(chan result, 1)
	go func() {
		f, err := s.issue("S-JFB-1", app)
		done <- result{f, err}
	}()
	waitForLockWaiter(t, s)
	if err := tx.Commit(s.ctx); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("issue while the accounts were being created: %v; want the form", r.err)
	}
	requireAmounts(t, r.f, "300.00", "33.00")
	s.requireCount("forms", 1)
}

// waitForLockWaiter waits until a session of the test's database waits on a lock.
func waitForLockWaiter(t *testing.T, s *skeleton) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var n int
		if err := s.pool.QueryRow(s.ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("no session waited on the lock within 10s")
}

// An invoice (store + number) is on at most one live form; voiding releases it; another
// store's invoice of the same number is another invoice.
func TestIssueInvoiceReuse(t *testing.T) {
	t.Parallel()
	s := newSkeleton(t, noonMarch10)
	first := s.mustIssue("S-JFB-1", s.saleOn(passport(defaultDoc), "INV-1", goods("300.00", "0.13")))

	before := s.counts()
	_, err := s.issue("S-JFB-1", s.saleOn(passport("E7654321"), "INV-1", goods("400.00", "0.13")))
	fe := requireFault(t, err, fault.Precondition, "INVOICE_ALREADY_CLAIMED", "invoices[0].number")
	if !strings.Contains(fe.Violations[0].Description, first.Number) {
		t.Errorf("refusal %q does not name form %s", fe.Violations[0].Description, first.Number)
	}
	s.requireUnchanged(before, "a second claim of INV-1")

	// The claimed invoice second of two: the violation names invoices[1].
	app := s.sale(passport("E7654321"), goods("400.00", "0.13"), goods("100.00", "0.09"))
	app.Invoices = append(app.Invoices, refund.Invoice{Number: "INV-1", Date: s.today()})
	app.Lines[1].InvoiceNumber = "INV-1"
	_, err = s.issue("S-JFB-1", app)
	requireFault(t, err, fault.Precondition, "INVOICE_ALREADY_CLAIMED", "invoices[1].number")
	s.requireUnchanged(before, "a claim of INV-1 as the second invoice")

	other := s.mustIssue("S-JFB-2", s.saleOn(passport("E7654321"), "INV-1", goods("400.00", "0.13")))
	requireAmounts(t, other, "400.00", "44.00")

	s.mustVoid("S-JFB-1", first.Number)
	again := s.mustIssue("S-JFB-1", s.saleOn(passport("E7654321"), "INV-1", goods("300.00", "0.13")))
	if again.Number == first.Number {
		t.Errorf("the new form reused the number %s", first.Number)
	}
	var live []string
	rows, err := s.pool.Query(s.ctx, `SELECT f.number FROM form_invoices i JOIN forms f ON f.id = i.form_id
		WHERE i.store_code = 'S-JFB-1' AND i.invoice_number = 'INV-1' AND i.live`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		live = append(live, n)
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	if len(live) != 1 || live[0] != again.Number {
		t.Errorf("live holders of S-JFB-1/INV-1: %v, want only %s", live, again.Number)
	}
	s.requireConsistent()
}

// Issuing writes the PENDING transfer of G (DOMAIN.md §8): Dr refund_expense G / Cr
// refund_payable G in the pending layer, nothing posted.
func TestIssueLedgerEntries(t *testing.T) {
	t.Parallel()
	s := newSkeleton(t, noonMarch10)
	f := s.mustIssue("S-JFB-1", s.sale(passport(defaultDoc), goods("1000.00", "0.13"), goods("500.00", "0.09")))
	s.requireBalance(ledger.RefundExpense, "0", "150.00")
	s.requireBalance(ledger.RefundPayable, "0", "-150.00")

	rows, err := s.pool.Query(s.ctx, `
		SELECT t.kind, t.idem_key, t.effective_date::text, a.code, e.pending, e.side::text, e.amount::text,
		       (SELECT p.amount::text FROM pending_transfers p JOIN forms f ON f.pending_id = p.id WHERE f.number = t.ref)
		  FROM journal_txns t JOIN journal_entries e ON e.txn_id = t.id JOIN accounts a ON a.id = e.account_id
		 WHERE t.ref = $1 ORDER BY e.side DESC`, f.Number)
	if err != nil {
		t.Fatal(err)
	}
	type entry struct{ kind, key, date, account, side, amount, pendingAmount string }
	var got []entry
	for rows.Next() {
		var e entry
		var pending bool
		if err := rows.Scan(&e.kind, &e.key, &e.date, &e.account, &pending, &e.side, &e.amount, &e.pendingAmount); err != nil {
			t.Fatal(err)
		}
		if !pending {
			t.Errorf("entry %+v is posted, want pending", e)
		}
		got = append(got, e)
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	key := "form:" + f.Number + ":issue"
	want := []entry{
		{"FORM_ISSUED", key, "2026-03-10", ledger.RefundExpense, "D", "150.00", "150.00"},
		{"FORM_ISSUED", key, "2026-03-10", ledger.RefundPayable, "C", "150.00", "150.00"},
	}
	if len(got) != len(want) {
		t.Fatalf("entries %+v, want %+v", got, want)
	}
	for i := range want {
		if !cny(got[i].amount).Equal(cny(want[i].amount)) || !cny(got[i].pendingAmount).Equal(cny(want[i].pendingAmount)) {
			t.Errorf("entry %d amounts %s (pending %s), want %s", i, got[i].amount, got[i].pendingAmount, want[i].amount)
		}
		got[i].amount, got[i].pendingAmount = want[i].amount, want[i].pendingAmount
		if got[i] != want[i] {
			t.Errorf("entry %d: %+v, want %+v", i, got[i], want[i])
		}
	}

	s.mustIssue("S-JFB-2", s.sale(passport(defaultDoc), goods("200.00", "0.13")))
	s.requireBalance(ledger.RefundExpense, "0", "172.00")
	s.requireBalance(ledger.RefundPayable, "0", "-172.00")
	s.requireConsistent()
}

// Get shows a store its own forms only; List pages a store's forms, newest first, by date
// range and state.
func TestGetAndList(t *testing.T) {
	t.Parallel()
	s := newSkeleton(t, noonMarch10)
	tr := passport(defaultDoc)

	// Seven forms, one a day from 2026-03-04 to 2026-03-10, and one of another store.
	var issued []forms.Form // oldest first
	for d := 4; d <= 10; d++ {
		s.clock.Set(time.Date(2026, 3, d, 4, 0, 0, 0, time.UTC))
		issued = append(issued, s.mustIssue("S-JFB-1", s.sale(tr, goods("200.00", "0.13"), goods(fmt.Sprintf("%d.00", d-3), "0.09"))))
	}
	foreign := s.mustIssue("S-JFB-2", s.sale(tr, goods("300.00", "0.13")))
	newestFirst := func(fs []forms.Form) []string {
		var out []string
		for i := len(fs) - 1; i >= 0; i-- {
			out = append(out, fs[i].Number)
		}
		return out
	}

	t.Run("get", func(t *testing.T) {
		f, err := s.svc.Get(s.ctx, "S-JFB-1", issued[6].Number)
		if err != nil {
			t.Fatal(err)
		}
		requireAmounts(t, f, "207.00", "22.56") // 200.00 × 0.11 + 7.00 × 0.08
		if !f.PurchaseDate.Equal(civilDate("2026-03-10")) || len(f.Lines) != 2 || f.Lines[1].No != 2 {
			t.Errorf("got %+v", f)
		}
		_, err = s.svc.Get(s.ctx, "S-JFB-2", issued[6].Number)
		requireFault(t, err, fault.NotFound, "FORM_NOT_FOUND", "form_number")
		_, err = s.svc.Get(s.ctx, "S-JFB-1", foreign.Number)
		requireFault(t, err, fault.NotFound, "FORM_NOT_FOUND", "form_number")
		_, err = s.svc.Get(s.ctx, "S-JFB-1", refund.NewFormNumber())
		requireFault(t, err, fault.NotFound, "FORM_NOT_FOUND", "form_number")
		n := issued[6].Number
		wrongCheck := n[:18] + string("0123456789ABCDEFGHJKMNPQRSTVWXYZ"[(strings.IndexByte("0123456789ABCDEFGHJKMNPQRSTVWXYZ", n[18])+1)%32])
		for _, bad := range []string{"", "TR123", strings.ToLower(n), n + "0", wrongCheck, "XX" + n[2:]} {
			_, err = s.svc.Get(s.ctx, "S-JFB-1", bad)
			requireFault(t, err, fault.Invalid, "FORM_NUMBER", "form_number")
		}
	})

	list := func(t *testing.T, q forms.ListQuery) []string {
		t.Helper()
		var out []string
		seen := map[string]bool{}
		for page := 0; page < 10; page++ {
			fs, more, err := s.svc.List(s.ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if len(fs) > q.PageSize {
				t.Errorf("page %d has %d forms, page size %d", page, len(fs), q.PageSize)
			}
			for _, f := range fs {
				if seen[f.Number] {
					t.Errorf("form %s listed twice", f.Number)
				}
				seen[f.Number] = true
				if f.StoreCode != q.StoreCode {
					t.Errorf("form %s of %s listed for %s", f.Number, f.StoreCode, q.StoreCode)
				}
				out = append(out, f.Number)
			}
			t.Logf("page %d: %d forms, more %v", page, len(fs), more)
			if !more {
				return out
			}
			last := fs[len(fs)-1]
			q.AfterDate, q.AfterID = &last.PurchaseDate, &last.ID
		}
		t.Fatal("more than 10 pages")
		return nil
	}
	all := forms.ListQuery{StoreCode: "S-JFB-1", From: civilDate("2026-03-01"), To: civilDate("2026-03-31"), PageSize: 3}

	t.Run("pages of 3", func(t *testing.T) {
		var sizes []int
		q := all
		for {
			fs, more, err := s.svc.List(s.ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			sizes = append(sizes, len(fs))
			if !more || len(fs) == 0 {
				break
			}
			q.AfterDate, q.AfterID = &fs[len(fs)-1].PurchaseDate, &fs[len(fs)-1].ID
		}
		if len(sizes) != 3 || sizes[0] != 3 || sizes[1] != 3 || sizes[2] != 1 {
			t.Errorf("page sizes %v, want [3 3 1]", sizes)
		}
		if got, want := list(t, all), newestFirst(issued); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("listed %v, want newest first %v", got, want)
		}
	})

	s.mustVoid("S-JFB-1", issued[1].Number) // 2026-03-05
	s.mustVoid("S-JFB-1", issued[4].Number) // 2026-03-08

	tests := []struct {
		name string
		edit func(*forms.ListQuery)
		want []forms.Form // newest first
	}{
		{"voided", func(q *forms.ListQuery) { q.State = refund.Voided }, []forms.Form{issued[4], issued[1]}},
		{"issued", func(q *forms.ListQuery) { q.State = refund.Issued }, []forms.Form{issued[6], issued[5], issued[3], issued[2], issued[0]}},
		{"verified", func(q *forms.ListQuery) { q.State = refund.Verified }, nil},
		{"2026-03-06 to 2026-03-08", func(q *forms.ListQuery) { q.From, q.To = civilDate("2026-03-06"), civilDate("2026-03-08") },
			[]forms.Form{issued[4], issued[3], issued[2]}},
		{"2026-03-06 to 2026-03-08, voided", func(q *forms.ListQuery) {
			q.From, q.To, q.State = civilDate("2026-03-06"), civilDate("2026-03-08"), refund.Voided
		}, []forms.Form{issued[4]}},
		{"one day, page size 1", func(q *forms.ListQuery) {
			q.From, q.To, q.PageSize = civilDate("2026-03-10"), civilDate("2026-03-10"), 1
		},
			[]forms.Form{issued[6]}},
		{"before any form", func(q *forms.ListQuery) { q.From, q.To = civilDate("2026-02-01"), civilDate("2026-03-03") }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := all
			tt.edit(&q)
			var want []string
			for _, f := range tt.want {
				want = append(want, f.Number)
			}
			if got := list(t, q); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("listed %v, want %v", got, want)
			}
		})
	}
	other := list(t, forms.ListQuery{StoreCode: "S-JFB-2", From: civilDate("2026-03-01"), To: civilDate("2026-03-31"), PageSize: 10})
	if len(other) != 1 || other[0] != foreign.Number {
		t.Errorf("S-JFB-2 lists %v, want only %s", other, foreign.Number)
	}
}
