package console

import (
	"net/http"
	"strings"

	authorityv1 "taxrefund/api/taxrefund/authority/v1"
	settlementv1 "taxrefund/api/taxrefund/settlement/v1"
)

const (
	mPayoutTrail = "/taxrefund.authority.v1.AuthorityService/GetPayoutTrail"
	mGetDecl     = "/taxrefund.authority.v1.AuthorityService/GetDeclaration"
)

type trailContent struct {
	Trail *authorityv1.GetFormTrailResponse
}

// trailPost shows a form's trail (POST /official/trail, form_number in the body): the
// form, its lines, the entries of its journal transactions and its payout, the
// drill-down of a reconciliation exception.
func (c *Console) trailPost(w http.ResponseWriter, r *http.Request, s *session) {
	p := c.pageFor(s, "/official", "trail.title")
	code := http.StatusOK
	resp, err := call(r.Context(), c, s, mTrail, &authorityv1.GetFormTrailRequest{FormNumber: strings.TrimSpace(r.PostFormValue("form_number"))},
		c.d.Authority.GetFormTrail)
	if err != nil {
		p.Error, code = errText(err), http.StatusUnprocessableEntity
	}
	p.Content = trailContent{Trail: resp}
	c.render(w, r, code, "trail", p)
}

type payoutTrailContent struct {
	Trail *authorityv1.GetPayoutTrailResponse
	// Mismatch: the payout's totals differ from the sums of its forms' rows.
	Mismatch bool
}

// payoutTrailPost shows a payout's trail (POST /official/payout-trail, payout_id in the
// body): the payout, its forms (each opening its form's trail), the entries of its
// journal transaction and the declarations it is in.
func (c *Console) payoutTrailPost(w http.ResponseWriter, r *http.Request, s *session) {
	p := c.pageFor(s, "/official", "ptrail.title")
	code := http.StatusOK
	resp, err := call(r.Context(), c, s, mPayoutTrail, &authorityv1.GetPayoutTrailRequest{PayoutId: strings.TrimSpace(r.PostFormValue("payout_id"))},
		c.d.Authority.GetPayoutTrail)
	if err != nil {
		p.Error, code = errText(err), http.StatusUnprocessableEntity
	}
	content := payoutTrailContent{Trail: resp}
	if resp != nil {
		content.Mismatch = resp.GetGrossRefund() != resp.GetFormsGrossRefund() || resp.GetFee() != resp.GetFormsFee() || resp.GetNetRefund() != resp.GetFormsNetRefund()
	}
	p.Content = content
	c.render(w, r, code, "payout", p)
}

type declarationContent struct {
	Declaration *settlementv1.Declaration
	Status      string
}

// declarationPost shows one declaration with its lines (POST /official/declaration,
// declaration_id in the body): each line's form opens the form's trail, its payout the
// payout's. A DECLARATION_MISMATCH exception opens it.
func (c *Console) declarationPost(w http.ResponseWriter, r *http.Request, s *session) {
	p := c.pageFor(s, "/official/declarations", "decl.title")
	code := http.StatusOK
	resp, err := call(r.Context(), c, s, mGetDecl, &authorityv1.GetDeclarationRequest{DeclarationId: strings.TrimSpace(r.PostFormValue("declaration_id"))},
		c.d.Authority.GetDeclaration)
	if err != nil {
		p.Error, code = errText(err), http.StatusUnprocessableEntity
	}
	content := declarationContent{Declaration: resp.GetDeclaration()}
	if d := resp.GetDeclaration(); d != nil {
		content.Status = strings.TrimPrefix(d.GetStatus().String(), "DECLARATION_STATUS_")
	}
	p.Content = content
	c.render(w, r, code, "declaration", p)
}
