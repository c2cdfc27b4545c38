// Package desk serves taxrefund.desk.v1.DeskService at the ports of exit: customs
// officers confirm exports, the agency's cashiers pay refunds. Both act as the party of
// their client certificate: an officer at their port, a cashier at their desk.
package desk

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	deskv1 "taxrefund/api/taxrefund/desk/v1"
	formv1 "taxrefund/api/taxrefund/form/v1"
	"taxrefund/internal/auth"
	"taxrefund/internal/fault"
	"taxrefund/internal/forms"
	"taxrefund/internal/immediate"
	"taxrefund/internal/payouts"
	"taxrefund/internal/refund"
	"taxrefund/internal/risk"
	"taxrefund/internal/wire"
)

// Forms is what the handler needs of the forms service.
type Forms interface {
	FindByDocument(ctx context.Context, doc refund.Document) ([]forms.Form, error)
	FindByNumber(ctx context.Context, number string) (forms.Form, error)
	Verify(ctx context.Context, req forms.VerifyRequest) (forms.Form, error)
}

// Payouts is what the handler needs of the payouts service.
type Payouts interface {
	Settle(ctx context.Context, req payouts.SettleRequest) (payouts.Payout, error)
	Get(ctx context.Context, desk string, id uuid.UUID) (payouts.Payout, error)
}

// Prepayments is what the handler needs of the immediate refund service.
type Prepayments interface {
	Pay(ctx context.Context, req immediate.PayRequest) (immediate.Prepayment, error)
	Return(ctx context.Context, req immediate.ReturnRequest) (immediate.Prepayment, error)
}

// Risk is what the handler needs of the risk service (DOMAIN.md §8a).
type Risk interface {
	Assess(ctx context.Context, numbers []string) (map[string]risk.Rated, error)
	Flag(ctx context.Context, number string, r risk.Rated) error
	Inspect(ctx context.Context, req risk.InspectRequest) (risk.Inspection, error)
}

// Handler implements DeskService.
type Handler struct {
	deskv1.UnimplementedDeskServiceServer
	forms       Forms
	payouts     Payouts
	prepayments Prepayments
	risk        Risk
}

// New returns a Handler.
func New(f Forms, p Payouts, pre Prepayments) *Handler {
	return &Handler{forms: f, payouts: p, prepayments: pre}
}

// WithRisk rates forms for customs: FindForms and VerifyExport carry each ISSUED form's
// assessment, VerifyExport refuses a RED form until it passed an inspection, and
// RecordInspection records one. Without it no form is rated.
func (h *Handler) WithRisk(r Risk) *Handler {
	h.risk = r
	return h
}

func caller(ctx context.Context, roles ...auth.Role) (auth.Party, error) {
	p, ok := auth.FromContext(ctx)
	if ok {
		for _, r := range roles {
			if p.Role == r {
				return p, nil
			}
		}
	}
	return auth.Party{}, fault.New(fault.Denied, "WRONG_ROLE", fmt.Sprintf("only %v may call this", roles))
}

// FindForms finds a traveller's forms, or one form by number.
func (h *Handler) FindForms(ctx context.Context, req *deskv1.FindFormsRequest) (*deskv1.FindFormsResponse, error) {
	if _, err := caller(ctx, auth.RoleCustoms, auth.RoleDesk); err != nil {
		return nil, err
	}
	var found []forms.Form
	switch q := req.GetQuery().(type) {
	case *deskv1.FindFormsRequest_Document:
		f := wire.NewFields()
		doc := f.Document("document", q.Document)
		if err := f.Err(); err != nil {
			return nil, err
		}
		list, err := h.forms.FindByDocument(ctx, doc)
		if err != nil {
			return nil, err
		}
		found = list
	case *deskv1.FindFormsRequest_FormNumber:
		form, err := h.forms.FindByNumber(ctx, q.FormNumber)
		if err != nil {
			return nil, err
		}
		found = []forms.Form{form}
	default:
		return nil, fault.Field(fault.Invalid, "INVALID_REQUEST", "query", "give a document or a form number")
	}
	resp := &deskv1.FindFormsResponse{Forms: make([]*formv1.Form, len(found))}
	var issued []string
	for i, f := range found {
		resp.Forms[i] = wire.Form(f)
		if f.State == refund.Issued {
			issued = append(issued, f.Number)
		}
	}
	if h.risk != nil && len(issued) > 0 {
		rated, err := h.risk.Assess(ctx, issued)
		if err != nil {
			return nil, err
		}
		for _, n := range issued {
			if r, ok := rated[n]; ok {
				resp.Risks = append(resp.Risks, wire.RiskAssessment(n, r))
			}
		}
	}
	return resp, nil
}

// VerifyExport records a customs confirmation at the officer's port.
func (h *Handler) VerifyExport(ctx context.Context, req *deskv1.VerifyExportRequest) (*deskv1.VerifyExportResponse, error) {
	p, err := caller(ctx, auth.RoleCustoms)
	if err != nil {
		return nil, err
	}
	f := wire.NewFields()
	rid := f.RequestID("request_id", req.GetRequestId())
	doc := f.Document("presented_document", req.GetPresentedDocument())
	confirmed := map[int]int32{}
	serials := map[int]string{}
	lines := req.GetLines()
	switch {
	case len(lines) == 0:
		f.Add("lines", "confirm every line of the form (0 for goods not presented)")
	case len(lines) > wire.MaxLines:
		// Refused before anything is built per confirmation: a form has at most MaxLines
		// lines, so more confirmations can only be hostile or broken.
		f.Add("lines", "%d line confirmations: a form has at most %d lines", len(lines), wire.MaxLines)
		lines = nil
	}
	for i, l := range lines {
		if _, dup := confirmed[int(l.GetLineNo())]; dup {
			f.Add(fmt.Sprintf("lines[%d].line_no", i), "line %d is confirmed twice", l.GetLineNo())
		}
		if l.GetConfirmedQuantity() < 0 {
			f.Add(fmt.Sprintf("lines[%d].confirmed_quantity", i), "must not be negative")
		}
		confirmed[int(l.GetLineNo())] = l.GetConfirmedQuantity()
		if l.GetSerialNumber() != "" {
			serial, ok := risk.ParseSerial(l.GetSerialNumber())
			if !ok {
				f.Add(fmt.Sprintf("lines[%d].serial_number", i), "must be 1 to 64 letters, digits, '.', '/' or '-'")
			}
			serials[int(l.GetLineNo())] = serial
		}
	}
	if err := f.Err(); err != nil {
		return nil, err
	}
	var assessment *deskv1.RiskAssessment
	if h.risk != nil {
		// The rating is read before the confirmation's transaction: what it reads only
		// grows (inspections are never removed, a failed one is final, the serial numbers
		// never change), so a confirmation it lets through stays right to let through.
		rated, err := h.risk.Assess(ctx, []string{req.GetFormNumber()})
		if err != nil {
			return nil, err
		}
		if r, ok := rated[req.GetFormNumber()]; ok {
			if err := h.risk.Flag(ctx, req.GetFormNumber(), r); err != nil {
				return nil, err
			}
			if err := r.Gate(req.GetFormNumber(), confirmed, serials); err != nil {
				return nil, err
			}
			assessment = wire.RiskAssessment(req.GetFormNumber(), r)
		}
	}
	form, err := h.forms.Verify(ctx, forms.VerifyRequest{
		Idem:      forms.Idempotency{Caller: p.String(), RequestID: rid, Hash: wire.CanonicalHash(req)},
		Port:      p.Port,
		Officer:   p.Officer,
		Number:    req.GetFormNumber(),
		Presented: doc,
		Confirmed: confirmed,
	})
	if err != nil {
		return nil, err
	}
	return &deskv1.VerifyExportResponse{Form: wire.Form(form), Risk: assessment}, nil
}

// RecordInspection records a customs inspection of a form at the officer's port.
func (h *Handler) RecordInspection(ctx context.Context, req *deskv1.RecordInspectionRequest) (*deskv1.RecordInspectionResponse, error) {
	p, err := caller(ctx, auth.RoleCustoms)
	if err != nil {
		return nil, err
	}
	if h.risk == nil {
		return nil, fault.New(fault.Unavailable, "RISK_NOT_CONFIGURED", "this server does not rate forms")
	}
	f := wire.NewFields()
	rid := f.RequestID("request_id", req.GetRequestId())
	note := f.Text("note", req.GetNote(), 500, true)
	result, ok := wire.InspectionResult(req.GetResult())
	if !ok {
		f.Add("result", "must be INSPECTION_RESULT_PASSED or INSPECTION_RESULT_FAILED")
	}
	if err := f.Err(); err != nil {
		return nil, err
	}
	out, err := h.risk.Inspect(ctx, risk.InspectRequest{
		Idem:    forms.Idempotency{Caller: p.String(), RequestID: rid, Hash: wire.CanonicalHash(req)},
		Port:    p.Port,
		Officer: p.Officer,
		Number:  req.GetFormNumber(),
		Result:  result,
		Note:    note,
	})
	if err != nil {
		return nil, err
	}
	return &deskv1.RecordInspectionResponse{Inspection: wire.Inspection(out)}, nil
}

// SettleRefund pays VERIFIED forms of one traveller at the cashier's desk.
func (h *Handler) SettleRefund(ctx context.Context, req *deskv1.SettleRefundRequest) (*deskv1.SettleRefundResponse, error) {
	p, err := caller(ctx, auth.RoleDesk)
	if err != nil {
		return nil, err
	}
	f := wire.NewFields()
	rid := f.RequestID("request_id", req.GetRequestId())
	doc := f.Document("presented_document", req.GetPresentedDocument())
	receipt := f.Text("receipt_reference", req.GetReceiptReference(), 64, false)
	if err := f.Err(); err != nil {
		return nil, err
	}
	cashier := p.Cashier
	if cashier == "" {
		cashier = p.Desk
	}
	payout, err := h.payouts.Settle(ctx, payouts.SettleRequest{
		Idem:      forms.Idempotency{Caller: p.String(), RequestID: rid, Hash: wire.CanonicalHash(req)},
		DeskCode:  p.Desk,
		Cashier:   cashier,
		Numbers:   req.GetFormNumbers(),
		Presented: doc,
		Method:    wire.Method(req.GetMethod()),
		Account:   req.GetAccountReference(),
		Receipt:   receipt,
	})
	if err != nil {
		return nil, err
	}
	return &deskv1.SettleRefundResponse{Payout: wire.Payout(payout)}, nil
}

// GetPayout returns a payout of the cashier's agency.
func (h *Handler) GetPayout(ctx context.Context, req *deskv1.GetPayoutRequest) (*deskv1.GetPayoutResponse, error) {
	p, err := caller(ctx, auth.RoleDesk)
	if err != nil {
		return nil, err
	}
	id, err := uuid.Parse(req.GetPayoutId())
	if err != nil {
		return nil, fault.Field(fault.Invalid, "INVALID_REQUEST", "payout_id", "must be a payout id (UUID)")
	}
	payout, err := h.payouts.Get(ctx, p.Desk, id)
	if err != nil {
		return nil, err
	}
	return &deskv1.GetPayoutResponse{Payout: wire.Payout(payout)}, nil
}

// PayImmediateRefund pays a form's net refund at a block refund point.
func (h *Handler) PayImmediateRefund(ctx context.Context, req *deskv1.PayImmediateRefundRequest) (*deskv1.PayImmediateRefundResponse, error) {
	p, err := caller(ctx, auth.RoleDesk)
	if err != nil {
		return nil, err
	}
	f := wire.NewFields()
	rid := f.RequestID("request_id", req.GetRequestId())
	doc := f.Document("presented_document", req.GetPresentedDocument())
	pre := f.PreAuth("pre_authorization", req.GetPreAuthorization())
	agreement := f.Text("agreement_reference", req.GetAgreementReference(), 64, false)
	var committed time.Time
	if req.GetCommittedDate() != "" {
		committed = f.Date("committed_date", req.GetCommittedDate())
	}
	if err := f.Err(); err != nil {
		return nil, err
	}
	cashier := p.Cashier
	if cashier == "" {
		cashier = p.Desk
	}
	out, err := h.prepayments.Pay(ctx, immediate.PayRequest{
		Idem:          forms.Idempotency{Caller: p.String(), RequestID: rid, Hash: wire.CanonicalHash(req)},
		DeskCode:      p.Desk,
		Cashier:       cashier,
		Number:        req.GetFormNumber(),
		Presented:     doc,
		Agreement:     agreement,
		PreAuth:       pre,
		DeparturePort: req.GetDeparturePort(),
		CommittedDate: committed,
	})
	if err != nil {
		return nil, err
	}
	return &deskv1.PayImmediateRefundResponse{Prepayment: wire.Prepayment(out)}, nil
}

// ReturnPrepayment records a prepayment handed back before departure.
func (h *Handler) ReturnPrepayment(ctx context.Context, req *deskv1.ReturnPrepaymentRequest) (*deskv1.ReturnPrepaymentResponse, error) {
	p, err := caller(ctx, auth.RoleDesk)
	if err != nil {
		return nil, err
	}
	f := wire.NewFields()
	rid := f.RequestID("request_id", req.GetRequestId())
	if err := f.Err(); err != nil {
		return nil, err
	}
	out, err := h.prepayments.Return(ctx, immediate.ReturnRequest{
		Idem:     forms.Idempotency{Caller: p.String(), RequestID: rid, Hash: wire.CanonicalHash(req)},
		DeskCode: p.Desk,
		Number:   req.GetFormNumber(),
	})
	if err != nil {
		return nil, err
	}
	return &deskv1.ReturnPrepaymentResponse{Prepayment: wire.Prepayment(out)}, nil
}
