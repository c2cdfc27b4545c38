package console

import (
	"net/http"
	"strings"

	"github.com/google/uuid"

	deskv1 "taxrefund/api/taxrefund/desk/v1"
	"taxrefund/internal/payouts"
)

const (
	mPayImmediate = "/taxrefund.desk.v1.DeskService/PayImmediateRefund"
	mReturnPrepay = "/taxrefund.desk.v1.DeskService/ReturnPrepayment"
)

type refundPointContent struct {
	Desk       payouts.Desk
	Doc        docForm
	DocTypes   []string
	Prepayment *deskv1.Prepayment
	// The immediate refund form as typed, kept when a payment is refused.
	FormNumber, Agreement, Token, Last4, Expiry, Authorized, Port, Committed string
	PayRequestID, ReturnRequestID                                            string
}

func (c *Console) refundPointPage(w http.ResponseWriter, r *http.Request, s *session) {
	p := c.pageFor(s, "/refund-point", "nav.refundpoint")
	content := refundPointContent{DocTypes: docTypes, Doc: docForm{Type: "PASSPORT"}, Port: "TFU", PayRequestID: uuid.NewString(), ReturnRequestID: uuid.NewString()}
	code := http.StatusOK
	d, err := c.deskOf(r.Context(), s)
	if err != nil {
		p.Error, code = errText(err), http.StatusUnprocessableEntity
	}
	content.Desk = d
	p.Content = content
	c.render(w, r, code, "refundpoint", p)
}

func (c *Console) refundPointPost(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	p := c.pageFor(s, "/refund-point", "nav.refundpoint")
	v := func(k string) string { return strings.TrimSpace(r.PostFormValue(k)) }
	content := refundPointContent{DocTypes: docTypes, Doc: readDoc(r), FormNumber: v("form_number"), Agreement: v("agreement"), Token: v("token"),
		Last4: v("last4"), Expiry: v("expiry"), Authorized: v("authorized"), Port: v("port"), Committed: v("committed"),
		PayRequestID: uuid.NewString(), ReturnRequestID: uuid.NewString()}
	code := http.StatusOK
	d, err := c.deskOf(ctx, s)
	if err != nil {
		p.Error, code = errText(err), http.StatusUnprocessableEntity
	}
	content.Desk = d
	switch r.PostFormValue("action") {
	case "pay":
		req := &deskv1.PayImmediateRefundRequest{RequestId: r.PostFormValue("request_id"), FormNumber: content.FormNumber, PresentedDocument: content.Doc.proto(),
			AgreementReference: content.Agreement, DeparturePort: content.Port, CommittedDate: content.Committed,
			PreAuthorization: &deskv1.PreAuthorization{AcquirerToken: content.Token, CardLast4: content.Last4, CardExpiry: content.Expiry, AuthorizedAmount: content.Authorized}}
		resp, err := call(ctx, c, s, mPayImmediate, req, c.d.Desk.PayImmediateRefund)
		if err != nil {
			p.Error, code = errText(err), http.StatusUnprocessableEntity
		} else {
			content.Prepayment, p.Notice = resp.GetPrepayment(), "rp.paid"
			// The card token is spent: the next traveller starts from an empty form.
			content.Token, content.Last4, content.Expiry, content.Authorized, content.Agreement = "", "", "", "", ""
		}
	case "return":
		resp, err := call(ctx, c, s, mReturnPrepay, &deskv1.ReturnPrepaymentRequest{RequestId: r.PostFormValue("request_id"), FormNumber: content.FormNumber}, c.d.Desk.ReturnPrepayment)
		if err != nil {
			p.Error, code = errText(err), http.StatusUnprocessableEntity
		} else {
			content.Prepayment, p.Notice = resp.GetPrepayment(), "rp.returned"
		}
	}
	p.Content = content
	c.render(w, r, code, "refundpoint", p)
}
