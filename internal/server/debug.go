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
//
// With several pools (a process running several services, one pool per database role)
// /debug/pool shows their sums.
func DebugHandler(pools ...*pgxpool.Pool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pool", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		var sum PoolStats
		for _, pool := range pools {
			sum = sum.add(poolStats(pool.Stat()))
		}
		_ = json.NewEncoder(w).Encode(sum)
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

func (a PoolStats) add(b PoolStats) PoolStats {
	return PoolStats{
		MaxConns: a.MaxConns + b.MaxConns, TotalConns: a.TotalConns + b.TotalConns, AcquiredConns: a.AcquiredConns + b.AcquiredConns,
		IdleConns: a.IdleConns + b.IdleConns, AcquireCount: a.AcquireCount + b.AcquireCount, EmptyAcquireCount: a.EmptyAcquireCount + b.EmptyAcquireCount,
		EmptyAcquireWaitSecs: a.EmptyAcquireWaitSecs + b.EmptyAcquireWaitSecs, AcquireDurationSecs: a.AcquireDurationSecs + b.AcquireDurationSecs,
		CanceledAcquireCount: a.CanceledAcquireCount + b.CanceledAcquireCount, NewConnsCount: a.NewConnsCount + b.NewConnsCount,
	}
}
