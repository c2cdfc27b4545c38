package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"taxrefund/internal/agency"
	"taxrefund/internal/authority"
	"taxrefund/internal/db"
	"taxrefund/internal/desk"
	"taxrefund/internal/forms"
	"taxrefund/internal/immediate"
	"taxrefund/internal/ledger"
	"taxrefund/internal/params"
	"taxrefund/internal/payouts"
	"taxrefund/internal/pii"
	"taxrefund/internal/registry"
	"taxrefund/internal/risk"
	"taxrefund/internal/server"
	"taxrefund/internal/settlement"
	"taxrefund/internal/store"
)

// app is the wired service: one pool per service it runs, each acting as that service's
// database role (db.OpenPools), and the domain services over each pool.
type app struct {
	services []db.Service
	pools    db.Pools
	stacks   map[db.Service]*stack
	// reads is the pool of the authority's reads that may lag (-read-database-url); nil:
	// they read the authority's pool.
	reads *pgxpool.Pool
	log   *slog.Logger
}

// stack is the domain services over one pool, i.e. as one database role.
type stack struct {
	pool       *pgxpool.Pool
	forms      *forms.Service
	payouts    *payouts.Service
	registry   *registry.Service
	settlement *settlement.Service
	immediate  *immediate.Service
	risk       *risk.Service
}

func (a *app) has(s db.Service) bool { return a.stacks[s] != nil }

func (a *app) close() {
	a.pools.Close()
	if a.reads != nil {
		a.reads.Close()
	}
}

func newApp(ctx context.Context, cfg config, log *slog.Logger, services []db.Service, opts ...db.Option) (*app, error) {
	keys, err := pii.LoadKeyring(cfg.piiKeys)
	if err != nil {
		return nil, fmt.Errorf("PII keys (run `taxrefund certs` for development keys): %w", err)
	}
	pools, err := db.OpenPools(ctx, cfg.databaseURL, int32(cfg.maxConns), services, cfg.dbRole, opts...)
	if err != nil {
		return nil, err
	}
	a := &app{services: services, pools: pools, stacks: map[db.Service]*stack{}, log: log}
	led := ledger.NewStore()
	par := params.NewCache(pools.Any(), cfg.paramsTTL)
	byPool := map[*pgxpool.Pool]*stack{}
	var roles []string
	for _, s := range services {
		pool := pools[s]
		var user, role string
		if err := pool.QueryRow(ctx, `SELECT session_user, current_user`).Scan(&user, &role); err != nil {
			a.close()
			return nil, fmt.Errorf("database role of the %s service: %w", s, err)
		}
		roles = append(roles, string(s)+"="+role)
		if cfg.dbRole != "" && user != cfg.dbRole {
			log.Warn("the service could not log in as its role and uses SET ROLE: a statement could RESET ROLE to "+user+"; give the role a password or trust and log in as it",
				"role", cfg.dbRole)
		}
		if st := byPool[pool]; st != nil {
			a.stacks[s] = st
			continue
		}
		f := forms.New(forms.Deps{Pool: pool, Ledger: led, Keys: keys, Params: par, Log: log})
		st := &stack{
			pool: pool, forms: f,
			payouts:    payouts.New(payouts.Deps{Pool: pool, Ledger: led, Keys: keys, Params: par, Forms: f, Log: log}),
			immediate:  immediate.New(immediate.Deps{Pool: pool, Ledger: led, Keys: keys, Params: par, Forms: f, Log: log}),
			registry:   registry.New(pool, nil),
			settlement: settlement.New(pool, led, nil),
			risk:       risk.New(pool, par, nil),
		}
		byPool[pool], a.stacks[s] = st, st
	}
	log.Info("database roles", "services", strings.Join(roles, " "))
	if cfg.readDatabaseURL != "" && a.has(db.AuthorityService) {
		// The same role as the authority's pool: the replica holds the primary's grants.
		role := cfg.dbRole
		if role == "" {
			role = db.AuthorityService.Role()
		}
		if a.reads, err = db.OpenReadPool(ctx, cfg.readDatabaseURL, int32(cfg.maxConns), role, opts...); err != nil {
			a.close()
			return nil, err
		}
		rs, err := db.MeasureReplicaLag(ctx, a.reads)
		if err != nil {
			a.close()
			return nil, err
		}
		log.Info("reads that may lag go to the read pool", "replica", rs.Replica, "lag", rs.Lag, "role", role)
	}
	// Refuse to run with a key file that cannot read the stored document numbers (a fresh
	// development key file over an old database): look-ups would silently find nothing.
	// The check reads every form, as a party that may: the jobs', the authority's or
	// customs'. A process of the store service alone cannot (the store's role sees its
	// own forms only); the other services' processes check.
	if err := a.checkKeys(ctx); err != nil {
		a.close()
		var km *forms.KeyMismatchError
		if errors.As(err, &km) {
			return nil, fmt.Errorf("PII key file %s does not match the database: %w; restore the key file that holds them (-pii-keys), or start from an empty database", cfg.piiKeys, err)
		}
		return nil, err
	}
	return a, nil
}

func (a *app) checkKeys(ctx context.Context) error {
	for _, c := range []struct {
		service     db.Service
		role, party string
	}{{db.JobsService, "system", "keycheck"}, {db.AuthorityService, "authority", "keycheck"}, {db.DeskService, "customs", "keycheck"}} {
		if st := a.stacks[c.service]; st != nil {
			return st.forms.CheckKeys(db.WithParty(ctx, c.role, c.party))
		}
	}
	return nil
}

// grpcServices are the handlers of the gRPC services the app runs; the others are not
// registered, and a call to them is answered UNIMPLEMENTED.
func (a *app) grpcServices() server.Services {
	var s server.Services
	if st := a.stacks[db.StoreService]; st != nil {
		s.Store = store.New(st.forms)
	}
	if st := a.stacks[db.DeskService]; st != nil {
		s.Desk = desk.New(st.forms, st.payouts, st.immediate).WithRisk(st.risk)
		s.Agency = agency.New(st.settlement)
	}
	if st := a.stacks[db.AuthorityService]; st != nil {
		s.Authority = authority.New(authority.Deps{Expirer: st.forms, Pool: st.pool, Registry: st.registry, Settlement: st.settlement, Immediate: st.immediate, Reads: a.reads, Log: a.log})
	}
	return s
}
