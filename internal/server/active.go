package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc/codes"

	"taxrefund/internal/auth"
	"taxrefund/internal/identity"
)

// Registry answers whether a certificate's party is registered and may act, from the
// stores, desks, ports and agencies tables, the revocation list and the identity register
// (internal/identity), with answers cached for a short TTL: a change takes effect within
// it.
type Registry struct {
	pool *pgxpool.Pool
	ttl  time.Duration

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	err error
	at  time.Time
}

// registryTimeout bounds one registry check, also for a stream, whose handler has no
// server deadline; a unary call's own shorter deadline stands.
const registryTimeout = 5 * time.Second

// NewRegistry returns a Registry; ttl 0 asks the database every time.
func NewRegistry(pool *pgxpool.Pool, ttl time.Duration) *Registry {
	return &Registry{pool: pool, ttl: ttl, cache: map[string]cached{}}
}

// Active is an auth.Authorizer hook: a revoked certificate, an unknown store, desk, port
// or agency, and an exited store are refused (auth.ErrInactive); so is a suspended or
// revoked official, officer, cashier, refund point or agency user, while one the
// identity register does not know, or a certificate not bound to it, is
// auth.ErrUnregistered. A suspended store keeps its identity so
// that it can still read its forms and void them when goods come back; it issues nothing
// (the database refuses new forms of a store that is not active, whatever this cache says).
func (r *Registry) Active(ctx context.Context, p auth.Party) error {
	key := p.String() + "#" + p.Serial + "#" + p.KeyHash
	r.mu.Lock()
	c, ok := r.cache[key]
	r.mu.Unlock()
	if ok && time.Since(c.at) < r.ttl {
		return c.err
	}
	// The answer is as old as the moment it was asked for, not the moment it came back.
	asked := time.Now()
	cctx, cancel := context.WithTimeout(ctx, registryTimeout)
	err := r.check(cctx, p)
	cancel()
	if err != nil && !errors.Is(err, auth.ErrInactive) && !errors.Is(err, auth.ErrUnregistered) {
		// A database error is not cached. An unreachable database is UNAVAILABLE and a
		// check cut short is DEADLINE_EXCEEDED, as for any other statement of the call;
		// only the unforeseen is left to the authorizer (INTERNAL, logged).
		if st := Status(err); st.Code() != codes.Internal {
			return st.Err()
		}
		return err
	}
	r.mu.Lock()
	r.cache[key] = cached{err: err, at: asked}
	r.mu.Unlock()
	return err
}

func (r *Registry) check(ctx context.Context, p auth.Party) error {
	if p.Serial != "" {
		var revoked bool
		if err := r.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM revoked_certificates WHERE serial = $1)`, p.Serial).Scan(&revoked); err != nil {
			return fmt.Errorf("registry: %w", err)
		}
		if revoked {
			return fmt.Errorf("certificate revoked: %w", auth.ErrInactive)
		}
	}
	var sql string
	var arg string
	switch p.Role {
	case auth.RoleStore:
		sql, arg = `SELECT status <> 'EXITED' FROM stores WHERE code = $1`, p.Store
	case auth.RoleDesk:
		sql, arg = `SELECT true FROM desks WHERE code = $1`, p.Desk
	case auth.RoleCustoms:
		sql, arg = `SELECT true FROM ports WHERE code = $1`, p.Port
	case auth.RoleAgency:
		sql, arg = `SELECT true FROM agencies WHERE code = $1`, p.Agency
	case auth.RoleAuthority:
		return identity.Check(ctx, r.pool, p)
	default:
		return auth.ErrInactive
	}
	var ok bool
	err := r.pool.QueryRow(ctx, sql, arg).Scan(&ok)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && !ok) {
		return fmt.Errorf("%s: %w", p.Role, auth.ErrInactive)
	}
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	return identity.Check(ctx, r.pool, p)
}
