package server_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	authorityv1 "taxrefund/api/taxrefund/authority/v1"
	deskv1 "taxrefund/api/taxrefund/desk/v1"
	formv1 "taxrefund/api/taxrefund/form/v1"
	storev1 "taxrefund/api/taxrefund/store/v1"
	"taxrefund/internal/agency"
	"taxrefund/internal/authority"
	"taxrefund/internal/db"
	"taxrefund/internal/dbtest"
	"taxrefund/internal/desk"
	"taxrefund/internal/forms"
	"taxrefund/internal/immediate"
	"taxrefund/internal/ledger"
	"taxrefund/internal/params"
	"taxrefund/internal/payouts"
	"taxrefund/internal/pki"
	"taxrefund/internal/registry"
	"taxrefund/internal/server"
	"taxrefund/internal/settlement"
	"taxrefund/internal/store"
)

// Client certificate names (files <name>.pem / <name>-key.pem in the harness's
// certificate directory) and the identities they carry.
const (
	storeJFB1  = "store-S-JFB-1"
	storeJFB2  = "store-S-JFB-2"
	storeSusp  = "store-S-SUSP"
	storeExit  = "store-S-EXIT"
	storeNone  = "store-NO-SUCH"
	customsCKG = "customs-CKG"
	customsTFU = "customs-TFU"
	cashier1   = "desk-CKG-01"
	cashier2   = "desk-CKG-02"
	sat        = "authority"
	agencyCQ   = "agency-AG-CQ"
)

var identities = map[string]string{
	storeJFB1:  "taxrefund://store/S-JFB-1",
	storeJFB2:  "taxrefund://store/S-JFB-2",
	storeSusp:  "taxrefund://store/S-SUSP",
	storeExit:  "taxrefund://store/S-EXIT",
	storeNone:  "taxrefund://store/NO-SUCH",
	customsCKG: "taxrefund://customs/CKG/officer-1",
	customsTFU: "taxrefund://customs/TFU/officer-2",
	cashier1:   "taxrefund://desk/CKG-01/cashier-1",
	cashier2:   "taxrefund://desk/CKG-02/cashier-2",
	sat:        "taxrefund://authority/sat",
	agencyCQ:   "taxrefund://agency/AG-CQ/backoffice-1",
}

// t0 is the harness clock's start: 2025-06-10 10:00 in Asia/Shanghai, a whole second
// (PostgreSQL keeps microseconds).
var t0 = time.Date(2025, 6, 10, 2, 0, 0, 0, time.UTC)

// harness is the service wired as cmd/taxrefund's newApp and serve wire it (with the
// test clock for every service), on a database of its own, behind mutual TLS on a real
// loopback listener.
type harness struct {
	pool    *pgxpool.Pool
	clock   *dbtest.Clock
	certDir string
	addr    string
	logs    *syncBuffer
	tr      *transcript

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	url := dbtest.NewURL(t)
	pool := dbtest.OpenPool(t, url, "")
	dbtest.Registry(t, pool)
	// The services run as the application role, as `taxrefund serve` does; the harness
	// keeps the owner's pool to count and corrupt rows.
	app := dbtest.OpenPool(t, url, db.AppRole)
	h := &harness{
		pool:    pool,
		clock:   dbtest.NewClock(t0),
		certDir: t.TempDir(),
		logs:    &syncBuffer{},
		tr:      &transcript{},
		conns:   map[string]*grpc.ClientConn{},
	}
	ca, err := pki.EnsureCA(h.certDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.IssueServer(h.certDir, "server", []string{"localhost", "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	for name, uri := range identities {
		if err := ca.IssueClient(h.certDir, name, uri); err != nil {
			t.Fatal(err)
		}
		dbtest.RegisterCertificates(t, pool, h.certDir, name)
	}

	log := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	keys := dbtest.Keyring(t)
	led := ledger.NewStore()
	par := params.NewCache(app, 0)
	f := forms.New(forms.Deps{Pool: app, Ledger: led, Keys: keys, Params: par, Now: h.clock.Now, Log: log})
	p := payouts.New(payouts.Deps{Pool: app, Ledger: led, Keys: keys, Params: par, Forms: f, Now: h.clock.Now, Log: log})
	tlsConf, err := pki.ServerTLSConfig(filepath.Join(h.certDir, pki.CACertFile),
		filepath.Join(h.certDir, "server.pem"), filepath.Join(h.certDir, "server-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	imm := immediate.New(immediate.Deps{Pool: app, Ledger: led, Keys: keys, Params: par, Forms: f, Now: h.clock.Now, Log: log})
	reg := registry.New(app, h.clock.Now)
	settle := settlement.New(app, led, h.clock.Now)
	srv, _, err := server.New(server.Options{TLS: tlsConf, Log: log, Active: server.NewRegistry(app, 0).Active}, server.Services{
		Store:     store.New(f),
		Desk:      desk.New(f, p, imm),
		Authority: authority.New(authority.Deps{Expirer: f, Pool: app, Registry: reg, Settlement: settle, Immediate: imm, Now: h.clock.Now}),
		Agency:    agency.New(settle),
	})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = lis.Addr().String()
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() {
		h.mu.Lock()
		for _, c := range h.conns {
			_ = c.Close()
		}
		h.mu.Unlock()
		srv.Stop()
	})
	// Registered after the server's cleanup, so it runs first: every test of this file
	// proves that nothing the service sent carried a clear document number.
	t.Cleanup(func() { h.tr.checkNoSecrets(t, h.logs.String()) })
	return h
}

// conn returns the (cached) client connection presenting certificate name.
func (h *harness) conn(t *testing.T, name string) *grpc.ClientConn {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if c, ok := h.conns[name]; ok {
		return c
	}
	cfg, err := pki.ClientTLSConfig(filepath.Join(h.certDir, pki.CACertFile),
		filepath.Join(h.certDir, name+".pem"), filepath.Join(h.certDir, name+"-key.pem"), "localhost")
	if err != nil {
		t.Fatal(err)
	}
	c, err := grpc.NewClient(h.addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)),
		grpc.WithUnaryInterceptor(h.tr.record))
	if err != nil {
		t.Fatal(err)
	}
	h.conns[name] = c
	return c
}

func (h *harness) store(t *testing.T, name string) storev1.StoreServiceClient {
	return storev1.NewStoreServiceClient(h.conn(t, name))
}

func (h *harness) desk(t *testing.T, name string) deskv1.DeskServiceClient {
	return deskv1.NewDeskServiceClient(h.conn(t, name))
}

func (h *harness) authority(t *testing.T, name string) authorityv1.AuthorityServiceClient {
	return authorityv1.NewAuthorityServiceClient(h.conn(t, name))
}

// countedTables are every table a request may write to.
var countedTables = []string{
	"forms", "form_lines", "form_invoices", "journal_txns", "journal_entries", "pending_transfers",
	"pending_resolutions", "idempotency_keys", "audit_events", "payouts", "payout_forms",
	"declarations", "declaration_payouts", "closed_months", "stores", "parameters",
}

// counts returns the row count of every counted table.
func (h *harness) counts(t *testing.T) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, table := range countedTables {
		var n int64
		if err := h.pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Fatalf("count %s: %v", table, err)
		}
		out[table] = n
	}
	return out
}

// assertNothingWritten fails unless every counted table still has the row counts of before.
func (h *harness) assertNothingWritten(t *testing.T, before map[string]int64) {
	t.Helper()
	after := h.counts(t)
	for _, table := range countedTables {
		if after[table] != before[table] {
			t.Errorf("%s: %d rows, want %d (a refused request wrote)", table, after[table], before[table])
		}
	}
}

// formState reads a form's state from the database.
func (h *harness) formState(t *testing.T, number string) string {
	t.Helper()
	var state string
	if err := h.pool.QueryRow(context.Background(), `SELECT state FROM forms WHERE number = $1`, number).Scan(&state); err != nil {
		t.Fatalf("state of %s: %v", number, err)
	}
	return state
}

// want describes an expected gRPC error: its code, the ErrorInfo reason ("" when the
// status must carry no ErrorInfo at all), and the fields named by the BadRequest field
// violations (INVALID_ARGUMENT) or the PreconditionFailure subjects (others).
type want struct {
	code   codes.Code
	reason string
	fields []string
}

// checkStatus asserts err against w and returns the status.
func checkStatus(t *testing.T, err error, w want) *status.Status {
	t.Helper()
	if err == nil {
		t.Fatalf("call succeeded, want %v %s %v", w.code, w.reason, w.fields)
	}
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("not a gRPC status: %v", err)
	}
	if st.Code() != w.code {
		t.Fatalf("code %v (%q), want %v", st.Code(), st.Message(), w.code)
	}
	var info *errdetails.ErrorInfo
	var fields []string
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			info = d
		case *errdetails.BadRequest:
			if w.code != codes.InvalidArgument {
				t.Errorf("BadRequest detail on a %v status", st.Code())
			}
			for _, v := range d.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		case *errdetails.PreconditionFailure:
			if w.code == codes.InvalidArgument {
				t.Errorf("PreconditionFailure detail on an INVALID_ARGUMENT status")
			}
			for _, v := range d.GetViolations() {
				fields = append(fields, v.GetSubject())
				if v.GetType() != w.reason {
					t.Errorf("PreconditionFailure type %q, want %q", v.GetType(), w.reason)
				}
			}
		case error:
			t.Errorf("undecodable detail: %v", d)
		}
	}
	switch {
	case w.reason == "" && info != nil:
		t.Errorf("ErrorInfo %v, want none", info)
	case w.reason != "" && info == nil:
		t.Errorf("no ErrorInfo, want reason %s (message %q)", w.reason, st.Message())
	case w.reason != "" && (info.GetReason() != w.reason || info.GetDomain() != "taxrefund"):
		t.Errorf("ErrorInfo %s/%s, want taxrefund/%s (message %q)", info.GetDomain(), info.GetReason(), w.reason, st.Message())
	}
	slices.Sort(fields)
	wf := slices.Clone(w.fields)
	slices.Sort(wf)
	if !slices.Equal(fields, wf) {
		t.Errorf("fields %q, want %q (message %q)", fields, wf, st.Message())
	}
	return st
}

// equalProto fails when got and want differ, showing both.
func equalProto(t *testing.T, what string, got, want proto.Message) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Errorf("%s:\n got: %s\nwant: %s", what, prototext.Format(got), prototext.Format(want))
	}
}

// transcript records every response and error status the clients received, and the
// clear document numbers the tests sent, to prove none comes back.
type transcript struct {
	mu      sync.Mutex
	texts   []string
	secrets []string
}

// secret registers a clear document number (as sent and normalized) and returns it.
func (tr *transcript) secret(number string) string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	norm := strings.ToUpper(strings.NewReplacer(" ", "", "-", "").Replace(number))
	tr.secrets = append(tr.secrets, number, norm)
	// Everything but the first character is still more than the 4 the mask keeps.
	if len(norm) > 5 {
		tr.secrets = append(tr.secrets, norm[1:])
	}
	return number
}

func (tr *transcript) record(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	var text string
	if err != nil {
		st, _ := status.FromError(err)
		text = method + " error: " + st.Message() + " " + prototext.Format(st.Proto())
	} else if m, ok := reply.(proto.Message); ok {
		text = method + " reply: " + prototext.Format(m)
	}
	tr.mu.Lock()
	tr.texts = append(tr.texts, text)
	tr.mu.Unlock()
	return err
}

func (tr *transcript) checkNoSecrets(t *testing.T, logs string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, s := range tr.secrets {
		for _, text := range tr.texts {
			if strings.Contains(text, s) {
				t.Errorf("a reply carries the clear document number %q: %.300s", s, text)
			}
		}
		if strings.Contains(logs, s) {
			t.Errorf("the server log carries the clear document number %q", s)
		}
	}
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Requests.

// passport returns a French passport document.
func passport(number string) *formv1.Document {
	return &formv1.Document{Type: formv1.DocumentType_DOCUMENT_TYPE_PASSPORT, Number: number, IssuingCountry: "FR"}
}

// domainExample is DOMAIN.md §3's example as a POS sends it on 2025-06-10: 1,000.00 of
// 13% goods (3 units, invoice <inv>-A) and 500.00 of 9% goods (1 unit, invoice <inv>-B).
func domainExample(doc, inv string) *storev1.IssueFormRequest {
	return &storev1.IssueFormRequest{
		RequestId: uuid.NewString(),
		Traveller: &storev1.Traveller{
			Document:           passport(doc),
			DocumentExpiryDate: "2030-01-31",
			Nationality:        "FR",
			LastEntryDate:      "2025-06-01",
		},
		Invoices: []*formv1.Invoice{{Number: inv + "-A", Date: "2025-06-10"}, {Number: inv + "-B", Date: "2025-06-09"}},
		Lines: []*storev1.LineInput{
			{Description: "Silk scarf", Category: formv1.GoodsCategory_GOODS_CATEGORY_GENERAL, VatRate: "0.13",
				Quantity: 3, Amount: "1000.00", InvoiceNumber: inv + "-A"},
			{Description: "Tuocha tea", Category: formv1.GoodsCategory_GOODS_CATEGORY_GENERAL, VatRate: "0.09",
				Quantity: 1, Amount: "500.00", InvoiceNumber: inv + "-B"},
		},
	}
}

// issue issues req as the store of certificate name and returns the form.
func (h *harness) issue(t *testing.T, name string, req *storev1.IssueFormRequest) *formv1.Form {
	t.Helper()
	h.tr.secret(req.GetTraveller().GetDocument().GetNumber())
	resp, err := h.store(t, name).IssueForm(context.Background(), req)
	if err != nil {
		t.Fatalf("IssueForm: %v", err)
	}
	return resp.GetForm()
}

// verifyAll confirms every unit of every line of form at the port of certificate name.
func (h *harness) verifyAll(t *testing.T, name string, form *formv1.Form, doc *formv1.Document) *formv1.Form {
	t.Helper()
	req := &deskv1.VerifyExportRequest{RequestId: uuid.NewString(), FormNumber: form.GetNumber(), PresentedDocument: doc}
	for _, l := range form.GetLines() {
		req.Lines = append(req.Lines, &deskv1.LineConfirmation{LineNo: l.GetLineNo(), ConfirmedQuantity: l.GetQuantity()})
	}
	resp, err := h.desk(t, name).VerifyExport(context.Background(), req)
	if err != nil {
		t.Fatalf("VerifyExport: %v", err)
	}
	return resp.GetForm()
}

// settleReq is a cash payout of forms to doc.
func settleReq(doc *formv1.Document, receipt string, numbers ...string) *deskv1.SettleRefundRequest {
	return &deskv1.SettleRefundRequest{
		RequestId: uuid.NewString(), FormNumbers: numbers, PresentedDocument: doc,
		Method: deskv1.PaymentMethod_PAYMENT_METHOD_CASH, ReceiptReference: receipt,
	}
}

func ctxTimeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// len returns how many replies the transcript holds.
func (tr *transcript) len() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.texts)
}
