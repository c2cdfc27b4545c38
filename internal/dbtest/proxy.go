package dbtest

import (
	"net"
	"net/url"
	"sync"
	"testing"
)

// Proxy is a TCP proxy between a pool and PostgreSQL that a test can partition: black-hole
// (nothing passes either way, connections stay open, as when a network drops packets) or
// reset (every connection is closed and new ones are refused), and heal again.
type Proxy struct {
	lis    net.Listener
	target string

	mu      sync.Mutex
	cond    *sync.Cond
	blocked bool
	reset   bool
	conns   map[net.Conn]struct{}
}

// NewProxy starts a proxy on a loopback port in front of the server of dbURL, stopped when
// the test ends.
func NewProxy(t testing.TB, dbURL string) *Proxy {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	p := &Proxy{lis: lis, target: u.Host, conns: map[net.Conn]struct{}{}}
	p.cond = sync.NewCond(&p.mu)
	go p.accept()
	t.Cleanup(func() {
		_ = lis.Close()
		p.Heal()
		p.closeAll()
	})
	return p
}

// URL returns dbURL with its host replaced by the proxy's address.
func (p *Proxy) URL(dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		panic(err)
	}
	u.Host = p.lis.Addr().String()
	return u.String()
}

// BlackHole stops every byte in both directions until Heal: open connections stall, and
// new ones are accepted but never reach PostgreSQL (closed at the heal).
func (p *Proxy) BlackHole() {
	p.mu.Lock()
	p.blocked = true
	p.mu.Unlock()
}

// Reset closes every open connection and refuses new ones until Heal.
func (p *Proxy) Reset() {
	p.mu.Lock()
	p.reset = true
	p.mu.Unlock()
	p.closeAll()
}

// Heal lets traffic through again; what was held back is delivered.
func (p *Proxy) Heal() {
	p.mu.Lock()
	p.blocked, p.reset = false, false
	p.cond.Broadcast()
	p.mu.Unlock()
}

func (p *Proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
}

// wait blocks while the proxy black-holes; it reports false when it resets.
func (p *Proxy) wait() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.blocked && !p.reset {
		p.cond.Wait()
	}
	return !p.reset
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reset {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *Proxy) accept() {
	for {
		client, err := p.lis.Accept()
		if err != nil {
			return
		}
		go p.serve(client)
	}
}

func (p *Proxy) serve(client net.Conn) {
	if !p.track(client) {
		_ = client.Close()
		return
	}
	defer p.untrack(client)
	p.mu.Lock()
	held := p.blocked
	p.mu.Unlock()
	// A connection opened into the black hole never reaches the server, as a SYN that is
	// dropped: its client times out. After the heal it is closed, not delivered.
	if !p.wait() || held {
		return
	}
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	if !p.track(server) {
		_ = server.Close()
		return
	}
	defer p.untrack(server)
	done := make(chan struct{}, 2)
	go func() { p.pipe(server, client); done <- struct{}{} }()
	go func() { p.pipe(client, server); done <- struct{}{} }()
	<-done
}

// pipe copies src to dst, holding each chunk while the proxy black-holes.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer func() { _ = dst.Close(); _ = src.Close() }()
	buf := make([]byte, 32<<10)
	for {
		if !p.wait() {
			return
		}
		n, err := src.Read(buf)
		if n > 0 {
			if !p.wait() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // io.EOF or a closed connection: either ends the pair
		}
	}
}
