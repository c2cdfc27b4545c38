package server

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"

	"github.com/jackc/pgx/v5/pgxpool"
)

// The debug listener (taxrefund serve -debug-addr): Go's profiles and the database
// pool's statistics over plain HTTP, for whoever profiles the service on its own machine.
// It has no authentication, so it listens on a loopback address only.

// CheckDebugAddr refuses a debug address that is not host:port with a loopback host.
func CheckDebugAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-debug-addr %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-debug-addr %q: the debug listener has no authentication; give a loopback host (127.0.0.1, [::1] or localhost)", addr)
	}
	return nil
}

// DebugHandler serves /debug/pprof/ (net/http/pprof's handlers: profile, heap, goroutine,
// trace...) and /debug/pool, the pool's statistics as JSON: how often a caller had to
// wait for a connection and for how long in all, which is where a saturated pool shows.
func DebugHandler(pool *pgxpool.Pool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pool", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(poolStats(pool.Stat()))
	})
	return mux
}

// PoolStats is pgxpool.Stat as /debug/pool shows it.
type PoolStats struct {
	MaxConns             int32   `json:"max_conns"`
	TotalConns           int32   `json:"total_conns"`
	AcquiredConns        int32   `json:"acquired_conns"`
	IdleConns            int32   `json:"idle_conns"`
	AcquireCount         int64   `json:"acquire_count"`
	EmptyAcquireCount    int64   `json:"empty_acquire_count"`
	EmptyAcquireWaitSecs float64 `json:"empty_acquire_wait_seconds"` // a duration, not money
	AcquireDurationSecs  float64 `json:"acquire_duration_seconds"`   // a duration, not money
	CanceledAcquireCount int64   `json:"canceled_acquire_count"`
	NewConnsCount        int64   `json:"new_conns_count"`
}

func poolStats(s *pgxpool.Stat) PoolStats {
	return PoolStats{
		MaxConns: s.MaxConns(), TotalConns: s.TotalConns(), AcquiredConns: s.AcquiredConns(), IdleConns: s.IdleConns(),
		AcquireCount: s.AcquireCount(), EmptyAcquireCount: s.EmptyAcquireCount(),
		EmptyAcquireWaitSecs: s.EmptyAcquireWaitTime().Seconds(), AcquireDurationSecs: s.AcquireDuration().Seconds(),
		CanceledAcquireCount: s.CanceledAcquireCount(), NewConnsCount: s.NewConnsCount(),
	}
}
