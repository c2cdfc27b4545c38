package auth_test

import (
	"context"
	"crypto/tls"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"taxrefund/internal/auth"
	"taxrefund/internal/pki"
)

// certs is a CA directory with a server certificate and one client
// certificate per identity, plus a client certificate from a foreign CA.
type certs struct {
	dir, otherDir string
}

// identities maps certificate file names to the identities they carry.
func identities() map[string]string {
	return map[string]string{
		"store":     "taxrefund://store/CQ-JFB-0001",
		"customs":   "taxrefund://customs/CKG/officer-17",
		"desk":      "taxrefund://desk/CKG-T3",
		"cashier":   "taxrefund://desk/IFS-1/cashier-4",
		"authority": "taxrefund://authority/CQ-tax",
	}
}

func newCerts(t *testing.T) certs {
	t.Helper()
	c := certs{dir: t.TempDir(), otherDir: t.TempDir()}
	ca, err := pki.EnsureCA(c.dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.IssueServer(c.dir, "server", []string{"localhost", "127.0.0.1", "::1"}); err != nil {
		t.Fatal(err)
	}
	for name, uri := range identities() {
		if err := ca.IssueClient(c.dir, name, uri); err != nil {
			t.Fatal(err)
		}
	}
	other, err := pki.EnsureCA(c.otherDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.IssueClient(c.otherDir, "store", identities()["store"]); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c certs) path(name string) string { return filepath.Join(c.dir, name) }

// clientConfig returns a client TLS config trusting our CA and presenting
// dir/<name>.pem.
func (c certs) clientConfig(t *testing.T, dir, name string) *tls.Config {
	t.Helper()
	cfg, err := pki.ClientTLSConfig(c.path(pki.CACertFile), filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem"), "localhost")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// recorder remembers the parties that reached the handlers.
type recorder struct {
	mu      sync.Mutex
	parties []auth.Party
}

func (r *recorder) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	p, ok := auth.FromContext(ctx)
	if ok {
		r.mu.Lock()
		r.parties = append(r.parties, p)
		r.mu.Unlock()
	}
	return handler(ctx, req)
}

func (r *recorder) seen() []auth.Party {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]auth.Party(nil), r.parties...)
}

// startServer serves the standard health service over mutual TLS on
// 127.0.0.1:0 behind a, and returns its address.
func startServer(t *testing.T, c certs, a *auth.Authorizer) (string, *recorder) {
	t.Helper()
	cfg, err := pki.ServerTLSConfig(c.path(pki.CACertFile), c.path("server.pem"), c.path("server-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(cfg)),
		grpc.ChainUnaryInterceptor(a.Unary(), rec.unary),
		grpc.ChainStreamInterceptor(a.Stream()),
	)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return lis.Addr().String(), rec
}

func healthClient(t *testing.T, addr string, cfg *tls.Config) healthpb.HealthClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return healthpb.NewHealthClient(conn)
}

func check(t *testing.T, hc healthpb.HealthClient) (*healthpb.HealthCheckResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return hc.Check(ctx, &healthpb.HealthCheckRequest{})
}

func TestEndToEndEveryRoleCanCheckHealth(t *testing.T) {
	c := newCerts(t)
	addr, rec := startServer(t, c, &auth.Authorizer{Matrix: auth.DefaultMatrix()})
	for name, uri := range identities() {
		t.Run(name, func(t *testing.T) {
			resp, err := check(t, healthClient(t, addr, c.clientConfig(t, c.dir, name)))
			if err != nil {
				t.Fatalf("Health/Check as %s: %v", uri, err)
			}
			if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("status = %v, want SERVING", resp.GetStatus())
			}
			seen := rec.seen()
			if len(seen) == 0 || seen[len(seen)-1].URI != uri {
				t.Fatalf("handler saw %+v, want last party %s", seen, uri)
			}
		})
	}
}

func TestEndToEndMatrixDenies(t *testing.T) {
	c := newCerts(t)
	tiny := auth.Matrix{"/grpc.health.v1.Health/Watch": {auth.RoleStore}}
	addr, rec := startServer(t, c, &auth.Authorizer{Matrix: tiny})
	store := healthClient(t, addr, c.clientConfig(t, c.dir, "store"))

	_, err := check(t, store)
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("Check not in matrix: code %v (%v), want PermissionDenied", status.Code(err), err)
	}
	msg := status.Convert(err).Message()
	if !strings.Contains(msg, "store") || !strings.Contains(msg, "/grpc.health.v1.Health/Check") || strings.Contains(msg, "CQ-JFB-0001") {
		t.Errorf("denial message %q: want role and method, no certificate details", msg)
	}
	if len(rec.seen()) != 0 {
		t.Error("a denied call reached the handler chain")
	}

	// The listed streaming method works for the listed role...
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w, err := store.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := w.Recv()
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("store Watch: %v, %v; want SERVING", resp, err)
	}
	// ...and is denied to another.
	w, err = healthClient(t, addr, c.clientConfig(t, c.dir, "customs")).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("customs Watch: code %v (%v), want PermissionDenied", status.Code(err), err)
	}
}

func TestEndToEndActiveHook(t *testing.T) {
	c := newCerts(t)
	addr, _ := startServer(t, c, &auth.Authorizer{
		Matrix: auth.DefaultMatrix(),
		Active: func(_ context.Context, p auth.Party) error {
			if p.Role == auth.RoleStore {
				return auth.ErrInactive
			}
			return nil
		},
	})
	if _, err := check(t, healthClient(t, addr, c.clientConfig(t, c.dir, "store"))); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("inactive store: code %v (%v), want PermissionDenied", status.Code(err), err)
	}
	if _, err := check(t, healthClient(t, addr, c.clientConfig(t, c.dir, "desk"))); err != nil {
		t.Fatalf("active desk: %v", err)
	}
}

func TestEndToEndHandshakeFailures(t *testing.T) {
	c := newCerts(t)
	addr, rec := startServer(t, c, &auth.Authorizer{Matrix: auth.DefaultMatrix()})

	noCert, err := pki.ClientTLSConfig(c.path(pki.CACertFile), c.path("store.pem"), c.path("store-key.pem"), "localhost")
	if err != nil {
		t.Fatal(err)
	}
	noCert.Certificates = nil

	cases := []struct {
		name string
		cfg  *tls.Config
	}{
		{"client certificate from another CA", c.clientConfig(t, c.otherDir, "store")},
		{"no client certificate", noCert},
		{"server certificate used as client certificate", c.clientConfig(t, c.dir, "server")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := check(t, healthClient(t, addr, tc.cfg))
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("code %v (%v), want Unavailable from a failed handshake", status.Code(err), err)
			}
		})
	}
	if seen := rec.seen(); len(seen) != 0 {
		t.Fatalf("calls without an accepted certificate reached handlers: %+v", seen)
	}
	// The same server still serves a good client.
	if _, err := check(t, healthClient(t, addr, c.clientConfig(t, c.dir, "authority"))); err != nil {
		t.Fatalf("good client after failures: %v", err)
	}
}
