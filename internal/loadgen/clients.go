package loadgen

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"taxrefund/internal/dial"
	"taxrefund/internal/pki"
)

func selfPID() int { return os.Getpid() }

// conns holds one gRPC connection per party certificate (dir/<name>.pem), opened on first
// use: a store's POS, a customs officer's or a cashier's terminal each has its own.
type conns struct {
	addr string
	dir  string

	mu  sync.Mutex
	cc  map[string]*grpc.ClientConn
	err map[string]error
}

func newConns(addr, certDir string) *conns {
	return &conns{addr: addr, dir: certDir, cc: map[string]*grpc.ClientConn{}, err: map[string]error{}}
}

// get returns the connection of the party whose certificate is named name.
func (c *conns) get(name string) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc, ok := c.cc[name]; ok {
		return cc, nil
	}
	if err, ok := c.err[name]; ok {
		return nil, err
	}
	cc, err := c.dial(name)
	if err != nil {
		c.err[name] = err
		return nil, err
	}
	c.cc[name] = cc
	return cc, nil
}

func (c *conns) dial(name string) (*grpc.ClientConn, error) {
	tlsConf, err := pki.ClientTLSConfig(filepath.Join(c.dir, pki.CACertFile),
		filepath.Join(c.dir, name+".pem"), filepath.Join(c.dir, name+"-key.pem"), "localhost")
	if err != nil {
		return nil, fmt.Errorf("certificate %s (run `loadgen setup`): %w", name, err)
	}
	cc, err := dial.NewClient(c.addr, tlsConf)
	if err != nil {
		return nil, fmt.Errorf("connect as %s: %w", name, err)
	}
	return cc, nil
}

// waitReady waits until the server answers a health check as party name, or timeout.
func (c *conns) waitReady(ctx context.Context, name string, timeout time.Duration) error {
	cc, err := c.get(name)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	if err != nil {
		return fmt.Errorf("server at %s not ready after %s: %w", c.addr, timeout, err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("server at %s is %s", c.addr, resp.GetStatus())
	}
	return nil
}

func (c *conns) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cc := range c.cc {
		_ = cc.Close()
	}
}
