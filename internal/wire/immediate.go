package wire

import (
	"regexp"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	deskv1 "taxrefund/api/taxrefund/desk/v1"
	"taxrefund/internal/immediate"
	"taxrefund/internal/money"
	"taxrefund/internal/refund"
)

var prepaymentStates = map[string]deskv1.PrepaymentState{
	immediate.Prepaid:   deskv1.PrepaymentState_PREPAYMENT_STATE_PREPAID,
	immediate.Completed: deskv1.PrepaymentState_PREPAYMENT_STATE_COMPLETED,
	immediate.Captured:  deskv1.PrepaymentState_PREPAYMENT_STATE_CAPTURED,
	immediate.Returned:  deskv1.PrepaymentState_PREPAYMENT_STATE_RETURNED,
}

// Prepayment renders a prepayment (the card only as its last four digits and expiry).
func Prepayment(p immediate.Prepayment) *deskv1.Prepayment {
	return &deskv1.Prepayment{
		PrepaymentId: p.ID.String(), FormNumber: p.FormNumber, DeskCode: p.DeskCode, AgencyCode: p.AgencyCode,
		State: prepaymentStates[p.State], AgreementReference: p.AgreementReference, CardLast4: p.CardLast4,
		CardExpiry: p.CardExpiry.Format("2006-01"), AuthorizedAmount: money.Format(p.AuthorizedAmount),
		GrossRefund: money.Format(p.GrossRefund), Fee: money.Format(p.Fee), NetRefund: money.Format(p.NetRefund),
		CommittedDate: refund.FormatDate(p.CommittedDate), DesignatedPorts: p.DesignatedPorts,
		CaptureDue: refund.FormatDate(p.CaptureDue), PaidAt: timestamppb.New(p.PaidAt),
	}
}

var expiryPattern = regexp.MustCompile(`^[0-9]{4}-(0[1-9]|1[0-2])$`)

// PreAuth parses a pre-authorization's amounts and dates; token and digits are checked
// by package immediate.
func (f *Fields) PreAuth(field string, p *deskv1.PreAuthorization) immediate.PreAuth {
	if p == nil {
		f.Add(field, "is required")
		return immediate.PreAuth{}
	}
	out := immediate.PreAuth{Token: p.GetAcquirerToken(), Last4: p.GetCardLast4()}
	if expiryPattern.MatchString(p.GetCardExpiry()) {
		out.Expiry, _ = time.Parse("2006-01", p.GetCardExpiry())
	} else {
		f.Add(field+".card_expiry", "must be the card's expiry month YYYY-MM")
	}
	out.Authorized = f.Amount(field+".authorized_amount", p.GetAuthorizedAmount())
	return out
}
