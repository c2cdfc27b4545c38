package server_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	storev1 "taxrefund/api/taxrefund/store/v1"
	"taxrefund/internal/pki"
	"taxrefund/internal/server"
)

// The connection limits of server.Limits (keepalive enforcement, maximum connection age
// and idle time, maximum concurrent streams), each set short and watched through a real
// TCP listener with mutual TLS. The store service is a stand-in whose GetForm takes a
// set time: no database is involved.

// slowStore answers GetForm after delay and counts the calls that reached it.
type slowStore struct {
	storev1.UnimplementedStoreServiceServer
	delay   time.Duration
	arrived atomic.Int32
}

func (s *slowStore) GetForm(ctx context.Context, _ *storev1.GetFormRequest) (*storev1.GetFormResponse, error) {
	s.arrived.Add(1)
	select {
	case <-time.After(s.delay):
		return &storev1.GetFormResponse{}, nil
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

type connEnv struct {
	addr    string
	certDir string
	store   *slowStore
}

// newConnEnv serves a slowStore with limits (admission and rate limits off) on a loopback
// listener.
func newConnEnv(t *testing.T, delay time.Duration, limits server.Limits) *connEnv {
	t.Helper()
	e := &connEnv{certDir: t.TempDir(), store: &slowStore{delay: delay}}
	ca, err := pki.EnsureCA(e.certDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.IssueServer(e.certDir, "server", []string{"localhost", "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	if err := ca.IssueClient(e.certDir, "pos", "taxrefund://store/S-JFB-1"); err != nil {
		t.Fatal(err)
	}
	tlsConf, err := pki.ServerTLSConfig(filepath.Join(e.certDir, pki.CACertFile),
		filepath.Join(e.certDir, "server.pem"), filepath.Join(e.certDir, "server-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	limits.Deadline = 30 * time.Second
	srv, _, err := server.New(server.Options{TLS: tlsConf, Log: slog.New(slog.DiscardHandler), Limits: &limits}, server.Services{Store: e.store})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = lis.Addr().String()
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return e
}

func (e *connEnv) clientTLS(t *testing.T) *tls.Config {
	t.Helper()
	cfg, err := pki.ClientTLSConfig(filepath.Join(e.certDir, pki.CACertFile),
		filepath.Join(e.certDir, "pos.pem"), filepath.Join(e.certDir, "pos-key.pem"), "localhost")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func (e *connEnv) conn(t *testing.T) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(credentials.NewTLS(e.clientTLS(t))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// getForm calls GetForm on cc and returns the client address of the connection it took.
func getForm(ctx context.Context, cc *grpc.ClientConn) (string, error) {
	var p peer.Peer
	_, err := storev1.NewStoreServiceClient(cc).GetForm(ctx, &storev1.GetFormRequest{FormNumber: "TR1"}, grpc.Peer(&p))
	if p.LocalAddr == nil {
		return "", err
	}
	return p.LocalAddr.String(), err
}

// TestKeepalivePingsTooOften: a client that pings more often than MinPingInterval is
// sent GOAWAY ENHANCE_YOUR_CALM "too_many_pings" and disconnected; the control, a client
// pinging at twice the interval, is answered and kept.
func TestKeepalivePingsTooOften(t *testing.T) {
	t.Parallel()
	e := newConnEnv(t, 0, server.Limits{MinPingInterval: 200 * time.Millisecond})
	ping := func(every time.Duration) (acks int, goaway *http2.GoAwayFrame, closed bool) {
		cfg := e.clientTLS(t)
		cfg.NextProtos = []string{"h2"}
		c, err := tls.Dial("tcp", e.addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
			t.Fatal(err)
		}
		fr := http2.NewFramer(c, c)
		if err := fr.WriteSettings(); err != nil {
			t.Fatal(err)
		}
		go func() {
			for i := range 5 {
				time.Sleep(every)
				if fr.WritePing(false, [8]byte{byte(i)}) != nil {
					return // the server has hung up
				}
			}
		}()
		for acks < 5 {
			f, err := fr.ReadFrame()
			if err != nil {
				return acks, goaway, isClosed(err)
			}
			switch f := f.(type) {
			case *http2.PingFrame:
				if f.IsAck() {
					acks++
				}
			case *http2.GoAwayFrame:
				goaway = f
			}
		}
		return acks, goaway, false
	}
	_, ga, closed := ping(time.Millisecond)
	if ga == nil || ga.ErrCode != http2.ErrCodeEnhanceYourCalm || string(ga.DebugData()) != "too_many_pings" {
		t.Errorf("pings every millisecond: GOAWAY %+v, want ENHANCE_YOUR_CALM too_many_pings", ga)
	}
	if !closed {
		t.Error("pings every millisecond: the connection was kept")
	}
	if acks, ga, closed := ping(400 * time.Millisecond); acks != 5 || ga != nil || closed {
		t.Errorf("pings every 400 ms: %d acknowledged, GOAWAY %+v, closed %v; want 5, none, kept", acks, ga, closed)
	}
}

func isClosed(err error) bool {
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// TestMaxConnectionAge: a connection older than MaxConnectionAge is ended gracefully: a
// call in flight at that moment completes, and the next call runs on a new connection.
func TestMaxConnectionAge(t *testing.T) {
	t.Parallel()
	e := newConnEnv(t, 1500*time.Millisecond, server.Limits{MaxConnectionAge: 300 * time.Millisecond})
	cc := e.conn(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	first, err := getForm(ctx, cc) // in flight while the connection's age runs out
	if err != nil {
		t.Fatalf("the call in flight at the connection's maximum age: %v", err)
	}
	if d := time.Since(start); d < 1500*time.Millisecond {
		t.Fatalf("the call took %v, shorter than its handler", d)
	}
	second, err := getForm(ctx, cc)
	if err != nil {
		t.Fatalf("the next call: %v", err)
	}
	if first == second {
		t.Errorf("both calls ran on the connection from %s: it outlived its maximum age", first)
	}
}

// TestMaxConnectionIdle: a connection without calls for MaxConnectionIdle is closed by
// the server (the client goes idle), and a new call opens another.
func TestMaxConnectionIdle(t *testing.T) {
	t.Parallel()
	e := newConnEnv(t, 0, server.Limits{MaxConnectionIdle: 300 * time.Millisecond})
	cc := e.conn(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	first, err := getForm(ctx, cc)
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	for s := cc.GetState(); s == connectivity.Ready; s = cc.GetState() {
		if !cc.WaitForStateChange(wctx, s) {
			t.Fatalf("the idle connection is still %v after 5s", s)
		}
	}
	second, err := getForm(ctx, cc)
	if err != nil {
		t.Fatal(err)
	}
	if first == second {
		t.Errorf("the call after the idle time reused the connection from %s", first)
	}
}

// TestStreamCapConfigured: with 2 streams per connection, a third call on the connection
// does not reach the server while two are in flight (a short deadline expires before it
// is sent), and one with time to spare waits and completes once a stream is free.
func TestStreamCapConfigured(t *testing.T) {
	t.Parallel()
	e := newConnEnv(t, time.Second, server.Limits{MaxConcurrentStreams: 2})
	cc := e.conn(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := getForm(ctx, cc); err != nil { // the connection and its settings
		t.Fatal(err)
	}
	e.store.arrived.Store(0)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := getForm(ctx, cc); err != nil {
				t.Errorf("a call within the cap: %v", err)
			}
		}()
	}
	for e.store.arrived.Load() < 2 {
		time.Sleep(5 * time.Millisecond)
	}
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	if _, err := getForm(short, cc); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("a third stream with 300 ms to live: %v, want DEADLINE_EXCEEDED", err)
	}
	if n := e.store.arrived.Load(); n != 2 {
		t.Errorf("%d calls reached the server, want the cap, 2", n)
	}
	start := time.Now()
	if _, err := getForm(ctx, cc); err != nil {
		t.Errorf("a third stream with time to wait: %v", err)
	}
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Errorf("the third stream completed after %v: it did not wait for a free stream", d)
	}
	wg.Wait()
}
