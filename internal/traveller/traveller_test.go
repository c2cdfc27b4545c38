package traveller_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	travellerv1 "taxrefund/api/taxrefund/traveller/v1"
	"taxrefund/internal/db"
	"taxrefund/internal/dbtest"
	"taxrefund/internal/forms"
	"taxrefund/internal/idempotency"
	"taxrefund/internal/immediate"
	"taxrefund/internal/ledger"
	"taxrefund/internal/params"
	"taxrefund/internal/payouts"
	"taxrefund/internal/pki"
	"taxrefund/internal/refund"
	"taxrefund/internal/traveller"
)

// The fixture: a database of the test's own with dbtest.Registry's stores, a form issued
// to a French passport ending 5432, and the traveller listener on a loopback port with a
// certificate of a CA of the test's own.
type fixture struct {
	t         *testing.T
	forms     *forms.Service
	payouts   *payouts.Service
	immediate *immediate.Service
	svc       *traveller.Service
	reg       *prometheus.Registry
	addr      string
	caPool    *x509.CertPool
	clock     *dbtest.Clock
	limNow    atomic.Pointer[time.Time]
	limits    traveller.Limits
	storeCx   context.Context
	url       string
}

const document = "E98765432"

func newFixture(t *testing.T, l traveller.Limits) *fixture {
	url := dbtest.NewURL(t)
	owner := dbtest.OpenPool(t, url, "")
	dbtest.Registry(t, owner)
	app := dbtest.OpenPool(t, url, db.AppRole)
	clock := dbtest.NewClock(time.Date(2026, 3, 10, 4, 0, 0, 0, time.UTC))
	x := &fixture{t: t, clock: clock, limits: l, reg: prometheus.NewRegistry(), url: url,
		storeCx: db.WithParty(context.Background(), "store", "S-JFB-1")}
	keys, led, par := dbtest.Keyring(t), ledger.NewStore(), params.NewCache(app, 0)
	x.forms = forms.New(forms.Deps{Pool: app, Ledger: led, Keys: keys, Params: par, Now: clock.Now, Log: slog.New(slog.DiscardHandler)})
	x.immediate = immediate.New(immediate.Deps{Pool: app, Ledger: led, Keys: keys, Params: par, Forms: x.forms, Now: clock.Now, Log: slog.New(slog.DiscardHandler)})
	x.payouts = payouts.New(payouts.Deps{Pool: app, Ledger: led, Keys: keys, Params: par, Forms: x.forms, Now: clock.Now, Log: slog.New(slog.DiscardHandler)})
	// The look-up runs as serve runs it: on the jobs' pool and role.
	x.svc = traveller.New(dbtest.OpenPool(t, url, db.JobsRole), l, x.reg, slog.New(slog.DiscardHandler))
	now := time.Now()
	x.limNow.Store(&now)
	x.svc.WithClock(func() time.Time { return *x.limNow.Load() })

	dir := t.TempDir()
	ca, err := pki.EnsureCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.IssueServer(dir, "server", []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	x.caPool = ca.Pool()
	tlsConf, err := traveller.TLSConfig(filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	hs, gs := traveller.NewServer(x.svc, traveller.ServerOptions{TLS: tlsConf, Log: slog.New(slog.DiscardHandler)})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	x.addr = lis.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- traveller.Serve(ctx, hs, lis) }()
	t.Cleanup(func() {
		cancel()
		gs.Stop()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return x
}

// advance moves the limiter's clock.
func (x *fixture) advance(d time.Duration) {
	n := x.limNow.Load().Add(d)
	x.limNow.Store(&n)
}

func (x *fixture) issue(store string) forms.Form {
	x.t.Helper()
	d := func(s string) time.Time { v, _ := time.Parse(time.DateOnly, s); return v }
	inv := "INV-" + uuid.NewString()[:8]
	app := refund.Application{
		Traveller: refund.Traveller{Document: refund.Document{Type: refund.Passport, Number: document, IssuingCountry: "FR"},
			Expiry: d("2030-01-01"), Nationality: "FR", LastEntry: d("2026-02-28")},
		Invoices: []refund.Invoice{{Number: inv, Date: d("2026-03-10")}},
		Lines: []refund.Line{{Description: "Silk scarf", Category: refund.General, VATRate: decimal.RequireFromString("0.13"),
			Quantity: 1, Amount: decimal.RequireFromString("1000.00"), InvoiceNumber: inv}},
	}
	f, err := x.forms.Issue(db.WithParty(context.Background(), "store", store), forms.IssueRequest{
		Idem:      idempotency.Key{Caller: "taxrefund://store/" + store, RequestID: uuid.New(), Hash: []byte(inv)},
		StoreCode: store, Application: app,
	})
	if err != nil {
		x.t.Fatalf("issue: %v", err)
	}
	return f
}

// client dials the listener from the loopback address from (127.0.0.x), without a
// client certificate.
func (x *fixture) client(from string) travellerv1.TravellerServiceClient {
	x.t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	conn, err := grpc.NewClient(x.addr,
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: x.caPool, ServerName: "127.0.0.1"})),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }))
	if err != nil {
		x.t.Fatal(err)
	}
	x.t.Cleanup(func() { conn.Close() })
	return travellerv1.NewTravellerServiceClient(conn)
}

func ask(c travellerv1.TravellerServiceClient, number, last4, nat string) (*travellerv1.GetRefundStatusResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return c.GetRefundStatus(ctx, &travellerv1.GetRefundStatusRequest{FormNumber: number, DocumentLast4: last4, Nationality: nat})
}

func TestGuessingFindsNothingAndIsThrottled(t *testing.T) {
	l := traveller.DefaultLimits()
	l.MinLatency = 20 * time.Millisecond
	x := newFixture(t, l)
	f := x.issue("S-JFB-1")

	// 10,000 well-formed guesses from one address: none finds a form, all but the
	// address's burst are refused before the database.
	guesser := x.client("127.0.0.1")
	const guesses = 10_000
	var found, noMatch, throttled, other atomic.Int64
	var wg sync.WaitGroup
	next := make(chan string)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range next {
				_, err := ask(guesser, n, "5432", "FR")
				switch status.Code(err) {
				case codes.OK:
					found.Add(1)
				case codes.NotFound:
					noMatch.Add(1)
				case codes.ResourceExhausted:
					throttled.Add(1)
				default:
					other.Add(1)
					t.Errorf("guess %s: %v", n, err)
				}
			}
		}()
	}
	for range guesses {
		n := refund.NewFormNumber()
		if n == f.Number {
			continue // 1 in 2^80
		}
		next <- n
	}
	close(next)
	wg.Wait()
	t.Logf("10,000 guesses: %d found, %d no match, %d throttled", found.Load(), noMatch.Load(), throttled.Load())
	if found.Load() != 0 {
		t.Errorf("a guess found a form")
	}
	// The limiter's clock stands still: exactly the burst reaches the database.
	if noMatch.Load() != int64(l.AddressBurst) || throttled.Load() != guesses-int64(l.AddressBurst) {
		t.Errorf("%d answered, %d throttled; want %d and %d", noMatch.Load(), throttled.Load(), l.AddressBurst, guesses-l.AddressBurst)
	}
	refused := x.refusals("address_limit")
	if refused != float64(throttled.Load()) {
		t.Errorf("refusal metric address_limit %v; want %d", refused, throttled.Load())
	}

	// The right triple, typed as people type it, from another address, finds the form.
	got, err := ask(x.client("127.0.0.2"), strings.ToLower(f.Number[:6])+" "+f.Number[6:], "5432", "fr")
	if err != nil {
		t.Fatalf("the right triple: %v", err)
	}
	if got.GetStatus() != travellerv1.RefundStatus_REFUND_STATUS_ISSUED || got.GetAmount() != "110.00" ||
		got.GetClaimBy() != "2026-06-08" || strings.Join(got.GetPorts(), ",") != "CKG,CTU,TFU" {
		t.Errorf("answer %v; want ISSUED, 110.00, claim by 2026-06-08 at CKG,CTU,TFU", got)
	}
	if !strings.Contains(got.GetStatusText(), "2026-06-08") {
		t.Errorf("status text %q does not say by when", got.GetStatusText())
	}
	// Nothing personal beyond what was typed.
	if strings.Contains(fmt.Sprint(got), "9876") || strings.Contains(fmt.Sprint(got), "S-JFB-1") {
		t.Errorf("the answer carries more than the status: %v", got)
	}
}

// refusals reads the refusal counter of reason from the registry.
func (x *fixture) refusals(reason string) float64 {
	mfs, err := x.reg.Gather()
	if err != nil {
		x.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "taxrefund_traveller_refusals_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	x.t.Fatalf("no refusal counter %s", reason)
	return 0
}

func TestNoSuchFormAndWrongDocumentAnswerTheSame(t *testing.T) {
	x := newFixture(t, traveller.DefaultLimits())
	f := x.issue("S-JFB-1")
	c := x.client("127.0.0.1")
	var answers [][]byte
	for _, q := range [][3]string{
		{refund.NewFormNumber(), "5432", "FR"}, // no such form
		{f.Number, "5433", "FR"},               // wrong document
		{f.Number, "5432", "DE"},               // wrong nationality
	} {
		start := time.Now()
		_, err := ask(c, q[0], q[1], q[2])
		took := time.Since(start)
		st, _ := status.FromError(err)
		if st.Code() != codes.NotFound {
			t.Fatalf("%v: %v; want NOT_FOUND", q, err)
		}
		if took < traveller.DefaultLimits().MinLatency {
			t.Errorf("%v answered in %v, before the least time %v", q, took, traveller.DefaultLimits().MinLatency)
		}
		b, err := proto.Marshal(st.Proto())
		if err != nil {
			t.Fatal(err)
		}
		answers = append(answers, b)
	}
	for i := 1; i < len(answers); i++ {
		if string(answers[i]) != string(answers[0]) {
			t.Errorf("answer %d differs from the answer to a form that does not exist", i)
		}
	}
	if v := x.refusals("no_match"); v != 3 {
		t.Errorf("no_match refusals %v; want 3", v)
	}
}

func TestWrongLastFourLocksTheFormOut(t *testing.T) {
	l := traveller.DefaultLimits()
	l.MinLatency = 0
	x := newFixture(t, l)
	f := x.issue("S-JFB-1")
	other := x.issue("S-JFB-2")
	// Each attempt from its own address: the lock-out is per form number, whoever asks.
	for i := range l.LockAfter {
		_, err := ask(x.client(fmt.Sprintf("127.0.1.%d", i+1)), f.Number, fmt.Sprintf("%04d", i), "FR")
		if status.Code(err) != codes.NotFound {
			t.Fatalf("wrong attempt %d: %v; want NOT_FOUND", i+1, err)
		}
		x.advance(15 * time.Second) // within the per-form rate
	}
	_, err := ask(x.client("127.0.2.1"), f.Number, "5432", "FR")
	if st, _ := status.FromError(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "locked") {
		t.Fatalf("the right triple after %d wrong ones: %v; want RESOURCE_EXHAUSTED, locked", l.LockAfter, err)
	}
	if _, err := ask(x.client("127.0.2.2"), other.Number, "5432", "FR"); err != nil {
		t.Errorf("another form is locked too: %v", err)
	}
	x.advance(l.LockFor)
	if _, err := ask(x.client("127.0.2.3"), f.Number, "5432", "FR"); err != nil {
		t.Errorf("after the lock-out: %v", err)
	}
	if v := x.refusals("locked"); v != 1 {
		t.Errorf("locked refusals %v; want 1", v)
	}
}

// TestLockOutIsSharedByServers: two servers on one database give a guesser LockAfter
// tries in all, not LockAfter each, and both refuse the locked number.
func TestLockOutIsSharedByServers(t *testing.T) {
	l := traveller.DefaultLimits()
	l.MinLatency = 0
	x := newFixture(t, l)
	f := x.issue("S-JFB-1")
	second := traveller.New(dbtest.OpenPool(t, x.url, db.JobsRole), l, nil, slog.New(slog.DiscardHandler))
	second.WithClock(func() time.Time { return *x.limNow.Load() })
	for i := range l.LockAfter {
		var err error
		if i%2 == 0 {
			_, err = ask(x.client(fmt.Sprintf("127.0.3.%d", i+1)), f.Number, fmt.Sprintf("%04d", i), "FR")
		} else {
			_, err = second.Lookup(context.Background(), netip.MustParseAddr(fmt.Sprintf("127.0.4.%d", i+1)),
				traveller.Query{Number: f.Number, Last4: fmt.Sprintf("%04d", i), Nationality: "FR"})
		}
		if err == nil {
			t.Fatalf("wrong attempt %d answered", i+1)
		}
		x.advance(15 * time.Second)
	}
	_, err := second.Lookup(context.Background(), netip.MustParseAddr("127.0.5.1"),
		traveller.Query{Number: f.Number, Last4: "5432", Nationality: "FR"})
	if err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("the second server after %d wrong answers across both: %v; want locked", l.LockAfter, err)
	}
	if _, err := ask(x.client("127.0.5.2"), f.Number, "5432", "FR"); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("the first server after %d wrong answers across both: %v; want RESOURCE_EXHAUSTED", l.LockAfter, err)
	}
	// A third server started later (a restart) still knows.
	third := traveller.New(dbtest.OpenPool(t, x.url, db.JobsRole), l, nil, slog.New(slog.DiscardHandler))
	third.WithClock(func() time.Time { return *x.limNow.Load() })
	if _, err := third.Lookup(context.Background(), netip.MustParseAddr("127.0.5.3"),
		traveller.Query{Number: f.Number, Last4: "5432", Nationality: "FR"}); err == nil {
		t.Fatal("a restarted server forgot the lock-out")
	}
	x.advance(l.LockFor)
	if _, err := third.Lookup(context.Background(), netip.MustParseAddr("127.0.5.4"),
		traveller.Query{Number: f.Number, Last4: "5432", Nationality: "FR"}); err != nil {
		t.Errorf("after the lock-out: %v", err)
	}
}

func TestStatusesInWords(t *testing.T) {
	l := traveller.DefaultLimits()
	l.MinLatency = 0
	x := newFixture(t, l)
	c := x.client("127.0.0.1")

	passport := refund.Document{Type: refund.Passport, Number: document, IssuingCountry: "FR"}
	verify := func(number string) {
		t.Helper()
		if _, err := x.forms.Verify(db.WithParty(context.Background(), "customs", "CKG"), forms.VerifyRequest{
			Idem: idempotency.Key{Caller: "taxrefund://customs/CKG/officer-01", RequestID: uuid.New(), Hash: []byte(number)},
			Port: "CKG", Officer: "officer-01", Number: number, Presented: passport, Confirmed: map[int]int32{1: 1},
		}); err != nil {
			t.Fatalf("verify: %v", err)
		}
	}
	verified := x.issue("S-JFB-1")
	verify(verified.Number)
	got, err := ask(c, verified.Number, "5432", "FR")
	if err != nil || got.GetStatus() != travellerv1.RefundStatus_REFUND_STATUS_EXPORT_CONFIRMED || got.GetAmount() != "110.00" {
		t.Errorf("verified form: %v, %v; want EXPORT_CONFIRMED 110.00", got, err)
	}

	// Paid in cash at CKG: G 110.00, the agency's 2% of 1000.00 is 20.00, N 90.00.
	paid := x.issue("S-JFB-1")
	verify(paid.Number)
	if _, err := x.payouts.Settle(db.WithParty(context.Background(), "desk", "CKG-01"), payouts.SettleRequest{
		Idem:     idempotency.Key{Caller: "taxrefund://desk/CKG-01/cashier-01", RequestID: uuid.New(), Hash: []byte("pay")},
		DeskCode: "CKG-01", Cashier: "cashier-01", Numbers: []string{paid.Number}, Presented: passport,
		Method: payouts.Cash, Receipt: "R-1",
	}); err != nil {
		t.Fatalf("settle: %v", err)
	}
	got, err = ask(c, paid.Number, "5432", "FR")
	if err != nil || got.GetStatus() != travellerv1.RefundStatus_REFUND_STATUS_PAID || got.GetAmount() != "90.00" ||
		got.GetPaidMethod() != "CASH" || got.GetPaidDate() != "2026-03-10" || !strings.Contains(got.GetStatusText(), "by cash on 2026-03-10") {
		t.Errorf("paid form: %v, %v; want PAID 90.00 by CASH on 2026-03-10", got, err)
	}

	// An immediate refund paid at the block's refund point: N 90.00 now, the card
	// pre-authorization captured 3 working days after the committed date (issue 2026-03-10
	// + 17 days = Friday 2026-03-27) unless the export is confirmed at TFU or CKG first.
	prepaid := x.issue("S-JFB-1")
	if _, err := x.immediate.Pay(db.WithParty(context.Background(), "desk", "JFB-RP"), immediate.PayRequest{
		Idem:     idempotency.Key{Caller: "taxrefund://desk/JFB-RP/cashier-01", RequestID: uuid.New(), Hash: []byte("prepay")},
		DeskCode: "JFB-RP", Cashier: "cashier-01", Number: prepaid.Number, Presented: passport, Agreement: "AGR-1",
		PreAuth: immediate.PreAuth{Token: "tok_abcdefgh", Last4: "4242", Expiry: time.Date(2027, 12, 1, 0, 0, 0, 0, time.UTC),
			Authorized: decimal.RequireFromString("120.00")},
		DeparturePort: "TFU",
	}); err != nil {
		t.Fatalf("prepay: %v", err)
	}
	got, err = ask(c, prepaid.Number, "5432", "FR")
	if err != nil || got.GetStatus() != travellerv1.RefundStatus_REFUND_STATUS_IMMEDIATE_PAID || got.GetAmount() != "90.00" ||
		got.GetCaptureDate() != "2026-04-01" || !strings.Contains(got.GetStatusText(), "captured on 2026-04-01") {
		t.Errorf("prepaid form: %v, %v; want IMMEDIATE_PAID 90.00, captured on 2026-04-01", got, err)
	}

	voided := x.issue("S-JFB-2")
	if _, err := x.forms.Void(db.WithParty(context.Background(), "store", "S-JFB-2"), forms.VoidRequest{
		Idem:      idempotency.Key{Caller: "taxrefund://store/S-JFB-2", RequestID: uuid.New(), Hash: []byte("void")},
		StoreCode: "S-JFB-2", Number: voided.Number, Reason: "goods returned",
	}); err != nil {
		t.Fatalf("void: %v", err)
	}
	got, err = ask(c, voided.Number, "5432", "FR")
	if err != nil || got.GetStatus() != travellerv1.RefundStatus_REFUND_STATUS_VOIDED || !strings.Contains(got.GetStatusText(), "Voided") {
		t.Errorf("voided form: %v, %v; want VOIDED", got, err)
	}
}

// TestCaptureDateFollowsCalendar: what the traveller is told is the date the capture job
// uses, after the authority changes the calendar. Committed Friday 2026-03-27 (issue date
// + 17 days): Mon 30, Tue 31, Wed 1 April; Monday 30 a holiday: Thursday 2 April; then
// Saturday 28 an adjusted working day (调休): Wednesday 1 April again. The services run
// as the application role, as serve runs them.
func TestCaptureDateFollowsCalendar(t *testing.T) {
	l := traveller.DefaultLimits()
	l.MinLatency = 0
	x := newFixture(t, l)
	c := x.client("127.0.0.1")
	passport := refund.Document{Type: refund.Passport, Number: document, IssuingCountry: "FR"}
	prepaid := x.issue("S-JFB-1")
	if _, err := x.immediate.Pay(db.WithParty(context.Background(), "desk", "JFB-RP"), immediate.PayRequest{
		Idem:     idempotency.Key{Caller: "taxrefund://desk/JFB-RP/cashier-01", RequestID: uuid.New(), Hash: []byte("prepay")},
		DeskCode: "JFB-RP", Cashier: "cashier-01", Number: prepaid.Number, Presented: passport, Agreement: "AGR-1",
		PreAuth: immediate.PreAuth{Token: "tok_abcdefgh", Last4: "4242", Expiry: time.Date(2027, 12, 1, 0, 0, 0, 0, time.UTC),
			Authorized: decimal.RequireFromString("120.00")},
		DeparturePort: "TFU",
	}); err != nil {
		t.Fatalf("prepay: %v", err)
	}
	authority := db.WithParty(context.Background(), "authority", "sat-test")
	for _, step := range []struct {
		day     string
		working bool
		want    string
	}{{"", false, "2026-04-01"}, {"2026-03-30", false, "2026-04-02"}, {"2026-03-28", true, "2026-04-01"}} {
		if step.day != "" {
			d, _ := time.Parse(time.DateOnly, step.day)
			key := idempotency.Key{Caller: "taxrefund://authority/sat-test", RequestID: uuid.New(), Hash: []byte(step.day)}
			if err := x.immediate.SetCalendarDay(authority, key, d, step.working, "test"); err != nil {
				t.Fatalf("set %s: %v", step.day, err)
			}
		}
		got, err := ask(c, prepaid.Number, "5432", "FR")
		if err != nil || got.GetStatus() != travellerv1.RefundStatus_REFUND_STATUS_IMMEDIATE_PAID ||
			got.GetCaptureDate() != step.want || !strings.Contains(got.GetStatusText(), "captured on "+step.want) {
			t.Errorf("after %q: %v, %v; want IMMEDIATE_PAID, captured on %s", step.day, got, err, step.want)
		}
	}
}

func TestStatusPage(t *testing.T) {
	l := traveller.DefaultLimits()
	l.MinLatency = 0
	x := newFixture(t, l)
	f := x.issue("S-JFB-1")
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: x.caPool}}}
	get := func(resp *http.Response, err error) (int, string) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get(hc.Get("https://" + x.addr + "/"))
	if code != 200 || !strings.Contains(body, `name="form_number"`) || !strings.Contains(body, "viewport") {
		t.Fatalf("GET /: %d\n%s", code, body)
	}
	for _, ext := range []string{"http://", "https://", "<script", "src="} {
		if strings.Contains(body, ext) {
			t.Errorf("the page loads or runs something (%q)", ext)
		}
	}
	code, body = get(hc.PostForm("https://"+x.addr+"/", url.Values{"form_number": {f.Number}, "document_last4": {"5432"}, "nationality": {"FR"}}))
	if code != 200 || !strings.Contains(body, "ISSUED") || !strings.Contains(body, "CNY 110.00") || !strings.Contains(body, "2026-06-08") {
		t.Errorf("POST the right triple: %d\n%s", code, body)
	}
	keepPage("found", body)
	code, body = get(hc.PostForm("https://"+x.addr+"/", url.Values{"form_number": {f.Number}, "document_last4": {"0000"}, "nationality": {"FR"}}))
	if code != 404 || !strings.Contains(body, "No refund matches") || strings.Contains(body, "CNY 110.00") {
		t.Errorf("POST a wrong document: %d\n%s", code, body)
	}
	keepPage("nomatch", body)
}

// keepPage writes a page to $TRAVELLER_PAGES/<name>.html, to look at it in a browser.
func keepPage(name, body string) {
	if dir := os.Getenv("TRAVELLER_PAGES"); dir != "" {
		_ = os.WriteFile(filepath.Join(dir, name+".html"), []byte(body), 0o644)
	}
}
