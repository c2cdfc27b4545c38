package wire

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	formv1 "taxrefund/api/taxrefund/form/v1"
	"taxrefund/internal/forms"
	"taxrefund/internal/money"
	"taxrefund/internal/refund"
)

var (
	docTypes = map[refund.DocumentType]formv1.DocumentType{
		refund.Passport:      formv1.DocumentType_DOCUMENT_TYPE_PASSPORT,
		refund.HKMacaoPermit: formv1.DocumentType_DOCUMENT_TYPE_HK_MACAO_PERMIT,
		refund.TaiwanPermit:  formv1.DocumentType_DOCUMENT_TYPE_TAIWAN_PERMIT,
	}
	states = map[refund.State]formv1.FormState{
		refund.Issued:   formv1.FormState_FORM_STATE_ISSUED,
		refund.Verified: formv1.FormState_FORM_STATE_VERIFIED,
		refund.Rejected: formv1.FormState_FORM_STATE_REJECTED,
		refund.Refunded: formv1.FormState_FORM_STATE_REFUNDED,
		refund.Voided:   formv1.FormState_FORM_STATE_VOIDED,
		refund.Expired:  formv1.FormState_FORM_STATE_EXPIRED,
		refund.Settled:  formv1.FormState_FORM_STATE_SETTLED,
	}
)

// State maps an API form state to the domain's ("" for unspecified, ok=false if unknown).
func State(s formv1.FormState) (refund.State, bool) {
	if s == formv1.FormState_FORM_STATE_UNSPECIFIED {
		return "", true
	}
	for k, v := range states {
		if v == s {
			return k, true
		}
	}
	return "", false
}

// DocumentSummary renders a document without its number in clear.
func DocumentSummary(t refund.DocumentType, country, masked string) *formv1.DocumentSummary {
	return &formv1.DocumentSummary{Type: docTypes[t], MaskedNumber: masked, IssuingCountry: country}
}

// Form renders a form.
func Form(f forms.Form) *formv1.Form {
	out := &formv1.Form{
		Number:         f.Number,
		StoreCode:      f.StoreCode,
		State:          states[f.State],
		Document:       DocumentSummary(f.DocType, f.DocCountry, f.DocMasked),
		Nationality:    f.Nationality,
		PurchaseDate:   refund.FormatDate(f.PurchaseDate),
		IssuedAt:       timestamppb.New(f.IssuedAt),
		EligibleAmount: money.Format(f.Eligible),
		GrossRefund:    money.Format(f.Gross),
		ExportDeadline: refund.FormatDate(f.ExportDeadline),
		ClosedAt:       Timestamp(f.ClosedAt),
	}
	for _, inv := range f.Invoices {
		out.Invoices = append(out.Invoices, &formv1.Invoice{Number: inv.Number, Date: refund.FormatDate(inv.Date)})
	}
	for i, l := range f.Lines {
		line := &formv1.Line{
			LineNo:        int32(l.No),
			Description:   l.Description,
			Category:      categoryPB(l.Category),
			VatRate:       l.VATRate.String(),
			Quantity:      l.Quantity,
			Amount:        money.Format(l.Amount),
			InvoiceNumber: l.InvoiceNumber,
			RefundRate:    l.RefundRate.String(),
			Refund:        money.Format(f.LineRefund(i)),
		}
		if l.ConfirmedQty != nil {
			line.ConfirmedQuantity = proto.Int32(*l.ConfirmedQty)
		}
		out.Lines = append(out.Lines, line)
	}
	if v := f.Verification; v != nil {
		out.Verification = &formv1.Verification{
			Port: v.Port, Officer: v.Officer, VerifiedAt: timestamppb.New(v.At),
			ConfirmedEligibleAmount: money.Format(v.Eligible), ConfirmedGrossRefund: money.Format(v.Gross),
		}
	}
	if f.PayoutID != nil {
		out.PayoutId = f.PayoutID.String()
	}
	return out
}

func categoryPB(c refund.Category) formv1.GoodsCategory {
	name := "GOODS_CATEGORY_" + string(c)
	return formv1.GoodsCategory(formv1.GoodsCategory_value[name])
}
