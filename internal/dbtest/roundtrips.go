package dbtest

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"taxrefund/internal/db"
)

// RoundTrips counts the round trips a pool's connections make to PostgreSQL, two ways:
// as pgx traces them (a query is one, a batch is one), and as the socket sees them (a
// write that follows a read starts one more exchange). The second also sees what pgx does
// not trace: the statements it prepares before running a batch, pings, reconnections.
type RoundTrips struct {
	mu     sync.Mutex
	traced int
	wire   int
	log    []string
}

// OpenCountingPool opens a pool of at most maxConns connections on url, as the URL's
// user, and the RoundTrips that counts its round trips; the pool is closed when the test
// ends. Its connections are set up as db.Open sets them up (the codecs its AfterConnect
// registers, its runtime parameters); only, it never pings a connection it hands out, so
// that an idle second does not add a round trip of its own.
func OpenCountingPool(t testing.TB, url string, maxConns int32) (*pgxpool.Pool, *RoundTrips) {
	t.Helper()
	base, err := db.Open(context.Background(), url, maxConns)
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	cfg := base.Config()
	base.Close()
	trips := &RoundTrips{}
	cfg.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false }
	cfg.ConnConfig.Tracer = trips
	var d net.Dialer
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: c, trips: trips}, nil
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, trips
}

// Reset starts counting afresh.
func (r *RoundTrips) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.traced, r.wire, r.log = 0, 0, nil
}

// Traced returns the round trips pgx traced since the last Reset, and what each was.
func (r *RoundTrips) Traced() (int, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.traced, append([]string(nil), r.log...)
}

// Wire returns the exchanges the sockets saw since the last Reset.
func (r *RoundTrips) Wire() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.wire
}

func (r *RoundTrips) record(what string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.traced++
	r.log = append(r.log, what)
}

// TraceQueryStart counts a query.
func (r *RoundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	r.record("query: " + firstLine(data.SQL))
	return ctx
}

// TraceQueryEnd does nothing.
func (r *RoundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TraceBatchStart counts a batch.
func (r *RoundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	var sqls []string
	for _, q := range data.Batch.QueuedQueries {
		sqls = append(sqls, firstLine(q.SQL))
	}
	r.record("batch: " + strings.Join(sqls, " | "))
	return ctx
}

// TraceBatchQuery does nothing.
func (r *RoundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

// TraceBatchEnd does nothing.
func (r *RoundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

func firstLine(sql string) string {
	sql = strings.TrimSpace(sql)
	if i := strings.IndexByte(sql, '\n'); i >= 0 {
		sql = sql[:i]
	}
	if len(sql) > 60 {
		sql = sql[:60] + "…"
	}
	return sql
}

// countingConn counts the exchanges on one connection: a write after a read (or the
// first write) is the client speaking again after having waited for the server.
type countingConn struct {
	net.Conn
	trips   *RoundTrips
	mu      sync.Mutex
	writing bool
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	if !c.writing {
		c.writing = true
		c.trips.mu.Lock()
		c.trips.wire++
		c.trips.mu.Unlock()
	}
	c.mu.Unlock()
	return c.Conn.Write(b)
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.mu.Lock()
		c.writing = false
		c.mu.Unlock()
	}
	return n, err
}
