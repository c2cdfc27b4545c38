package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Reads that may lag (OPERATIONS.md, "High availability"): the monthly report, the
// reconciliation and the exports may read a streaming replica (serve -read-database-url,
// typically the cluster's hosts with target_session_attrs=prefer-standby), so that a
// month's report does not compete with the desks on the primary. They say how far the
// replica was behind. Nothing that decides money reads there: eligibility, caps and the
// exactly-once payout read the primary, through the services' own pools.

// OpenReadPool opens the pool of reads that may lag, acting as role (the service's own
// role: a replica enforces the same grants and row-level security as the primary, whose
// catalog it replays), with the pool options of the service's pools.
func OpenReadPool(ctx context.Context, url string, maxConns int32, role string, opts ...Option) (*pgxpool.Pool, error) {
	pool, err := OpenAs(ctx, url, maxConns, role, opts...)
	if err != nil {
		return nil, fmt.Errorf("read pool: %w", err)
	}
	return pool, nil
}

// ReadSource is where a read that may lag was made.
type ReadSource struct {
	// Replica: the server was in recovery (a standby). False when a prefer-standby
	// pool found only the primary.
	Replica bool
	// Lag is how far the replica's replay was behind: now() - pg_last_xact_replay_timestamp(),
	// zero when it has replayed all the WAL it received, or is not in recovery.
	Lag time.Duration
	// AsOf is the replica's clock less the lag: the primary's commits up to then are in
	// what it reads.
	AsOf time.Time
}

// replicaLagSQL measures the lag on the server it runs on. A standby that has replayed
// everything it received is as current as its stream (pg_last_xact_replay_timestamp is
// then the time of the primary's last commit, however long ago: not a lag). A standby
// that receives nothing (its primary gone, no walreceiver: receive LSN NULL) is measured
// by the replay timestamp alone.
const replicaLagSQL = `SELECT pg_is_in_recovery(),
	CASE WHEN NOT pg_is_in_recovery() THEN 0
	     WHEN pg_last_wal_receive_lsn() IS NOT NULL AND pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0
	     ELSE coalesce(greatest(0, extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()) * 1000000), 0)
	END::bigint,
	clock_timestamp()`

// MeasureReplicaLag reports where q's reads go and how far behind they are. Measured
// before a report, it is an upper bound: the replica only catches up while the report runs.
func MeasureReplicaLag(ctx context.Context, q DBTX) (ReadSource, error) {
	var (
		rs  ReadSource
		us  int64
		now time.Time
	)
	if err := q.QueryRow(ctx, replicaLagSQL).Scan(&rs.Replica, &us, &now); err != nil {
		return ReadSource{}, fmt.Errorf("replica lag: %w", err)
	}
	rs.Lag = time.Duration(us) * time.Microsecond
	rs.AsOf = now.Add(-rs.Lag)
	return rs, nil
}

// ReadFrom measures where the read pool's reads go and how far behind (MeasureReplicaLag).
// A prefer-standby pool whose connections reached the primary (opened while no standby
// answered, or to a standby since promoted) keeps them for their lifetime: when the
// measure says primary, the pool drops its connections (at most once a second) and
// measures again on a new one, which takes a standby if one answers now.
func ReadFrom(ctx context.Context, pool *pgxpool.Pool) (ReadSource, error) {
	rs, err := MeasureReplicaLag(ctx, pool)
	if err != nil || rs.Replica {
		return rs, err
	}
	resetLimited(pool)
	return MeasureReplicaLag(ctx, pool)
}

// ReplicaNote is the line an export carries when read from a replica, e.g.
// "read from replica, lag 0.4 s (as of 2026-11-02T10:15:03Z)".
func ReplicaNote(rs ReadSource) string {
	if !rs.Replica {
		return fmt.Sprintf("read through the read pool from the primary, lag 0 s (as of %s)", rs.AsOf.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("read from replica, lag %.1f s (as of %s)", rs.Lag.Seconds(), rs.AsOf.UTC().Format(time.RFC3339))
}
