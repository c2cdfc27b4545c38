package console

import (
	"net/http"
	"strings"

	authorityv1 "taxrefund/api/taxrefund/authority/v1"
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
