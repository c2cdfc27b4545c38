package loadgen

import (
	"context"
	"runtime"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// meter measures the CPU time of the server, PostgreSQL and the client over one
// measurement window, and the server's peak RSS.
type meter struct {
	serverPID int
	pg        pgProcs
	notes     []string

	t0     time.Time
	server time.Duration
	self   time.Duration
	busy   time.Duration
	pgs    pgSample
	// seen accumulates the last CPU time seen of every PostgreSQL process during the
	// window: pgbench's backends exit when it does, before the last sample.
	seen pgSample
	stop chan struct{}
	done chan struct{}
}

// newMeter finds the PostgreSQL server behind pool on this machine; serverPID 0 means no
// server to watch (a pgbench baseline).
func newMeter(ctx context.Context, pool *pgxpool.Pool, serverPID int) *meter {
	m := &meter{serverPID: serverPID}
	var backend int
	var database string
	if err := pool.QueryRow(ctx, `SELECT pg_backend_pid(), current_database()`).Scan(&backend, &database); err == nil {
		if ppid, err := procStatus(backend, "PPid"); err == nil {
			m.pg = pgProcs{postmaster: int(ppid), database: database}
		}
	}
	if m.pg.postmaster == 0 {
		m.notes = append(m.notes, "PostgreSQL runs elsewhere (not in this machine's /proc): its CPU time is not measured")
	}
	if serverPID != 0 {
		if err := resetPeakRSS(serverPID); err != nil {
			m.notes = append(m.notes, "could not reset the server's peak RSS ("+err.Error()+"): it is the peak since the server started")
		}
	}
	return m
}

func (m *meter) begin() {
	m.t0 = time.Now()
	if m.serverPID != 0 {
		m.server, _, _ = procCPU(m.serverPID)
	}
	m.self, _, _ = procCPU(selfPID())
	m.busy, _, _ = machineCPU()
	m.pgs = m.pg.sample()
	m.seen = pgSample{backends: map[int]time.Duration{}, background: map[int]time.Duration{}}
	m.stop, m.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(m.done)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-t.C:
				m.seen.update(m.pg.sample())
			}
		}
	}()
}

// end returns the CPU split since begin. client is the client's CPU time when it is
// another process (pgbench); negative means this process.
func (m *meter) end(client time.Duration) CPUSplit {
	s := CPUSplit{Seconds: time.Since(m.t0).Seconds(), Cores: runtime.NumCPU()}
	if m.serverPID != 0 {
		if cpu, _, err := procCPU(m.serverPID); err == nil {
			s.Server = (cpu - m.server).Seconds()
		}
	}
	if client < 0 {
		self, _, _ := procCPU(selfPID())
		client = self - m.self
	}
	s.Client = client.Seconds()
	busy, _, _ := machineCPU()
	s.Busy = (busy - m.busy).Seconds()
	close(m.stop)
	<-m.done
	m.seen.update(m.pg.sample())
	backends, background := m.seen.since(m.pgs)
	s.Postgres, s.PostgresBackground = backends.Seconds(), background.Seconds()
	s.Other = max(0, s.Busy-s.Server-s.Client-s.Postgres-s.PostgresBackground)
	return s
}

// serverMemory returns the server's peak RSS since newMeter and its RSS now, in MiB.
func (m *meter) serverMemory() (peak, now float64) {
	if m.serverPID == 0 {
		return 0, 0
	}
	hwm, _ := procStatus(m.serverPID, "VmHWM")
	rss, _ := procStatus(m.serverPID, "VmRSS")
	return float64(hwm) / (1 << 20), float64(rss) / (1 << 20)
}
