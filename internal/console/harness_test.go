package console_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	agencyv1 "taxrefund/api/taxrefund/agency/v1"
	authorityv1 "taxrefund/api/taxrefund/authority/v1"
	consolev1 "taxrefund/api/taxrefund/console/v1"
	deskv1 "taxrefund/api/taxrefund/desk/v1"
	formv1 "taxrefund/api/taxrefund/form/v1"
	storev1 "taxrefund/api/taxrefund/store/v1"
	"taxrefund/internal/agency"
	"taxrefund/internal/authority"
	"taxrefund/internal/console"
	"taxrefund/internal/db"
	"taxrefund/internal/dbtest"
	"taxrefund/internal/desk"
	"taxrefund/internal/forms"
	"taxrefund/internal/immediate"
	"taxrefund/internal/ledger"
	"taxrefund/internal/params"
	"taxrefund/internal/payouts"
	"taxrefund/internal/pdf"
	"taxrefund/internal/pki"
	"taxrefund/internal/registry"
	"taxrefund/internal/risk"
	"taxrefund/internal/server"
	"taxrefund/internal/settlement"
	"taxrefund/internal/store"
)

// Certificates of the harness and the parties they name.
const (
	storeJFB   = "store-S-JFB-1"
	customsCKG = "customs-CKG"
	customsTFU = "customs-TFU"
	cashierCKG = "desk-CKG-01"
	cashierTFU = "desk-TFU-01"
	refundJFB  = "desk-JFB-RP"
	official   = "authority"
	agencyCQ   = "agency-AG-CQ"
)

var identities = map[string]string{
	storeJFB:   "taxrefund://store/S-JFB-1",
	customsCKG: "taxrefund://customs/CKG/officer-1",
	customsTFU: "taxrefund://customs/TFU/officer-2",
	cashierCKG: "taxrefund://desk/CKG-01/cashier-1",
	cashierTFU: "taxrefund://desk/TFU-01/cashier-3",
	refundJFB:  "taxrefund://desk/JFB-RP/cashier-rp",
	official:   "taxrefund://authority/sat",
	agencyCQ:   "taxrefund://agency/AG-CQ/backoffice-1",
}

// t0 is 2025-06-10 10:00 in Asia/Shanghai.
var t0 = time.Date(2025, 6, 10, 2, 0, 0, 0, time.UTC)

// harness is the service wired as `taxrefund serve -console-addr` wires it, on a database
// of its own: gRPC behind mutual TLS and the console behind HTTPS, both on loopback.
type harness struct {
	pool       *pgxpool.Pool
	clock      *dbtest.Clock
	certDir    string
	grpcAddr   string
	consoleURL string
	logs       *syncBuffer

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

// newHarness starts the harness; opts change the console's Deps before it starts.
func newHarness(t *testing.T, opts ...func(*console.Deps)) *harness {
	t.Helper()
	url := dbtest.NewURL(t)
	pool := dbtest.OpenPool(t, url, "")
	dbtest.Registry(t, pool)
	app := dbtest.OpenPool(t, url, db.AppRole)
	h := &harness{pool: pool, clock: dbtest.NewClock(t0), certDir: t.TempDir(), logs: &syncBuffer{}, conns: map[string]*grpc.ClientConn{}}
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
	imm := immediate.New(immediate.Deps{Pool: app, Ledger: led, Keys: keys, Params: par, Forms: f, Now: h.clock.Now, Log: log})
	settle := settlement.New(app, led, h.clock.Now)
	deskH := desk.New(f, p, imm).WithRisk(risk.New(app, par, h.clock.Now))
	authorityH := authority.New(authority.Deps{Expirer: f, Pool: app, Registry: registry.New(app, h.clock.Now), Settlement: settle, Immediate: imm, Now: h.clock.Now})

	tlsConf, err := pki.ServerTLSConfig(filepath.Join(h.certDir, pki.CACertFile),
		filepath.Join(h.certDir, "server.pem"), filepath.Join(h.certDir, "server-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.consoleURL = "https://" + cl.Addr().String()
	local := &server.Local{}
	renderer := pdf.New(pdf.Options{Chromium: chromiumPath})
	t.Cleanup(renderer.Close)
	deps := console.Deps{Local: local, Desk: deskH, Authority: authorityH, Desks: p, Captures: imm, BaseURL: h.consoleURL, Now: h.clock.Now, Log: log, PDF: renderer}
	for _, o := range opts {
		o(&deps)
	}
	con, err := console.New(deps)
	if err != nil {
		t.Fatal(err)
	}
	srv, _, err := server.New(server.Options{TLS: tlsConf, Log: log, Active: server.NewRegistry(app, 0).Active, Local: local}, server.Services{
		Store: store.New(f), Desk: deskH, Authority: authorityH, Agency: agency.New(settle), Console: con,
	})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.grpcAddr = lis.Addr().String()
	go func() { _ = srv.Serve(lis) }()
	ctls := tlsConf.Clone()
	ctls.ClientAuth, ctls.VerifyConnection = tls.NoClientCert, nil
	hs := &http.Server{Handler: con.Handler(), TLSConfig: ctls, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.ServeTLS(cl, "", "") }()
	t.Cleanup(func() {
		_ = hs.Close()
		h.mu.Lock()
		for _, c := range h.conns {
			_ = c.Close()
		}
		h.mu.Unlock()
		srv.Stop()
	})
	return h
}

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
	c, err := grpc.NewClient(h.grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	h.conns[name] = c
	return c
}

func (h *harness) desk(t *testing.T, name string) deskv1.DeskServiceClient {
	return deskv1.NewDeskServiceClient(h.conn(t, name))
}

func (h *harness) authority(t *testing.T) authorityv1.AuthorityServiceClient {
	return authorityv1.NewAuthorityServiceClient(h.conn(t, official))
}

func (h *harness) agency(t *testing.T) agencyv1.AgencyServiceClient {
	return agencyv1.NewAgencyServiceClient(h.conn(t, agencyCQ))
}

// link mints a sign-in link as the party of certificate name, through the gRPC API.
func (h *harness) link(t *testing.T, name string) string {
	t.Helper()
	resp, err := consolev1.NewConsoleServiceClient(h.conn(t, name)).CreateSignInLink(ctx(t), &consolev1.CreateSignInLinkRequest{})
	if err != nil {
		t.Fatalf("CreateSignInLink as %s: %v", name, err)
	}
	return resp.GetUrl()
}

func passport(number string) *formv1.Document {
	return &formv1.Document{Type: formv1.DocumentType_DOCUMENT_TYPE_PASSPORT, Number: number, IssuingCountry: "FR"}
}

// issue issues a form on 2025-06-10 to passport doc (FR): 1,000.00 of 13% goods in two
// units and 500.00 of 9% goods in one: A = 1,500.00, G = 110.00 + 40.00 = 150.00.
func (h *harness) issue(t *testing.T, doc, inv string) *formv1.Form {
	t.Helper()
	req := &storev1.IssueFormRequest{
		RequestId: uuid.NewString(),
		Traveller: &storev1.Traveller{Document: passport(doc), DocumentExpiryDate: "2030-01-31", Nationality: "FR", LastEntryDate: "2025-06-01"},
		Invoices:  []*formv1.Invoice{{Number: inv + "-A", Date: "2025-06-10"}, {Number: inv + "-B", Date: "2025-06-09"}},
		Lines: []*storev1.LineInput{
			{Description: "Silk scarf", Category: formv1.GoodsCategory_GOODS_CATEGORY_GENERAL, VatRate: "0.13", Quantity: 2, Amount: "1000.00", InvoiceNumber: inv + "-A"},
			{Description: "Tuocha tea", Category: formv1.GoodsCategory_GOODS_CATEGORY_GENERAL, VatRate: "0.09", Quantity: 1, Amount: "500.00", InvoiceNumber: inv + "-B"},
		},
	}
	resp, err := storev1.NewStoreServiceClient(h.conn(t, storeJFB)).IssueForm(ctx(t), req)
	if err != nil {
		t.Fatalf("IssueForm: %v", err)
	}
	return resp.GetForm()
}

// browserClient is a plain HTTPS client with a cookie jar, trusting the harness's CA.
func (h *harness) browserClient(t *testing.T) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(h.certDir, pki.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := newCertPool(t, pem)
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

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

var errNoChromium = errors.New("chromium not found")
