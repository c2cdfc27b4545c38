package server

import (
	"net"
	"sync"
)

// LimitListener caps the connections open at once from one client address (IP): a
// connection over the cap is closed as soon as it is accepted, before any TLS work, so
// that one host cannot take every connection slot or handshake. perAddr <= 0: no cap.
func LimitListener(l net.Listener, perAddr int) net.Listener {
	if perAddr <= 0 {
		return l
	}
	return &limitListener{Listener: l, max: perAddr, open: map[string]int{}}
}

// DefaultConnsPerAddr is the cap of taxrefund serve -max-conns-per-addr: well above one
// POS, a desk or a load balancer's handful, far below what would exhaust the server.
const DefaultConnsPerAddr = 64

type limitListener struct {
	net.Listener
	max int

	mu   sync.Mutex
	open map[string]int
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		host := c.RemoteAddr().String()
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		l.mu.Lock()
		if l.open[host] >= l.max {
			l.mu.Unlock()
			_ = c.Close()
			continue
		}
		l.open[host]++
		l.mu.Unlock()
		return &countedConn{Conn: c, release: func() {
			l.mu.Lock()
			if l.open[host]--; l.open[host] == 0 {
				delete(l.open, host)
			}
			l.mu.Unlock()
		}}, nil
	}
}

type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
