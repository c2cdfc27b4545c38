package wire

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	deskv1 "taxrefund/api/taxrefund/desk/v1"
	"taxrefund/internal/money"
	"taxrefund/internal/payouts"
)

var methods = map[payouts.Method]deskv1.PaymentMethod{
	payouts.Cash:     deskv1.PaymentMethod_PAYMENT_METHOD_CASH,
	payouts.BankCard: deskv1.PaymentMethod_PAYMENT_METHOD_BANK_CARD,
	payouts.Mobile:   deskv1.PaymentMethod_PAYMENT_METHOD_MOBILE,
}

// Method maps an API payment method ("" if unspecified or unknown).
func Method(m deskv1.PaymentMethod) payouts.Method {
	for k, v := range methods {
		if v == m {
			return k
		}
	}
	return ""
}

// Payout renders a payout.
func Payout(p payouts.Payout) *deskv1.Payout {
	out := &deskv1.Payout{
		PayoutId:         p.ID.String(),
		DeskCode:         p.DeskCode,
		AgencyCode:       p.AgencyCode,
		Port:             p.Port,
		Cashier:          p.Cashier,
		Method:           methods[p.Method],
		AccountReference: p.AccountMasked,
		ReceiptReference: p.ReceiptReference,
		PaidAt:           timestamppb.New(p.PaidAt),
		Document:         DocumentSummary(p.DocType, p.DocCountry, p.DocMasked),
		FeeRate:          p.FeeRate.String(),
		GrossRefund:      money.Format(p.Gross),
		Fee:              money.Format(p.Fee),
		NetRefund:        money.Format(p.Net),
	}
	for _, f := range p.Forms {
		out.Forms = append(out.Forms, &deskv1.PayoutForm{
			FormNumber: f.Number, EligibleAmount: money.Format(f.Eligible), GrossRefund: money.Format(f.Gross),
			Fee: money.Format(f.Fee), NetRefund: money.Format(f.Net),
		})
	}
	return out
}
