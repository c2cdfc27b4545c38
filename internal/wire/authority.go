package wire

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	authorityv1 "taxrefund/api/taxrefund/authority/v1"
	settlementv1 "taxrefund/api/taxrefund/settlement/v1"
	"taxrefund/internal/anchor"
	"taxrefund/internal/money"
	"taxrefund/internal/refund"
	"taxrefund/internal/registry"
	"taxrefund/internal/report"
	"taxrefund/internal/settlement"
)

var storeStatuses = map[string]authorityv1.StoreStatus{
	registry.Active:    authorityv1.StoreStatus_STORE_STATUS_ACTIVE,
	registry.Suspended: authorityv1.StoreStatus_STORE_STATUS_SUSPENDED,
	registry.Exited:    authorityv1.StoreStatus_STORE_STATUS_EXITED,
}

// StoreStatus maps an API store status ("" for unspecified, ok=false if unknown).
func StoreStatus(s authorityv1.StoreStatus) (string, bool) {
	if s == authorityv1.StoreStatus_STORE_STATUS_UNSPECIFIED {
		return "", true
	}
	for k, v := range storeStatuses {
		if v == s {
			return k, true
		}
	}
	return "", false
}

// Store renders a registered store.
func Store(s registry.Store) *authorityv1.Store {
	return &authorityv1.Store{
		Code: s.Code, CreditCode: s.CreditCode, Name: s.Name, BlockCode: s.BlockCode, CreditGrade: s.CreditGrade,
		ImmediateRefund: s.ImmediateRefund, Status: storeStatuses[s.Status], RegisteredAt: timestamppb.New(s.CreatedAt),
		UnderReview: s.UnderReview,
	}
}

// Parameter renders a parameter.
func Parameter(p registry.Parameter) *authorityv1.Parameter {
	return &authorityv1.Parameter{Name: p.Name, Scope: p.Scope, ValidFrom: refund.FormatDate(p.ValidFrom), Value: p.Value.String(), Note: p.Note}
}

var declarationStatuses = map[string]settlementv1.DeclarationStatus{
	settlement.Declared: settlementv1.DeclarationStatus_DECLARATION_STATUS_DECLARED,
	settlement.Returned: settlementv1.DeclarationStatus_DECLARATION_STATUS_RETURNED,
	settlement.Approved: settlementv1.DeclarationStatus_DECLARATION_STATUS_APPROVED,
}

// DeclarationStatus maps an API declaration status ("" for unspecified, ok=false if unknown).
func DeclarationStatus(s settlementv1.DeclarationStatus) (string, bool) {
	if s == settlementv1.DeclarationStatus_DECLARATION_STATUS_UNSPECIFIED {
		return "", true
	}
	for k, v := range declarationStatuses {
		if v == s {
			return k, true
		}
	}
	return "", false
}

// DeclarationStatusOf maps a stored declaration status to the API's (ok=false if unknown).
func DeclarationStatusOf(s string) (settlementv1.DeclarationStatus, bool) {
	st, ok := declarationStatuses[s]
	return st, ok
}

// Declaration renders a settlement declaration.
func Declaration(d settlement.Declaration) *settlementv1.Declaration {
	out := &settlementv1.Declaration{
		DeclarationId: d.ID.String(), AgencyCode: d.AgencyCode, Month: settlement.FormatMonth(d.Month),
		Status: declarationStatuses[d.Status], DeclaredBy: d.DeclaredBy, DeclaredAt: timestamppb.New(d.DeclaredAt),
		ReviewedAt: Timestamp(d.ReviewedAt), ReturnReasons: d.ReturnReasons, Forms: int64(d.Forms),
		GrossRefund: money.Format(d.GrossRefund), Fee: money.Format(d.Fee), NetRefund: money.Format(d.NetRefund),
	}
	if d.ReviewedBy != nil {
		out.ReviewedBy = *d.ReviewedBy
	}
	out.Checkpoints = Checkpoints(d.Checkpoints)
	for _, l := range d.Lines {
		out.Lines = append(out.Lines, &settlementv1.DeclarationLine{
			FormNumber: l.FormNumber, PayoutId: l.PayoutID.String(), StoreCode: l.StoreCode, VerifiedPort: l.VerifiedPort,
			VerifiedAt: timestamppb.New(l.VerifiedAt), ReceiptReference: l.Receipt, PaidAt: timestamppb.New(l.PaidAt),
			GrossRefund: money.Format(l.Gross), Fee: money.Format(l.Fee), NetRefund: money.Format(l.Net),
		})
	}
	return out
}

// Checkpoints renders signed chain checkpoints.
func Checkpoints(cps []anchor.Checkpoint) []*settlementv1.Checkpoint {
	var out []*settlementv1.Checkpoint
	for _, c := range cps {
		out = append(out, &settlementv1.Checkpoint{Chain: c.Chain, Seq: c.Seq, RowId: c.RowID, Head: c.Head,
			SignedAt: timestamppb.New(c.Time), Reason: c.Reason, Month: c.Month, KeyId: c.KeyID, Signature: c.Signature})
	}
	return out
}

// ReportRow renders a monthly report row.
func ReportRow(r report.Row) *authorityv1.ReportRow {
	return &authorityv1.ReportRow{
		Dimension: r.Dimension, Key: r.Key, FormsIssued: r.FormsIssued, EligibleAmount: money.Format(r.Eligible),
		GrossRefund: money.Format(r.Gross), FormsVoided: r.FormsVoided, FormsExpired: r.FormsExpired,
		FormsPaid: r.FormsPaid, PaidGross: money.Format(r.PaidGross), PaidFee: money.Format(r.PaidFee), PaidNet: money.Format(r.PaidNet),
		FormsOutstanding: r.FormsOutstanding, OutstandingGross: money.Format(r.OutstandingGross),
	}
}
