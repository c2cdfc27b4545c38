package loadgen

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Cost is what PostgreSQL did per counted operation (a form) over a measurement, from
// its own statistics of the measured database: counts that do not depend on how busy the
// machine is, unlike throughput.
type Cost struct {
	// Ops is the number of rows inserted into the counted table (forms, floor_forms).
	Ops int64 `json:"ops"`
	// Rows written (inserted, updated, deleted) per op, and by table.
	Rows    float64            `json:"rows"`
	ByTable map[string]float64 `json:"by_table"`
	// IndexEntries are the index tuples added per op: every index of a table per row
	// inserted, and per row updated other than HOT (partial indexes are counted as full).
	IndexEntries float64 `json:"index_entries"`
	// FKChecks are the foreign-key trigger firings per op: one per row inserted and
	// foreign key of its table (updates are not counted: they fire only when a key column
	// changes).
	FKChecks float64 `json:"fk_checks"`
	// TriggerCalls are the calls of user trigger functions (pg_stat_user_functions; row-
	// and statement-level alike); -1 if the database does not track functions.
	TriggerCalls float64 `json:"trigger_calls"`
	// Transactions committed or rolled back in the database over the window, per op: the
	// server's background jobs (sealer, dispatcher, health checks) count too, over the
	// 11 s waits as well, so this is an upper bound, not IssueForm's own.
	Transactions float64 `json:"transactions"`
	// WAL written by the measured database's transactions (pg_walinspect: records that
	// touch its blocks, and every record of the transactions that do, commits included),
	// per op; FPIBytes is the part that is full-page images (it depends on checkpoints).
	WALRecords float64  `json:"wal_records"`
	WALBytes   float64  `json:"wal_bytes"`
	FPIBytes   float64  `json:"wal_fpi_bytes"`
	Notes      []string `json:"notes,omitempty"`
}

// statsLag is how long a busy backend's statistics may take to reach the shared counters:
// PostgreSQL flushes them at most once a second while busy, and within 10 s when idle.
const statsLag = 11 * time.Second

type costSample struct {
	tables map[string][4]int64 // ins, upd, hot, del
	trig   int64
	tracks bool
	xacts  int64
	lsn    string
}

// costMeter measures a Cost over a window. begin waits for the counters of earlier work
// to settle; end waits for the window's.
type costMeter struct {
	pool *pgxpool.Pool
	// slot holds a temporary replication slot that keeps the window's WAL from being
	// recycled until it is read (on a busy server a segment can go within seconds).
	slot    *pgxpool.Conn
	counted string
	before  costSample
	dbOID   uint32
	notes   []string
	walOK   bool
}

func newCostMeter(ctx context.Context, pool *pgxpool.Pool, counted string, log io.Writer) (*costMeter, error) {
	m := &costMeter{pool: pool, counted: counted}
	if err := pool.QueryRow(ctx, `SELECT oid FROM pg_database WHERE datname = current_database()`).Scan(&m.dbOID); err != nil {
		return nil, err
	}
	if _, err := pool.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_walinspect`); err != nil {
		m.notes = append(m.notes, "WAL not measured (pg_walinspect: "+err.Error()+")")
	} else if conn, err := pool.Acquire(ctx); err != nil {
		return nil, err
	} else if _, err := conn.Exec(ctx, `SELECT pg_create_physical_replication_slot('loadgen_cost_' || pg_backend_pid(), true, true)`); err != nil {
		conn.Release()
		m.notes = append(m.notes, "WAL not measured (replication slot: "+err.Error()+")")
	} else {
		m.slot, m.walOK = conn, true
	}
	fmt.Fprintf(log, "loadgen: cost: waiting %s for earlier statistics to settle...\n", statsLag)
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(statsLag):
	}
	s, err := m.sample(ctx)
	if err != nil {
		return nil, err
	}
	m.before = s
	return m, nil
}

func (m *costMeter) sample(ctx context.Context) (costSample, error) {
	s := costSample{tables: map[string][4]int64{}}
	rows, err := m.pool.Query(ctx, `SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del FROM pg_stat_user_tables`)
	if err != nil {
		return s, err
	}
	for rows.Next() {
		var name string
		var v [4]int64
		if err := rows.Scan(&name, &v[0], &v[1], &v[2], &v[3]); err != nil {
			return s, err
		}
		s.tables[name] = v
	}
	if err := rows.Err(); err != nil {
		return s, err
	}
	err = m.pool.QueryRow(ctx, `
		SELECT current_setting('track_functions') <> 'none',
		       (SELECT coalesce(sum(f.calls), 0)::bigint FROM pg_stat_user_functions f JOIN pg_proc p ON p.oid = f.funcid
		         WHERE p.prorettype = 'trigger'::regtype),
		       (SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()),
		       pg_current_wal_flush_lsn()::text`).Scan(&s.tracks, &s.trig, &s.xacts, &s.lsn)
	return s, err
}

// end waits for the window's statistics to arrive and returns the cost per counted row.
func (m *costMeter) end(ctx context.Context, log io.Writer) (*Cost, error) {
	fmt.Fprintf(log, "loadgen: cost: waiting %s for the statistics to arrive...\n", statsLag)
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(statsLag):
	}
	after, err := m.sample(ctx)
	if m.slot != nil {
		// Closing the session drops its temporary slot.
		defer func() { _ = m.slot.Conn().Close(context.Background()); m.slot.Release() }()
	}
	if err != nil {
		return nil, err
	}
	indexes, err := perTable(ctx, m.pool, `SELECT c.relname, count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid GROUP BY 1`)
	if err != nil {
		return nil, err
	}
	fks, err := perTable(ctx, m.pool, `SELECT c.relname, count(*) FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid WHERE k.contype = 'f' GROUP BY 1`)
	if err != nil {
		return nil, err
	}
	c := &Cost{ByTable: map[string]float64{}, Notes: m.notes}
	c.Ops = after.tables[m.counted][0] - m.before.tables[m.counted][0]
	if c.Ops <= 0 {
		return nil, fmt.Errorf("cost: no rows inserted into %s during the window", m.counted)
	}
	ops := float64(c.Ops)
	for name, a := range after.tables {
		b := m.before.tables[name]
		ins, upd, hot, del := a[0]-b[0], a[1]-b[1], a[2]-b[2], a[3]-b[3]
		if ins+upd+del == 0 {
			continue
		}
		c.ByTable[name] = float64(ins+upd+del) / ops
		c.Rows += float64(ins+upd+del) / ops
		c.IndexEntries += float64((ins+upd-hot)*indexes[name]) / ops
		c.FKChecks += float64(ins*fks[name]) / ops
	}
	c.TriggerCalls = -1
	if after.tracks {
		c.TriggerCalls = float64(after.trig-m.before.trig) / ops
	} else {
		c.Notes = append(c.Notes, "trigger calls not counted: track_functions is none (loadgen setup sets it to pl on the database)")
	}
	c.Transactions = float64(after.xacts-m.before.xacts) / ops
	if m.walOK {
		var recs, bytes, fpi int64
		err := m.slot.QueryRow(ctx, `
			WITH r AS (SELECT xid, record_length, fpi_length, block_ref ~ $3 AS ours
			             FROM pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn)),
			     x AS (SELECT DISTINCT xid FROM r WHERE ours AND xid <> '0'::xid)
			SELECT count(*), coalesce(sum(record_length), 0), coalesce(sum(fpi_length), 0)
			  FROM r WHERE ours OR (xid <> '0'::xid AND xid IN (SELECT xid FROM x))`,
			m.before.lsn, after.lsn, fmt.Sprintf(`rel [0-9]+/%d/`, m.dbOID)).Scan(&recs, &bytes, &fpi)
		if err != nil {
			c.Notes = append(c.Notes, "WAL not measured: "+err.Error())
		} else {
			c.WALRecords, c.WALBytes, c.FPIBytes = float64(recs)/ops, float64(bytes)/ops, float64(fpi)/ops
		}
	}
	return c, nil
}

func perTable(ctx context.Context, pool *pgxpool.Pool, sql string) (map[string]int64, error) {
	rows, err := pool.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			return nil, err
		}
		out[name] = n
	}
	return out, rows.Err()
}

// String is one line of the cost for a report.
func (c *Cost) String() string {
	trig := "-"
	if c.TriggerCalls >= 0 {
		trig = fmt.Sprintf("%.1f", c.TriggerCalls)
	}
	return fmt.Sprintf("rows %.1f, index entries %.1f, FK checks %.1f, trigger calls %s, transactions ≤ %.2f, WAL %.0f records %.0f B (%.0f B without full-page images)",
		c.Rows, c.IndexEntries, c.FKChecks, trig, c.Transactions, c.WALRecords, c.WALBytes, c.WALBytes-c.FPIBytes)
}

// tables lists the rows per op by table, largest first.
func (c *Cost) tables() string {
	names := make([]string, 0, len(c.ByTable))
	for n := range c.ByTable {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		return c.ByTable[names[i]] > c.ByTable[names[j]] || c.ByTable[names[i]] == c.ByTable[names[j]] && names[i] < names[j]
	})
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %.2f", n, c.ByTable[n])
	}
	return strings.Join(parts, ", ")
}
