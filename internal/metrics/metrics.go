// Package metrics exposes the service to Prometheus on a listener of its own: every RPC's
// rate, latency and status code (go-grpc-middleware's Prometheus provider), the database
// pool, the Go runtime, and the business read from the database (forms, payouts, cash
// paid, prepayments awaiting capture, the acquirer outbox, the last journal-chain
// verification and invariant check). No label carries a document number, a form number
// or any other value without a bound: blocks, ports, desks, methods and states are the
// registry's few.
package metrics

import (
	"fmt"
	"net"
	"net/http"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every metric of the service's own.
const Namespace = "taxrefund"

// Metrics is the service's registry and the collectors the server and jobs feed.
type Metrics struct {
	Registry *prometheus.Registry
	// GRPC is the per-RPC interceptor pair and its metrics (grpc_server_handled_total,
	// grpc_server_handling_seconds...).
	GRPC *grpcprom.ServerMetrics
	// Checks holds the outcome of the last chain verification and invariant check.
	Checks *Checks
	// DatabaseUp is 1 while the health pinger reaches the database.
	DatabaseUp prometheus.Gauge
}

// New registers the Go runtime and process collectors, the gRPC metrics, the pool's
// statistics and the business collector (read from pool at most once per cacheTTL).
func New(pool *pgxpool.Pool, cacheTTL time.Duration) *Metrics {
	m := newMetrics([]*pgxpool.Pool{pool})
	m.Registry.MustRegister(newBusiness(pool, cacheTTL))
	return m
}

// NewFor is New over a process's pools (their statistics summed), with the business
// figures read from business, a pool whose role may act as the system party (the
// jobs'); nil leaves them out, for a process that runs only some of the services
// (another process, with the jobs, exports them).
func NewFor(pools []*pgxpool.Pool, business *pgxpool.Pool, cacheTTL time.Duration) *Metrics {
	m := newMetrics(pools)
	if business != nil {
		m.Registry.MustRegister(newBusiness(business, cacheTTL))
	}
	return m
}

func newMetrics(pools []*pgxpool.Pool) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		GRPC: grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
			grpcprom.WithHistogramBuckets([]float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}))),
		Checks: newChecks(),
		DatabaseUp: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: "database_up",
			Help: "1 while the health pinger reaches the database, 0 while it does not."}),
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.GRPC, m.Checks, m.DatabaseUp,
		newPoolCollector(pools),
	)
	return m
}

// Handler serves /metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry}))
	return mux
}

// CheckAddr refuses a metrics address that is not host:port. A non-loopback host is
// allowed (a Prometheus on another machine scrapes it) but must be asked for by name.
func CheckAddr(addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("-metrics-addr %q: %w", addr, err)
	}
	return nil
}
