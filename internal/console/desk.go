package console

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/uuid"

	deskv1 "taxrefund/api/taxrefund/desk/v1"
	formv1 "taxrefund/api/taxrefund/form/v1"
	"taxrefund/internal/payouts"
	"taxrefund/internal/refund"
)

const (
	mFind    = "/taxrefund.desk.v1.DeskService/FindForms"
	mVerify  = "/taxrefund.desk.v1.DeskService/VerifyExport"
	mSettle  = "/taxrefund.desk.v1.DeskService/SettleRefund"
	mInspect = "/taxrefund.desk.v1.DeskService/RecordInspection"
)

// docForm is the traveller's document as typed (or scanned) into a page.
type docForm struct {
	Type, Number, Country string
}

func (d docForm) empty() bool { return d.Number == "" }

func (d docForm) proto() *formv1.Document {
	t := formv1.DocumentType_DOCUMENT_TYPE_UNSPECIFIED
	switch d.Type {
	case "PASSPORT":
		t = formv1.DocumentType_DOCUMENT_TYPE_PASSPORT
	case "HK_MACAO_PERMIT":
		t = formv1.DocumentType_DOCUMENT_TYPE_HK_MACAO_PERMIT
	case "TAIWAN_PERMIT":
		t = formv1.DocumentType_DOCUMENT_TYPE_TAIWAN_PERMIT
	}
	return &formv1.Document{Type: t, Number: d.Number, IssuingCountry: d.Country}
}

func (d docForm) domain() refund.Document {
	return refund.Document{Type: refund.DocumentType(d.Type), Number: d.Number, IssuingCountry: d.Country}
}

func readDoc(r *http.Request) docForm {
	return docForm{
		Type:    strings.TrimSpace(r.PostFormValue("doc_type")),
		Number:  strings.ToUpper(strings.TrimSpace(r.PostFormValue("doc_number"))),
		Country: strings.ToUpper(strings.TrimSpace(r.PostFormValue("doc_country"))),
	}
}

// lineView is a form line as the desk pages show it.
type lineView struct {
	No          int32
	Description string
	VATRate     string
	Quantity    int32
	Amount      string
	Refund      string
	Confirmed   string // the confirmed quantity, "" until verified
	// NeedSerial: customs read and type the goods' serial number (high value).
	NeedSerial bool
}

// riskReason is one rule that made a form RED: its code, whose name the page translates,
// and the API's sentence with the figures ("issued recently: 1m00s before ...").
type riskReason struct{ Code, Text string }

// Detail is the sentence without the rule's English name: what follows the name's
// translation on a Chinese page.
func (r riskReason) Detail() string {
	if _, after, ok := strings.Cut(r.Text, ": "); ok {
		return after
	}
	return r.Text
}

// riskView is a form's risk assessment as the customs page shows it.
type riskView struct {
	Red        bool
	Reasons    []riskReason
	Inspection string // PASSED, FAILED or ""
	// InspectRequestID makes a retried inspection form the same request.
	InspectRequestID string
}

// formView is a form as the desk pages show it.
type formView struct {
	Number, Store, State, Nationality string
	// DocType is the document's type (its name is translated), Doc its masked number and
	// issuing country.
	DocType, Doc             string
	Purchase, Deadline       string
	Eligible, Gross          string
	VerifiedPort, VerifiedAt string
	Lines                    []lineView
	// Why is the text key of the reason the form cannot be confirmed (customs) or paid
	// here (cashier); empty when it can.
	Why string
	// RequestID makes a retried submission of this form's action the same request.
	RequestID string
	// Risk is the form's assessment (customs, ISSUED forms); nil otherwise.
	Risk *riskView
}

func viewForm(f *formv1.Form) formView {
	v := formView{
		Number: f.GetNumber(), Store: f.GetStoreCode(), State: strings.TrimPrefix(f.GetState().String(), "FORM_STATE_"),
		Nationality: f.GetNationality(), Purchase: f.GetPurchaseDate(), Deadline: f.GetExportDeadline(),
		Eligible: f.GetEligibleAmount(), Gross: f.GetGrossRefund(), RequestID: uuid.NewString(),
		DocType: strings.TrimPrefix(f.GetDocument().GetType().String(), "DOCUMENT_TYPE_"),
		Doc:     f.GetDocument().GetMaskedNumber() + " " + f.GetDocument().GetIssuingCountry(),
	}
	if vf := f.GetVerification(); vf != nil {
		v.VerifiedPort, v.VerifiedAt = vf.GetPort(), when(vf.GetVerifiedAt())
		v.Eligible, v.Gross = vf.GetConfirmedEligibleAmount(), vf.GetConfirmedGrossRefund()
	}
	for _, l := range f.GetLines() {
		lv := lineView{No: l.GetLineNo(), Description: l.GetDescription(), VATRate: l.GetVatRate(), Quantity: l.GetQuantity(), Amount: l.GetAmount(), Refund: l.GetRefund()}
		if l.ConfirmedQuantity != nil {
			lv.Confirmed = strconv.Itoa(int(l.GetConfirmedQuantity()))
		}
		v.Lines = append(v.Lines, lv)
	}
	return v
}

// deskContent is the customs and the cashier page's content.
type deskContent struct {
	Doc   docForm
	Query string // the form number searched
	Found bool   // a search ran
	Forms []formView
	// Cashier only.
	Desk     payouts.Desk
	Cash     *payouts.CashToday
	Payable  []formView
	Receipt  *deskv1.Payout
	Method   string
	DocTypes []string
	// PayRequestID is the payment form's request id: a double click pays once.
	PayRequestID string
}

var docTypes = []string{"PASSPORT", "HK_MACAO_PERMIT", "TAIWAN_PERMIT"}

// find runs FindForms as the session's party: by form number if one was typed, else by
// the document.
func (c *Console) find(ctx context.Context, s *session, number string, doc docForm) ([]*formv1.Form, error) {
	resp, err := c.findRated(ctx, s, number, doc)
	return resp.GetForms(), err
}

// withRisk adds each ISSUED form's risk assessment to its view.
func withRisk(v *formView, risks []*deskv1.RiskAssessment) {
	for _, a := range risks {
		if a.GetFormNumber() != v.Number {
			continue
		}
		rv := &riskView{Red: a.GetLevel() == deskv1.RiskLevel_RISK_LEVEL_RED, InspectRequestID: uuid.NewString(),
			Inspection: strings.TrimPrefix(a.GetInspection().String(), "INSPECTION_RESULT_")}
		if rv.Inspection == "UNSPECIFIED" {
			rv.Inspection = ""
		}
		for _, r := range a.GetReasons() {
			rv.Reasons = append(rv.Reasons, riskReason{Code: r.GetCode(), Text: r.GetText()})
		}
		for i := range v.Lines {
			for _, no := range a.GetSerialLines() {
				v.Lines[i].NeedSerial = v.Lines[i].NeedSerial || v.Lines[i].No == no
			}
		}
		v.Risk = rv
	}
}

// findRated is find with the forms' risk assessments.
func (c *Console) findRated(ctx context.Context, s *session, number string, doc docForm) (*deskv1.FindFormsResponse, error) {
	req := &deskv1.FindFormsRequest{}
	if number != "" {
		req.Query = &deskv1.FindFormsRequest_FormNumber{FormNumber: number}
	} else {
		req.Query = &deskv1.FindFormsRequest_Document{Document: doc.proto()}
	}
	return call(ctx, c, s, mFind, req, c.d.Desk.FindForms)
}

func (c *Console) customsPage(w http.ResponseWriter, r *http.Request, s *session) {
	p := c.pageFor(s, "/customs", "nav.customs")
	p.Content = deskContent{DocTypes: docTypes, Doc: docForm{Type: "PASSPORT"}}
	c.render(w, r, http.StatusOK, "customs", p)
}

func (c *Console) customsPost(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	p := c.pageFor(s, "/customs", "nav.customs")
	content := deskContent{DocTypes: docTypes, Doc: readDoc(r), Query: strings.TrimSpace(r.PostFormValue("form_number"))}
	code := http.StatusOK
	if r.PostFormValue("action") == "confirm" {
		req := &deskv1.VerifyExportRequest{RequestId: r.PostFormValue("request_id"), FormNumber: content.Query, PresentedDocument: content.Doc.proto()}
		for _, no := range r.PostForm["line"] {
			n, err1 := strconv.Atoi(no)
			q, err2 := strconv.Atoi(strings.TrimSpace(r.PostFormValue("q" + no)))
			if err1 != nil || err2 != nil {
				p.Error = fmt.Sprintf("line %s: the quantity presented must be a whole number", no)
				break
			}
			req.Lines = append(req.Lines, &deskv1.LineConfirmation{LineNo: int32(n), ConfirmedQuantity: int32(q),
				SerialNumber: strings.TrimSpace(r.PostFormValue("s" + no))})
		}
		if p.Error == "" {
			if _, err := call(ctx, c, s, mVerify, req, c.d.Desk.VerifyExport); err != nil {
				p.Error, code = errText(err), http.StatusUnprocessableEntity
			} else {
				p.Notice = "confirm.done"
			}
		}
	}
	if r.PostFormValue("action") == "inspect" {
		result := map[string]deskv1.InspectionResult{"PASSED": deskv1.InspectionResult_INSPECTION_RESULT_PASSED,
			"FAILED": deskv1.InspectionResult_INSPECTION_RESULT_FAILED}[r.PostFormValue("result")]
		req := &deskv1.RecordInspectionRequest{RequestId: r.PostFormValue("request_id"), FormNumber: content.Query,
			Result: result, Note: strings.TrimSpace(r.PostFormValue("note"))}
		if _, err := call(ctx, c, s, mInspect, req, c.d.Desk.RecordInspection); err != nil {
			p.Error, code = errText(err), http.StatusUnprocessableEntity
		} else {
			p.Notice = "inspect.done"
		}
	}
	// Show the traveller's forms: after a confirmation, all of the document's (the next
	// one to confirm is among them); after a refused one, the form again, as the document
	// typed may be the reason.
	number := content.Query
	if !content.Doc.empty() && r.PostFormValue("action") == "confirm" && p.Error == "" {
		number = ""
	}
	if number != "" || !content.Doc.empty() {
		resp, err := c.findRated(ctx, s, number, content.Doc)
		if err != nil && p.Error == "" {
			p.Error, code = errText(err), http.StatusUnprocessableEntity
		}
		content.Found = true
		today := refund.FormatDate(refund.LocalDate(c.d.Now()))
		for _, f := range resp.GetForms() {
			v := viewForm(f)
			withRisk(&v, resp.GetRisks())
			switch {
			case v.State != "ISSUED":
				v.Why = "why." + v.State
			case v.Deadline != "" && today > v.Deadline:
				v.Why = "why.late"
			}
			content.Forms = append(content.Forms, v)
		}
	}
	if content.Doc.Type == "" {
		content.Doc.Type = "PASSPORT"
	}
	p.Content = content
	c.render(w, r, code, "customs", p)
}

func (c *Console) deskOf(ctx context.Context, s *session) (payouts.Desk, error) {
	return call(ctx, c, s, mSettle, s.party.Desk, c.d.Desks.DeskOf)
}

func (c *Console) cashierPage(w http.ResponseWriter, r *http.Request, s *session) {
	p := c.pageFor(s, "/cashier", "nav.cashier")
	content := deskContent{DocTypes: docTypes, Doc: docForm{Type: "PASSPORT"}, Method: "CASH"}
	code := http.StatusOK
	d, err := c.deskOf(r.Context(), s)
	if err != nil {
		p.Error, code = errText(err), http.StatusUnprocessableEntity
	}
	content.Desk = d
	p.Content = content
	c.render(w, r, code, "cashier", p)
}

func (c *Console) cashierPost(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	p := c.pageFor(s, "/cashier", "nav.cashier")
	content := deskContent{DocTypes: docTypes, Doc: readDoc(r), Method: r.PostFormValue("method")}
	if content.Method == "" {
		content.Method = "CASH"
	}
	code := http.StatusOK
	d, err := c.deskOf(ctx, s)
	if err != nil {
		p.Error, code = errText(err), http.StatusUnprocessableEntity
		p.Content = content
		c.render(w, r, code, "cashier", p)
		return
	}
	content.Desk = d
	if r.PostFormValue("action") == "pay" {
		method := map[string]deskv1.PaymentMethod{"CASH": deskv1.PaymentMethod_PAYMENT_METHOD_CASH,
			"BANK_CARD": deskv1.PaymentMethod_PAYMENT_METHOD_BANK_CARD, "MOBILE": deskv1.PaymentMethod_PAYMENT_METHOD_MOBILE}[content.Method]
		req := &deskv1.SettleRefundRequest{
			RequestId: r.PostFormValue("request_id"), FormNumbers: r.PostForm["form"], PresentedDocument: content.Doc.proto(),
			Method: method, AccountReference: strings.TrimSpace(r.PostFormValue("account")), ReceiptReference: strings.TrimSpace(r.PostFormValue("receipt")),
		}
		resp, err := call(ctx, c, s, mSettle, req, c.d.Desk.SettleRefund)
		if err != nil {
			p.Error, code = errText(err), http.StatusUnprocessableEntity
		} else {
			content.Receipt = resp.GetPayout()
			p.Content = content
			c.render(w, r, code, "receipt", p)
			return
		}
	}
	if !content.Doc.empty() {
		found, err := c.find(ctx, s, "", content.Doc)
		if err != nil && p.Error == "" {
			p.Error, code = errText(err), http.StatusUnprocessableEntity
		}
		content.Found = true
		for _, f := range found {
			v := viewForm(f)
			switch {
			case v.State == "VERIFIED" && v.VerifiedPort == d.Port:
				content.Payable = append(content.Payable, v)
				continue
			case v.State == "VERIFIED":
				v.Why = "pay.otherport"
			case v.State == "ISSUED":
				v.Why = "pay.notverified"
			default:
				v.Why = "why." + v.State
			}
			content.Forms = append(content.Forms, v)
		}
		if err == nil {
			doc := content.Doc.domain()
			cash, err := call(ctx, c, s, mSettle, doc, c.d.Desks.CashToday)
			if err != nil && p.Error == "" {
				p.Error, code = errText(err), http.StatusUnprocessableEntity
			} else if err == nil {
				content.Cash = &cash
			}
		}
	}
	if content.Doc.Type == "" {
		content.Doc.Type = "PASSPORT"
	}
	content.PayRequestID = uuid.NewString()
	p.Content = content
	c.render(w, r, code, "cashier", p)
}
