package metrics

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// poolCollector reads pgxpool.Stat at each scrape.
type poolCollector struct {
	pool  *pgxpool.Pool
	descs map[string]*prometheus.Desc
}

func newPoolCollector(pool *pgxpool.Pool) *poolCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "db_pool", name), help, nil, nil)
	}
	return &poolCollector{pool: pool, descs: map[string]*prometheus.Desc{
		"max":          d("max_connections", "The pool's maximum size."),
		"total":        d("connections", "Connections open now."),
		"acquired":     d("acquired_connections", "Connections in use now."),
		"idle":         d("idle_connections", "Idle connections now."),
		"constructing": d("constructing_connections", "Connections being opened now."),
		"acquires":     d("acquires_total", "Connections acquired."),
		"empty":        d("empty_acquires_total", "Acquires that had to wait for a connection."),
		"emptywait":    d("empty_acquire_wait_seconds_total", "Time spent waiting for a connection."),
		"canceled":     d("canceled_acquires_total", "Acquires given up by their caller (a deadline, a cancel)."),
		"new":          d("new_connections_total", "Connections opened."),
		"lifetime":     d("max_lifetime_destroys_total", "Connections closed for their age."),
		"idledestroy":  d("max_idle_destroys_total", "Connections closed for idleness."),
	}}
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	g := func(k string, v float64) { ch <- prometheus.MustNewConstMetric(c.descs[k], prometheus.GaugeValue, v) }
	n := func(k string, v float64) { ch <- prometheus.MustNewConstMetric(c.descs[k], prometheus.CounterValue, v) }
	g("max", float64(s.MaxConns()))
	g("total", float64(s.TotalConns()))
	g("acquired", float64(s.AcquiredConns()))
	g("idle", float64(s.IdleConns()))
	g("constructing", float64(s.ConstructingConns()))
	n("acquires", float64(s.AcquireCount()))
	n("empty", float64(s.EmptyAcquireCount()))
	n("emptywait", s.EmptyAcquireWaitTime().Seconds())
	n("canceled", float64(s.CanceledAcquireCount()))
	n("new", float64(s.NewConnsCount()))
	n("lifetime", float64(s.MaxLifetimeDestroyCount()))
	n("idledestroy", float64(s.MaxIdleDestroyCount()))
}
