package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"taxrefund/internal/dbtest"
)

func TestCheckDebugAddrTakesLoopbackOnly(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:6060": true, "localhost:6060": true, "[::1]:6060": true, "127.0.0.2:0": true,
		"0.0.0.0:6060": false, ":6060": false, "10.1.2.3:6060": false, "example.com:6060": false, "127.0.0.1": false,
	} {
		if err := CheckDebugAddr(addr); (err == nil) != ok {
			t.Errorf("CheckDebugAddr(%q) = %v, want ok=%v", addr, err, ok)
		}
	}
}

// The debug handler shows the pool's own counters and Go's profiles.
func TestDebugHandlerServesPoolStatsAndProfiles(t *testing.T) {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(dbtest.NewURL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 3
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	for range 5 {
		if _, err := pool.Exec(ctx, `SELECT 1`); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(DebugHandler(pool))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/debug/pool")
	if err != nil {
		t.Fatal(err)
	}
	var st PoolStats
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if st.MaxConns != 3 || st.AcquireCount < 5 || st.TotalConns < 1 || st.AcquiredConns != 0 {
		t.Errorf("/debug/pool = %+v: want max 3, at least 5 acquires, a connection open and none held", st)
	}

	resp, err = http.Get(srv.URL + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	var body strings.Builder
	_, _ = io.Copy(&body, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(body.String(), "goroutine") {
		t.Errorf("/debug/pprof/: %d, want the profile index:\n%.300s", resp.StatusCode, body.String())
	}
}
