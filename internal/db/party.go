package db

import (
	"context"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The database's second layer of authorization (migrations/00008_row_security.sql):
// row-level security on forms and payouts reads the caller's party from the setting
// taxrefund.party ("<role>/<code>": store/S001, customs/CKG, desk/CKG-01, agency/AG-CQ,
// authority/CQ, system/expiry). InTx, InPipelinedTx, SendBatch and Scoped set it for
// their own transaction only (set_config(..., true)), in the same round trip as the work, so a
// pooled connection never carries one caller's party into the next caller's statement.
// Without a party the application role sees and writes no form or payout at all.

type partyKey struct{}

// partyPattern is what a party setting may look like: the role, a slash and the code.
// Party segments come from verified certificates (auth.Party), which allow no quotes, so
// a valid party is safe inside a SQL literal.
var partyPattern = regexp.MustCompile(`^[a-z]{1,16}/[A-Za-z0-9._-]{1,64}$`)

// WithParty returns ctx carrying the party whose rows the database statements made with
// it may see: role is auth.Role or "system" for the service's own jobs, code the
// party's store, port, desk, agency, office or job name. It panics on a malformed party,
// a programming error.
func WithParty(ctx context.Context, role, code string) context.Context {
	p := role + "/" + code
	if !partyPattern.MatchString(p) {
		panic(fmt.Sprintf("db.WithParty: malformed party %q", p))
	}
	return context.WithValue(ctx, partyKey{}, p)
}

// PartyOf returns the party ctx carries ("" for none).
func PartyOf(ctx context.Context) string {
	p, _ := ctx.Value(partyKey{}).(string)
	return p
}

const setPartySQL = `SELECT set_config('taxrefund.party', $1, true)`

// beginOptions begins a transaction that first sets ctx's party, in one round trip.
func beginOptions(ctx context.Context) pgx.TxOptions {
	return beginOptionsFor(PartyOf(ctx))
}

// beginOptionsFor begins a transaction that first sets party (none when empty).
func beginOptionsFor(p string) pgx.TxOptions {
	if p == "" {
		return pgx.TxOptions{}
	}
	// Sent by the simple protocol (no parameters), hence the literal; partyPattern
	// admits no quote or backslash.
	return pgx.TxOptions{BeginQuery: "BEGIN; SELECT set_config('taxrefund.party', '" + p + "', true)"}
}

// withParty returns b with the setting of ctx's party queued first when q is the pool (a
// transaction from InTx already has it set; Scoped sets it itself).
func withParty(ctx context.Context, q Batcher, b *pgx.Batch) *pgx.Batch {
	p := PartyOf(ctx)
	if _, pool := q.(*pgxpool.Pool); p == "" || !pool {
		return b
	}
	out := &pgx.Batch{}
	out.Queue(setPartySQL, p)
	out.QueuedQueries = append(out.QueuedQueries, b.QueuedQueries...)
	return out
}

// Scoped is a pool whose every statement runs as the context's party: the statement is
// pipelined after the setting, both in one implicit transaction and one round trip. It
// serves the reads made outside InTx (sqlc's DBTX, ledger.Querier).
type Scoped struct{ Pool *pgxpool.Pool }

// Scope returns pool as a Scoped.
func Scope(pool *pgxpool.Pool) Scoped { return Scoped{Pool: pool} }

// Exec runs sql as ctx's party.
func (s Scoped) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	p := PartyOf(ctx)
	if p == "" {
		return s.Pool.Exec(ctx, sql, args...)
	}
	res, err := s.send(ctx, p, sql, args)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := res.Exec()
	if err != nil {
		_ = res.Close()
		return tag, err
	}
	return tag, res.Close()
}

// Query runs sql as ctx's party. Closing the rows releases the connection.
func (s Scoped) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	p := PartyOf(ctx)
	if p == "" {
		return s.Pool.Query(ctx, sql, args...)
	}
	res, err := s.send(ctx, p, sql, args)
	if err != nil {
		return nil, err
	}
	rows, err := res.Query()
	if err != nil {
		_ = res.Close()
		return nil, err
	}
	return &batchRows{Rows: rows, res: res}, nil
}

// send pipelines the setting of party and sql, and reads the setting's result.
func (s Scoped) send(ctx context.Context, party, sql string, args []any) (pgx.BatchResults, error) {
	b := &pgx.Batch{}
	b.Queue(setPartySQL, party)
	b.Queue(sql, args...)
	res := s.Pool.SendBatch(ctx, b)
	if _, err := res.Exec(); err != nil {
		_ = res.Close()
		return nil, err
	}
	return res, nil
}

// QueryRow runs sql as ctx's party; the row's Scan releases the connection.
func (s Scoped) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := s.Query(ctx, sql, args...)
	return row{rows: rows, err: err}
}

// Begin begins a transaction as ctx's party (set in the same round trip as BEGIN).
func (s Scoped) Begin(ctx context.Context) (pgx.Tx, error) {
	return s.Pool.BeginTx(ctx, beginOptions(ctx))
}

// SendBatch sends b as ctx's party.
func (s Scoped) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return s.Pool.SendBatch(ctx, withParty(ctx, s.Pool, b))
}

// batchRows are the rows of a Scoped query: closing them also closes the batch that
// holds the connection.
type batchRows struct {
	pgx.Rows
	res    pgx.BatchResults
	closed bool
	err    error
}

func (r *batchRows) Close() {
	r.Rows.Close()
	if !r.closed {
		r.closed = true
		r.err = r.res.Close()
	}
}

func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}

// row is pgx.Row over Scoped.Query.
type row struct {
	rows pgx.Rows
	err  error
}

func (r row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}
