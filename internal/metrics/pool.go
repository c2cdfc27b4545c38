package metrics

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// poolCollector reads pgxpool.Stat at each scrape, summed over the process's pools (one
// per service it runs).
type poolCollector struct {
	pools []*pgxpool.Pool
	descs map[string]*prometheus.Desc
}

func newPoolCollector(pools []*pgxpool.Pool) *poolCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "db_pool", name), help, nil, nil)
	}
	return &poolCollector{pools: pools, descs: map[string]*prometheus.Desc{
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
	var max, total, acquired, idle, constructing, acquires, empty, canceled, created, lifetime, idleDestroy, emptyWait float64
	for _, p := range c.pools {
		s := p.Stat()
		max += float64(s.MaxConns())
		total += float64(s.TotalConns())
		acquired += float64(s.AcquiredConns())
		idle += float64(s.IdleConns())
		constructing += float64(s.ConstructingConns())
		acquires += float64(s.AcquireCount())
		empty += float64(s.EmptyAcquireCount())
		emptyWait += s.EmptyAcquireWaitTime().Seconds()
		canceled += float64(s.CanceledAcquireCount())
		created += float64(s.NewConnsCount())
		lifetime += float64(s.MaxLifetimeDestroyCount())
		idleDestroy += float64(s.MaxIdleDestroyCount())
	}
	g := func(k string, v float64) { ch <- prometheus.MustNewConstMetric(c.descs[k], prometheus.GaugeValue, v) }
	n := func(k string, v float64) { ch <- prometheus.MustNewConstMetric(c.descs[k], prometheus.CounterValue, v) }
	g("max", max)
	g("total", total)
	g("acquired", acquired)
	g("idle", idle)
	g("constructing", constructing)
	n("acquires", acquires)
	n("empty", empty)
	n("emptywait", emptyWait)
	n("canceled", canceled)
	n("new", created)
	n("lifetime", lifetime)
	n("idledestroy", idleDestroy)
}
