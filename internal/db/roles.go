package db

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

// The database roles (migrations/00011_least_privilege.sql): each service acts as its
// own, which holds only what that service needs; OwnerRole owns the tables. None logs in:
// a process logs in as the URL's user and switches with SET ROLE.
const (
	OwnerRole     = "taxrefund_owner"
	StoreRole     = "taxrefund_store"
	DeskRole      = "taxrefund_desk"
	AuthorityRole = "taxrefund_authority"
	JobsRole      = "taxrefund_jobs"
)

// Service is a part of the server that can run in a process of its own: one of the
// gRPC audiences, or the background jobs.
type Service string

const (
	// StoreService is StoreService (stores' POS).
	StoreService Service = "store"
	// DeskService is DeskService and AgencyService (customs, cashiers, refund points, agencies).
	DeskService Service = "desk"
	// AuthorityService is AuthorityService.
	AuthorityService Service = "authority"
	// JobsService is the background jobs: expiry, captures, sealing, the acquirer dispatcher,
	// the periodic checks and the business metrics.
	JobsService Service = "jobs"
)

// AllServices returns what one process runs by default, in a fixed order.
func AllServices() []Service {
	return []Service{StoreService, DeskService, AuthorityService, JobsService}
}

// Role returns the database role s acts as.
func (s Service) Role() string {
	switch s {
	case StoreService:
		return StoreRole
	case DeskService:
		return DeskRole
	case AuthorityService:
		return AuthorityRole
	case JobsService:
		return JobsRole
	}
	return ""
}

// ParseServices reads a comma-separated list of services ("store,desk"; "all" for
// every one), in AllServices' order, without repeats.
func ParseServices(list string) ([]Service, error) {
	if strings.TrimSpace(list) == "all" {
		return AllServices(), nil
	}
	var out []Service
	for _, name := range strings.Split(list, ",") {
		s := Service(strings.TrimSpace(name))
		if s.Role() == "" {
			return nil, fmt.Errorf("unknown service %q: want a comma-separated list of store, desk, authority, jobs, or all", name)
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b Service) int { return slices.Index(AllServices(), a) - slices.Index(AllServices(), b) })
	return out, nil
}

// Pools are a process's database pools, one per service it runs, each acting as that
// service's role.
type Pools map[Service]*pgxpool.Pool

// OpenPools opens one pool of at most maxConns connections per service, acting as the
// service's role, or as role for all of them when role is not empty (one pool, shared:
// AppRole is the union of the four). A pool connects lazily beyond its first connection,
// so a service that is never called holds one connection.
func OpenPools(ctx context.Context, url string, maxConns int32, services []Service, role string, opts ...Option) (Pools, error) {
	out := Pools{}
	var shared *pgxpool.Pool
	for _, s := range services {
		if role != "" && shared != nil {
			out[s] = shared
			continue
		}
		r := role
		if r == "" {
			r = s.Role()
		}
		pool, err := OpenAs(ctx, url, maxConns, r, opts...)
		if err != nil {
			out.Close()
			return nil, fmt.Errorf("pool of the %s service: %w", s, err)
		}
		out[s], shared = pool, pool
	}
	return out, nil
}

// Any returns one of the pools, in AllServices' order (nil when there is none).
func (p Pools) Any() *pgxpool.Pool {
	for _, s := range AllServices() {
		if pool, ok := p[s]; ok {
			return pool
		}
	}
	return nil
}

// List returns each distinct pool once, in AllServices' order.
func (p Pools) List() []*pgxpool.Pool {
	var out []*pgxpool.Pool
	for _, s := range AllServices() {
		if pool, ok := p[s]; ok && !slices.Contains(out, pool) {
			out = append(out, pool)
		}
	}
	return out
}

// Close closes every pool once.
func (p Pools) Close() {
	closed := map[*pgxpool.Pool]bool{}
	for _, pool := range p {
		if !closed[pool] {
			closed[pool] = true
			pool.Close()
		}
	}
}
