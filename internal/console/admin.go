package console

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/google/uuid"

	authorityv1 "taxrefund/api/taxrefund/authority/v1"
)

const (
	mListParams   = "/taxrefund.authority.v1.AuthorityService/ListParameters"
	mSetParam     = "/taxrefund.authority.v1.AuthorityService/SetParameter"
	mHeads        = "/taxrefund.authority.v1.AuthorityService/ChainHeads"
	mVerifyChains = "/taxrefund.authority.v1.AuthorityService/VerifyChains"
	mRegister     = "/taxrefund.authority.v1.AuthorityService/RegisterStore"
	mSuspend      = "/taxrefund.authority.v1.AuthorityService/SuspendStore"
	mReinstate    = "/taxrefund.authority.v1.AuthorityService/ReinstateStore"
	mExit         = "/taxrefund.authority.v1.AuthorityService/ExitStore"
	mSetGrade     = "/taxrefund.authority.v1.AuthorityService/SetStoreGrade"
)

// parameterNames are the parameters the registry knows (authority.proto, Parameter).
var parameterNames = []string{"min_purchase", "refund_rate", "cash_cap", "export_window_days", "agency_fee_rate", "committed_period_days", "daily_prepay_cap"}

// amountParams hold an amount in CNY (shown with two decimals and separators).
var amountParams = map[string]bool{"min_purchase": true, "cash_cap": true, "daily_prepay_cap": true}

type paramView struct {
	*authorityv1.Parameter
	Shown string
}

type paramsContent struct {
	Names     []string
	Params    []paramView
	RequestID string
	// Form is what was typed, kept when the value is refused.
	Form *authorityv1.Parameter
}

func (c *Console) parametersPage(w http.ResponseWriter, r *http.Request, s *session) {
	c.showParameters(w, r, s, c.pageFor(s, "/official/parameters", "nav.params"), http.StatusOK, nil)
}

func (c *Console) showParameters(w http.ResponseWriter, r *http.Request, s *session, p page, code int, form *authorityv1.Parameter) {
	resp, err := call(r.Context(), c, s, mListParams, &authorityv1.ListParametersRequest{}, c.d.Authority.ListParameters)
	if err != nil {
		p.Error, code = errText(err), http.StatusUnprocessableEntity
	}
	content := paramsContent{Names: parameterNames, RequestID: uuid.NewString(), Form: form}
	if content.Form == nil {
		content.Form = &authorityv1.Parameter{}
	}
	for _, pr := range resp.GetParameters() {
		v := paramView{Parameter: pr, Shown: pr.GetValue()}
		if amountParams[pr.GetName()] {
			v.Shown = cny(pr.GetValue())
		}
		content.Params = append(content.Params, v)
	}
	p.Content = content
	c.render(w, r, code, "parameters", p)
}

func (c *Console) parametersPost(w http.ResponseWriter, r *http.Request, s *session) {
	p := c.pageFor(s, "/official/parameters", "nav.params")
	in := &authorityv1.Parameter{Name: r.PostFormValue("name"), Scope: strings.TrimSpace(r.PostFormValue("scope")),
		ValidFrom: r.PostFormValue("valid_from"), Value: strings.TrimSpace(r.PostFormValue("value")), Note: strings.TrimSpace(r.PostFormValue("note"))}
	_, err := call(r.Context(), c, s, mSetParam, &authorityv1.SetParameterRequest{RequestId: r.PostFormValue("request_id"), Parameter: in}, c.d.Authority.SetParameter)
	if err != nil {
		p.Error = errText(err)
		c.showParameters(w, r, s, p, http.StatusUnprocessableEntity, in)
		return
	}
	p.Notice = "params.set"
	c.showParameters(w, r, s, p, http.StatusOK, nil)
}

type journalContent struct {
	Heads    []*authorityv1.ChainVerification
	Verified []*authorityv1.ChainVerification
	AllOK    bool
}

func (c *Console) journalPage(w http.ResponseWriter, r *http.Request, s *session) {
	c.showJournal(w, r, s, c.pageFor(s, "/official/journal", "nav.journal"), http.StatusOK, nil)
}

func (c *Console) showJournal(w http.ResponseWriter, r *http.Request, s *session, p page, code int, verified *authorityv1.VerifyChainsResponse) {
	content := journalContent{}
	if verified != nil {
		// A verification reads every link up to the head it reports: those are the heads.
		content.Verified, content.Heads, content.AllOK = verified.GetChains(), verified.GetChains(), true
		for _, v := range verified.GetChains() {
			content.AllOK = content.AllOK && v.GetOk()
		}
	} else {
		resp, err := call(r.Context(), c, s, mHeads, &authorityv1.ChainHeadsRequest{}, c.d.Authority.ChainHeads)
		if err != nil {
			p.Error, code = errText(err), http.StatusUnprocessableEntity
		}
		content.Heads = resp.GetChains()
	}
	p.Content = content
	c.render(w, r, code, "journal", p)
}

func (c *Console) journalPost(w http.ResponseWriter, r *http.Request, s *session) {
	p := c.pageFor(s, "/official/journal", "nav.journal")
	resp, err := call(r.Context(), c, s, mVerifyChains, &authorityv1.VerifyChainsRequest{}, c.d.Authority.VerifyChains)
	if err != nil {
		p.Error = errText(err)
		c.showJournal(w, r, s, p, http.StatusUnprocessableEntity, nil)
		return
	}
	c.showJournal(w, r, s, p, http.StatusOK, resp)
}

// storesPost registers a store, or suspends, reinstates or exits one or sets its credit
// grade, with a reason; each takes effect when it is made (the registry records the
// change's time, shown as the effective date).
func (c *Console) storesPost(w http.ResponseWriter, r *http.Request, s *session) {
	p := c.pageFor(s, "/official/stores", "nav.stores")
	ctx := r.Context()
	rid, code, reason := r.PostFormValue("request_id"), strings.TrimSpace(r.PostFormValue("code")), strings.TrimSpace(r.PostFormValue("reason"))
	var st *authorityv1.Store
	var err error
	action := r.PostFormValue("action")
	switch action {
	case "register":
		var resp *authorityv1.RegisterStoreResponse
		resp, err = call(ctx, c, s, mRegister, &authorityv1.RegisterStoreRequest{RequestId: rid, Code: code,
			CreditCode: strings.TrimSpace(r.PostFormValue("credit_code")), Name: strings.TrimSpace(r.PostFormValue("name")),
			BlockCode: r.PostFormValue("block_code"), CreditGrade: r.PostFormValue("credit_grade"), ImmediateRefund: r.PostFormValue("immediate_refund") == "on"},
			c.d.Authority.RegisterStore)
		st = resp.GetStore()
	case "suspend":
		var resp *authorityv1.SuspendStoreResponse
		resp, err = call(ctx, c, s, mSuspend, &authorityv1.SuspendStoreRequest{RequestId: rid, Code: code, Reason: reason}, c.d.Authority.SuspendStore)
		st = resp.GetStore()
	case "reinstate":
		var resp *authorityv1.ReinstateStoreResponse
		resp, err = call(ctx, c, s, mReinstate, &authorityv1.ReinstateStoreRequest{RequestId: rid, Code: code, Reason: reason}, c.d.Authority.ReinstateStore)
		st = resp.GetStore()
	case "exit":
		var resp *authorityv1.ExitStoreResponse
		resp, err = call(ctx, c, s, mExit, &authorityv1.ExitStoreRequest{RequestId: rid, Code: code, Reason: reason}, c.d.Authority.ExitStore)
		st = resp.GetStore()
	case "grade":
		var resp *authorityv1.SetStoreGradeResponse
		resp, err = call(ctx, c, s, mSetGrade, &authorityv1.SetStoreGradeRequest{RequestId: rid, Code: code, CreditGrade: r.PostFormValue("credit_grade"), Reason: reason},
			c.d.Authority.SetStoreGrade)
		st = resp.GetStore()
	default:
		err = fmt.Errorf("unknown action %q", action)
	}
	status := http.StatusOK
	if err != nil {
		p.Error, status = errText(err), http.StatusUnprocessableEntity
	} else {
		p.Notice = "stores.changed"
		what := trimStore(st.GetStatus().String())
		if action == "grade" {
			what = st.GetCreditGrade()
		}
		p.Detail = st.GetCode() + " · " + what + " · " + whenTime(c.d.Now())
	}
	c.showStores(w, r, s, p, status, "")
}

func trimStore(s string) string { return strings.TrimPrefix(s, "STORE_STATUS_") }
