package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"taxrefund/internal/auth"
)

// Registry answers whether a certificate's party is registered and may act, from the
// stores, desks and ports tables, with answers cached for a short TTL.
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

// NewRegistry returns a Registry; ttl 0 asks the database every time.
func NewRegistry(pool *pgxpool.Pool, ttl time.Duration) *Registry {
	return &Registry{pool: pool, ttl: ttl, cache: map[string]cached{}}
}

// Active is an auth.Authorizer hook: an unknown store, desk or port, or an exited store,
// is refused. A suspended store may still read and void its forms; it issues nothing
// (the database refuses its new forms).
func (r *Registry) Active(ctx context.Context, p auth.Party) error {
	key := p.String()
	r.mu.Lock()
	c, ok := r.cache[key]
	r.mu.Unlock()
	if ok && time.Since(c.at) < r.ttl {
		return c.err
	}
	err := r.check(ctx, p)
	if err != nil && !errors.Is(err, auth.ErrInactive) {
		return err // a database error is not cached
	}
	r.mu.Lock()
	r.cache[key] = cached{err: err, at: time.Now()}
	r.mu.Unlock()
	return err
}

func (r *Registry) check(ctx context.Context, p auth.Party) error {
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
		return nil
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
	return nil
}
