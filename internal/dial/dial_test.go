package dial_test

import (
	"context"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"taxrefund/internal/dial"
	"taxrefund/internal/pki"
)

// health answers every Check with code (OK: SERVING) and counts the calls.
type health struct {
	healthpb.UnimplementedHealthServer
	code  codes.Code
	calls atomic.Int64
}

func (h *health) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	h.calls.Add(1)
	if h.code != codes.OK {
		return nil, status.Error(h.code, "failing over")
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func serve(t *testing.T, dir string, h *health) string {
	t.Helper()
	conf, err := pki.ServerTLSConfig(filepath.Join(dir, pki.CACertFile), filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.Creds(credentials.NewTLS(conf)))
	healthpb.RegisterHealthServer(s, h)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

// Against two servers, one of which answers UNAVAILABLE to everything (its database is
// failing over), every call succeeds: gRPC retries it on the other server. Calls go to
// both (round_robin), and a closed address in the list costs no call either.
func TestSeveralServersRetryUnavailable(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.EnsureCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.IssueServer(dir, "server", []string{"localhost", "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	if err := ca.IssueClient(dir, "authority", "taxrefund://authority/test"); err != nil {
		t.Fatal(err)
	}
	down, up := &health{code: codes.Unavailable}, &health{code: codes.OK}
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	list := serve(t, dir, down) + "," + serve(t, dir, up) + ", " + closedAddr
	host, err := dial.Host(list)
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("Host(%q) = %q, %v; want 127.0.0.1", list, host, err)
	}
	tlsConf, err := pki.ClientTLSConfig(filepath.Join(dir, pki.CACertFile), filepath.Join(dir, "authority.pem"), filepath.Join(dir, "authority-key.pem"), host)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := dial.NewClient(list, tlsConf)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := healthpb.NewHealthClient(cc)
	// The first calls may all go to whichever server finished its TLS handshake first
	// (round_robin picks among the ready ones): call until the failing server has had
	// some, at least 20 and at most 500 calls.
	calls := 0
	for deadline := time.Now().Add(10 * time.Second); calls < 20 || (down.calls.Load() == 0 && calls < 500 && time.Now().Before(deadline)); calls++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
		cancel()
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("call %d: %v, %v; want SERVING from the healthy server after a retry", calls, resp, err)
		}
	}
	if up.calls.Load() != int64(calls) {
		t.Errorf("the healthy server answered %d calls, want %d", up.calls.Load(), calls)
	}
	if down.calls.Load() == 0 {
		t.Errorf("no call of %d reached the failing server: calls are not spread over the servers", calls)
	}
}

func TestAddresses(t *testing.T) {
	for _, bad := range []string{"", " , ", "localhost", "a:1,b"} {
		if _, err := dial.Addresses(bad); err == nil {
			t.Errorf("Addresses(%q): no error", bad)
		}
	}
	got, err := dial.Addresses("a:1, b:2,")
	if err != nil || len(got) != 2 || got[0] != "a:1" || got[1] != "b:2" {
		t.Errorf("Addresses(a:1, b:2,) = %v, %v", got, err)
	}
	if h, _ := dial.Host("a:1,b:2"); h != "" {
		t.Errorf("Host of two hosts = %q, want empty", h)
	}
}
