package console

import (
	"context"
	"net/http"
	"strings"

	"github.com/google/uuid"

	deskv1 "taxrefund/api/taxrefund/desk/v1"
	"taxrefund/internal/immediate"
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
	// Captures are the refund point's prepayments awaiting capture, the soonest first;
	// CapturesShown: the list was read (a refund point's page without it says so).
	Captures      []immediate.DueCapture
	CapturesShown bool
}

// dueCaptures reads the refund point's prepayments awaiting capture, under the
// authorization and the rate budget of its immediate refunds (PayImmediateRefund).
func (c *Console) dueCaptures(ctx context.Context, s *session, content *refundPointContent) error {
	if c.d.Captures == nil {
		return nil
	}
	due, err := call(ctx, c, s, mPayImmediate, s.party.Desk, c.d.Captures.DueCaptures)
	if err != nil {
		return err
	}
	content.Captures, content.CapturesShown = due, true
	return nil
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
	if err := c.dueCaptures(r.Context(), s, &content); err != nil && p.Error == "" {
		p.Error, code = errText(err), http.StatusUnprocessableEntity
	}
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
	// After a payment or a return: the list as it now stands.
	if err := c.dueCaptures(ctx, s, &content); err != nil && p.Error == "" {
		p.Error, code = errText(err), http.StatusUnprocessableEntity
	}
	p.Content = content
	c.render(w, r, code, "refundpoint", p)
}
