// Package authority serves taxrefund.authority.v1.AuthorityService for tax officials.
package authority

import (
	"context"

	authorityv1 "taxrefund/api/taxrefund/authority/v1"
	"taxrefund/internal/auth"
	"taxrefund/internal/fault"
	"taxrefund/internal/invariants"
	"taxrefund/internal/ledger"
)

// Expirer runs the expiry of overdue forms.
type Expirer interface {
	Expire(ctx context.Context, actor string) (int, error)
}

// Handler implements AuthorityService.
type Handler struct {
	authorityv1.UnimplementedAuthorityServiceServer
	expirer Expirer
	db      ledger.Querier
}

// New returns a Handler.
func New(e Expirer, db ledger.Querier) *Handler { return &Handler{expirer: e, db: db} }

func caller(ctx context.Context) (auth.Party, error) {
	p, ok := auth.FromContext(ctx)
	if !ok || p.Role != auth.RoleAuthority {
		return auth.Party{}, fault.New(fault.Denied, "NOT_THE_AUTHORITY", "only the tax authority may call this")
	}
	return p, nil
}

// RunExpiry expires overdue forms now.
func (h *Handler) RunExpiry(ctx context.Context, _ *authorityv1.RunExpiryRequest) (*authorityv1.RunExpiryResponse, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	n, err := h.expirer.Expire(ctx, p.String())
	if err != nil {
		return nil, err
	}
	return &authorityv1.RunExpiryResponse{Expired: int64(n)}, nil
}

// CheckInvariants checks DOMAIN.md §8's invariants over the whole database.
func (h *Handler) CheckInvariants(ctx context.Context, _ *authorityv1.CheckInvariantsRequest) (*authorityv1.CheckInvariantsResponse, error) {
	if _, err := caller(ctx); err != nil {
		return nil, err
	}
	found, err := invariants.Check(ctx, h.db)
	if err != nil {
		return nil, err
	}
	resp := &authorityv1.CheckInvariantsResponse{Ok: len(found) == 0}
	for _, v := range found {
		resp.Violations = append(resp.Violations, &authorityv1.Violation{Invariant: v.Invariant, Detail: v.Detail})
	}
	return resp, nil
}
