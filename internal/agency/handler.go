// Package agency serves taxrefund.agency.v1.AgencyService: a refund agency's back office,
// or a cashier at one of its desks, declares the month's refunds and follows its
// declarations. An agency acts only for itself.
package agency

import (
	"context"

	agencyv1 "taxrefund/api/taxrefund/agency/v1"
	settlementv1 "taxrefund/api/taxrefund/settlement/v1"
	"taxrefund/internal/auth"
	"taxrefund/internal/fault"
	"taxrefund/internal/idempotency"
	"taxrefund/internal/settlement"
	"taxrefund/internal/wire"
)

// Handler implements AgencyService.
type Handler struct {
	agencyv1.UnimplementedAgencyServiceServer
	settlement *settlement.Service
}

// New returns a Handler.
func New(s *settlement.Service) *Handler { return &Handler{settlement: s} }

// agencyOf returns the caller's agency: named in a back-office certificate, or the
// agency of a cashier's desk.
func (h *Handler) agencyOf(ctx context.Context) (auth.Party, string, error) {
	p, ok := auth.FromContext(ctx)
	switch {
	case ok && p.Role == auth.RoleAgency:
		return p, p.Agency, nil
	case ok && p.Role == auth.RoleDesk:
		a, err := h.settlement.AgencyOfDesk(ctx, p.Desk)
		return p, a, err
	}
	return auth.Party{}, "", fault.New(fault.Denied, "NOT_AN_AGENCY", "only a refund agency may call this")
}

// DeclareMonth declares a past month's refunds.
func (h *Handler) DeclareMonth(ctx context.Context, req *agencyv1.DeclareMonthRequest) (*agencyv1.DeclareMonthResponse, error) {
	p, agency, err := h.agencyOf(ctx)
	if err != nil {
		return nil, err
	}
	f := wire.NewFields()
	rid := f.RequestID("request_id", req.GetRequestId())
	month := f.Month("month", req.GetMonth())
	if err := f.Err(); err != nil {
		return nil, err
	}
	d, err := h.settlement.Declare(ctx, idempotency.Key{Caller: p.String(), RequestID: rid, Hash: wire.CanonicalHash(req)}, agency, month)
	if err != nil {
		return nil, err
	}
	return &agencyv1.DeclareMonthResponse{Declaration: wire.Declaration(d)}, nil
}

// GetDeclaration returns one of the agency's declarations.
func (h *Handler) GetDeclaration(ctx context.Context, req *agencyv1.GetDeclarationRequest) (*agencyv1.GetDeclarationResponse, error) {
	_, agency, err := h.agencyOf(ctx)
	if err != nil {
		return nil, err
	}
	f := wire.NewFields()
	id := f.UUID("declaration_id", req.GetDeclarationId())
	if err := f.Err(); err != nil {
		return nil, err
	}
	d, err := h.settlement.Get(ctx, id, agency)
	if err != nil {
		return nil, err
	}
	return &agencyv1.GetDeclarationResponse{Declaration: wire.Declaration(d)}, nil
}

// ListDeclarations lists the agency's declarations.
func (h *Handler) ListDeclarations(ctx context.Context, _ *agencyv1.ListDeclarationsRequest) (*agencyv1.ListDeclarationsResponse, error) {
	_, agency, err := h.agencyOf(ctx)
	if err != nil {
		return nil, err
	}
	list, err := h.settlement.List(ctx, agency, nil, "")
	if err != nil {
		return nil, err
	}
	resp := &agencyv1.ListDeclarationsResponse{Declarations: make([]*settlementv1.Declaration, len(list))}
	for i, d := range list {
		resp.Declarations[i] = wire.Declaration(d)
	}
	return resp, nil
}
