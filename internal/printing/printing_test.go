package printing_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"taxrefund/internal/db"
	"taxrefund/internal/dbtest"
	"taxrefund/internal/fault"
	"taxrefund/internal/formdoc"
	"taxrefund/internal/forms"
	"taxrefund/internal/idempotency"
	"taxrefund/internal/ledger"
	"taxrefund/internal/params"
	"taxrefund/internal/pdf"
	"taxrefund/internal/printing"
	"taxrefund/internal/refund"
)

// One browser for the whole test binary.
var renderer *pdf.Renderer

func TestMain(m *testing.M) {
	r, err := pdf.Start(pdf.Options{Timeout: 3 * time.Minute}) // the test machine may be busy
	if err != nil {
		fmt.Fprintln(os.Stderr, "printing tests need Chromium:", err)
		os.Exit(1)
	}
	renderer = r
	code := m.Run()
	r.Close()
	os.Exit(code)
}

const document = "E98765432"

type fixture struct {
	t     *testing.T
	owner *pgxpool.Pool
	app   *pgxpool.Pool
	forms *forms.Service
	svc   *printing.Service
}

// newFixture runs the services as the store service's role, under row-level security, on a
// database of the test's own.
func newFixture(t *testing.T) *fixture {
	url := dbtest.NewURL(t)
	owner := dbtest.OpenPool(t, url, "")
	dbtest.Registry(t, owner)
	// As serve runs StoreService: the store's own role, which only prints and reads prints.
	app := dbtest.OpenPool(t, url, db.StoreRole)
	clock := dbtest.NewClock(time.Date(2026, 3, 10, 4, 0, 0, 0, time.UTC))
	f := forms.New(forms.Deps{Pool: app, Ledger: ledger.NewStore(), Keys: dbtest.Keyring(t), Params: params.NewCache(app, 0),
		Now: clock.Now, Log: slog.New(slog.DiscardHandler)})
	return &fixture{t: t, owner: owner, app: app, forms: f, svc: printing.New(app, f, renderer, slog.Default())}
}

func as(store string) context.Context { return db.WithParty(context.Background(), "store", store) }

func (x *fixture) issue(store string) forms.Form {
	x.t.Helper()
	d := func(s string) time.Time { v, _ := time.Parse(time.DateOnly, s); return v }
	inv := "INV-" + uuid.NewString()[:8]
	app := refund.Application{
		Traveller: refund.Traveller{Document: refund.Document{Type: refund.Passport, Number: document, IssuingCountry: "FR"},
			Expiry: d("2030-01-01"), Nationality: "FR", LastEntry: d("2026-02-28")},
		Invoices: []refund.Invoice{{Number: inv, Date: d("2026-03-10")}},
		Lines: []refund.Line{{Description: "Silk scarf 丝巾", Category: refund.General, VATRate: decimal.RequireFromString("0.13"),
			Quantity: 1, Amount: decimal.RequireFromString("1000.00"), InvoiceNumber: inv}},
	}
	f, err := x.forms.Issue(as(store), forms.IssueRequest{
		Idem:      idempotency.Key{Caller: "taxrefund://store/" + store, RequestID: uuid.New(), Hash: []byte(inv)},
		StoreCode: store, Application: app,
	})
	if err != nil {
		x.t.Fatalf("issue: %v", err)
	}
	return f
}

func (x *fixture) print(store, number string, rid uuid.UUID, f formdoc.Format) (printing.Result, error) {
	return x.svc.Print(as(store), printing.Request{
		Idem:      idempotency.Key{Caller: "taxrefund://store/" + store, RequestID: rid, Hash: []byte(fmt.Sprint(number, f))},
		StoreCode: store, Number: number, Format: f,
	})
}

// read is the printed form as a reader finds it: its text (pdftotext) and the codes a
// real decoder reads from a 200 dpi image of it (pdftoppm, zbarimg).
type read struct {
	text  string
	codes []string
}

func readBack(t *testing.T, data []byte) read {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "form.pdf")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	txt, err := exec.Command("pdftotext", "-layout", file, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	if out, err := exec.Command("pdftoppm", "-r", "200", "-png", file, filepath.Join(dir, "page")).CombinedOutput(); err != nil {
		t.Fatalf("pdftoppm: %v: %s", err, out)
	}
	pages, _ := filepath.Glob(filepath.Join(dir, "page*.png"))
	var codes []string
	for _, p := range pages {
		out, _ := exec.Command("zbarimg", "--quiet", p).Output() // exit 4: no code found
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if l != "" {
				codes = append(codes, l)
			}
		}
	}
	return read{text: string(txt), codes: codes}
}

func wantCodes(t *testing.T, r read, number string) {
	t.Helper()
	got := strings.Join(r.codes, " ")
	if want := "CODE-128:" + number; !strings.Contains(got, want) {
		t.Errorf("decoded %q; want %s", got, want)
	}
	if want := "QR-Code:" + number; !strings.Contains(got, want) {
		t.Errorf("decoded %q; want %s", got, want)
	}
	if len(r.codes) != 2 {
		t.Errorf("decoded %d codes %q; want exactly the two of the form number", len(r.codes), r.codes)
	}
	if strings.Contains(r.text, document) || strings.Contains(r.text, document[:5]) {
		t.Errorf("the printed form shows more of the document than its last four characters")
	}
	if !strings.Contains(r.text, "****5432") {
		t.Errorf("the printed form lacks the masked document ****5432")
	}
}

func (x *fixture) count(q string, args ...any) int {
	x.t.Helper()
	var n int
	if err := x.owner.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		x.t.Fatalf("%s: %v", q, err)
	}
	return n
}

func TestReprintsAreCountedMarkedAndAudited(t *testing.T) {
	x := newFixture(t)
	f := x.issue("S-JFB-1")

	first, err := x.print("S-JFB-1", f.Number, uuid.New(), formdoc.Receipt80)
	if err != nil {
		t.Fatalf("first print: %v", err)
	}
	r := readBack(t, first.PDF)
	wantCodes(t, r, f.Number)
	if first.Print != 1 || strings.Contains(r.text, "REPRINT") {
		t.Errorf("first print: number %d, marked reprint: %v", first.Print, strings.Contains(r.text, "REPRINT"))
	}
	if got := fmt.Sprint(first.Languages); got != "[zh en fr]" {
		t.Errorf("languages for a French traveller: %s; want [zh en fr]", got)
	}

	rid := uuid.New()
	second, err := x.print("S-JFB-1", f.Number, rid, formdoc.A4)
	if err != nil {
		t.Fatalf("reprint: %v", err)
	}
	r = readBack(t, second.PDF)
	wantCodes(t, r, f.Number)
	if second.Print != 2 || !strings.Contains(r.text, "REPRINT 1") || !strings.Contains(r.text, "补打 1") {
		t.Errorf("second print: number %d; want 2 marked REPRINT 1 / 补打 1:\n%s", second.Print, r.text)
	}

	// A retry of the same request is the same print, not another reprint.
	again, err := x.print("S-JFB-1", f.Number, rid, formdoc.A4)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if again.Print != 2 {
		t.Errorf("retry with the same request_id printed number %d; want 2", again.Print)
	}
	third, err := x.print("S-JFB-1", f.Number, uuid.New(), formdoc.A4)
	if err != nil {
		t.Fatalf("third print: %v", err)
	}
	if r := readBack(t, third.PDF); third.Print != 3 || !strings.Contains(r.text, "REPRINT 2") {
		t.Errorf("third print: number %d; want 3 marked REPRINT 2", third.Print)
	}

	if n := x.count(`SELECT count(*) FROM form_prints WHERE form_id = $1`, f.ID); n != 3 {
		t.Errorf("form_prints rows: %d; want 3", n)
	}
	if n := x.count(`SELECT count(*) FROM audit_events WHERE object = $1 AND action = 'FORM_PRINTED'`, f.Number); n != 1 {
		t.Errorf("FORM_PRINTED events: %d; want 1", n)
	}
	if n := x.count(`SELECT count(*) FROM audit_events WHERE object = $1 AND action = 'FORM_REPRINTED'`, f.Number); n != 2 {
		t.Errorf("FORM_REPRINTED events: %d; want 2", n)
	}
}

func TestOnlyTheIssuingStorePrints(t *testing.T) {
	x := newFixture(t)
	f := x.issue("S-JFB-1")
	_, err := x.print("S-JFB-2", f.Number, uuid.New(), formdoc.A4)
	dbtest.WantFault(t, err, fault.NotFound, "FORM_NOT_FOUND", "form_number")
	if n := x.count(`SELECT count(*) FROM form_prints`); n != 0 {
		t.Errorf("a refused print was counted: %d rows", n)
	}
	if _, err := x.print("S-JFB-1", f.Number, uuid.New(), formdoc.A4); err != nil {
		t.Fatalf("print by the issuing store: %v", err)
	}
	// Row-level security: another store reads none of the prints, the issuing store its own.
	var mine, theirs int
	if err := db.Scope(x.app).QueryRow(as("S-JFB-1"), `SELECT count(*) FROM form_prints`).Scan(&mine); err != nil {
		t.Fatal(err)
	}
	if err := db.Scope(x.app).QueryRow(as("S-JFB-2"), `SELECT count(*) FROM form_prints`).Scan(&theirs); err != nil {
		t.Fatal(err)
	}
	if mine != 1 || theirs != 0 {
		t.Errorf("prints visible to the issuing store %d (want 1), to another store %d (want 0)", mine, theirs)
	}
}

func TestVoidedFormPrintsVoid(t *testing.T) {
	x := newFixture(t)
	f := x.issue("S-JFB-1")
	live, err := x.print("S-JFB-1", f.Number, uuid.New(), formdoc.A4)
	if err != nil {
		t.Fatal(err)
	}
	if r := readBack(t, live.PDF); strings.Contains(r.text, "VOID") {
		t.Errorf("a live form prints VOID")
	}
	if _, err := x.forms.Void(as("S-JFB-1"), forms.VoidRequest{
		Idem:      idempotency.Key{Caller: "taxrefund://store/S-JFB-1", RequestID: uuid.New(), Hash: []byte("void")},
		StoreCode: "S-JFB-1", Number: f.Number, Reason: "goods returned",
	}); err != nil {
		t.Fatalf("void: %v", err)
	}
	for _, format := range []formdoc.Format{formdoc.A4, formdoc.Receipt80} {
		res, err := x.print("S-JFB-1", f.Number, uuid.New(), format)
		if err != nil {
			t.Fatalf("print voided: %v", err)
		}
		r := readBack(t, res.PDF)
		wantCodes(t, r, f.Number)
		for _, want := range []string{"VOID", "作废", "This form has been voided"} {
			if !strings.Contains(r.text, want) {
				t.Errorf("format %d: voided form lacks %q", format, want)
			}
		}
	}
}
