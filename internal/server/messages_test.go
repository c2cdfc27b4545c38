package server_test

import (
	"regexp"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	deskv1 "taxrefund/api/taxrefund/desk/v1"
	formv1 "taxrefund/api/taxrefund/form/v1"
	storev1 "taxrefund/api/taxrefund/store/v1"
)

// fieldPath is how every message and field violation names a field: lines[0].quantity.
var fieldPath = regexp.MustCompile(`^[a-z][a-z0-9_]*(\[[0-9]+\])?(\.[a-z][a-z0-9_]*(\[[0-9]+\])?)*$`)

// otherFieldStyles are the ways of naming a field that are not fieldPath's.
var otherFieldStyles = regexp.MustCompile(`\b[Ll]ine #?[0-9]+\b|\b[Ii]nvoice #?[0-9]+\b|\bLines\[|\bline_[0-9]`)

// fieldPrefix is a clause's leading field name.
var fieldPrefix = regexp.MustCompile(`^[a-z][a-z0-9_]*(\[[0-9]+\])?(\.[a-z][a-z0-9_]*(\[[0-9]+\])?)*: `)

// repeats returns the sentence or clause that msg says twice ("" if none): a sentence
// (msg split at "; ") that occurs twice, a sentence that is another's text without its
// field ("must be positive; amount: must be positive"), or a clause repeated within a
// sentence ("invalid amount: invalid amount").
func repeats(msg string) string {
	seen := map[string]bool{}
	bodies := map[string]bool{}
	var bare []string
	for _, sentence := range strings.Split(msg, "; ") {
		if seen[sentence] {
			return sentence
		}
		seen[sentence] = true
		if loc := fieldPrefix.FindStringIndex(sentence); loc != nil {
			bodies[sentence[loc[1]:]] = true
		} else {
			bare = append(bare, sentence)
		}
		parts := strings.Split(sentence, ": ")
		for i := 1; i < len(parts); i++ {
			if parts[i] == parts[i-1] {
				return parts[i]
			}
		}
	}
	for _, b := range bare {
		if bodies[b] {
			return b
		}
	}
	return ""
}

func TestRepeatsFinds(t *testing.T) {
	for msg, want := range map[string]string{
		"invalid amount: invalid amount":                      "invalid amount",
		"must be positive; lines[0].amount: must be positive": "must be positive",
		"invalid request; lines[0].amount: must be positive":  "",
		"lines[0].amount: -5.00: must be positive":            "",
		"a: is required; b: is required":                      "",
	} {
		if got := repeats(msg); got != want {
			t.Errorf("repeats(%q) = %q, want %q", msg, got, want)
		}
	}
}

// TestErrorMessagesSayItOnce drives bad requests through the real handlers and checks
// every refusal's text: no sentence or clause twice, every field named in the
// lines[0].quantity style (in the message and in the BadRequest violations), and each
// violation's field named in the message.
func TestErrorMessagesSayItOnce(t *testing.T) {
	t.Parallel()
	env := newSecEnv(t, secOptions{})
	ctx := ctxTimeout(t)
	issue := func(change func(r *storev1.IssueFormRequest)) func() error {
		return func() error {
			r := domainExample("E1234-5678", "INV-MSG")
			change(r)
			_, err := env.store(t, storeJFB1).IssueForm(ctx, r)
			return err
		}
	}
	cases := map[string]func() error{
		"negative amount":      issue(func(r *storev1.IssueFormRequest) { r.Lines[0].Amount = "-5.00" }),
		"amount not a number":  issue(func(r *storev1.IssueFormRequest) { r.Lines[1].Amount = "abc" }),
		"amount of 3 decimals": issue(func(r *storev1.IssueFormRequest) { r.Lines[0].Amount = "1.005" }),
		"zero quantity":        issue(func(r *storev1.IssueFormRequest) { r.Lines[0].Quantity = 0 }),
		"negative quantity":    issue(func(r *storev1.IssueFormRequest) { r.Lines[1].Quantity = -2 }),
		"bad VAT rate":         issue(func(r *storev1.IssueFormRequest) { r.Lines[0].VatRate = "0.5" }),
		"no category": issue(func(r *storev1.IssueFormRequest) {
			r.Lines[0].Category = formv1.GoodsCategory_GOODS_CATEGORY_UNSPECIFIED
		}),
		"unknown invoice":       issue(func(r *storev1.IssueFormRequest) { r.Lines[1].InvoiceNumber = "NOPE" }),
		"empty description":     issue(func(r *storev1.IssueFormRequest) { r.Lines[0].Description = "" }),
		"bad request_id":        issue(func(r *storev1.IssueFormRequest) { r.RequestId = "x" }),
		"bad invoice date":      issue(func(r *storev1.IssueFormRequest) { r.Invoices[0].Date = "2025-13-01" }),
		"no lines":              issue(func(r *storev1.IssueFormRequest) { r.Lines = nil }),
		"bad nationality":       issue(func(r *storev1.IssueFormRequest) { r.Traveller.Nationality = "XX" }),
		"expired document":      issue(func(r *storev1.IssueFormRequest) { r.Traveller.DocumentExpiryDate = "2020-01-01" }),
		"bad entry date":        issue(func(r *storev1.IssueFormRequest) { r.Traveller.LastEntryDate = "yesterday" }),
		"no traveller":          issue(func(r *storev1.IssueFormRequest) { r.Traveller = nil }),
		"two lines bad at once": issue(func(r *storev1.IssueFormRequest) { r.Lines[0].Amount = "-1"; r.Lines[1].Quantity = 0 }),
		"get form: empty number": func() error {
			_, err := env.store(t, storeJFB1).GetForm(ctx, &storev1.GetFormRequest{})
			return err
		},
		"list forms: bad page size": func() error {
			_, err := env.store(t, storeJFB1).ListForms(ctx, &storev1.ListFormsRequest{PageSize: -1, FromDate: "2025-02-30"})
			return err
		},
		"void: no reason": func() error {
			_, err := env.store(t, storeJFB1).VoidForm(ctx, &storev1.VoidFormRequest{RequestId: "x", FormNumber: "TR1"})
			return err
		},
		"find forms: nothing to find by": func() error {
			_, err := env.desk(t, customsCKG).FindForms(ctx, &deskv1.FindFormsRequest{})
			return err
		},
		"settle: bad request": func() error {
			_, err := env.desk(t, refundPt).SettleRefund(ctx, &deskv1.SettleRefundRequest{RequestId: "x"})
			return err
		},
	}
	for name, call := range cases {
		err := call()
		st := status.Convert(err)
		if err == nil || st.Code() == codes.OK {
			t.Errorf("%s: accepted, want a refusal", name)
			continue
		}
		if st.Code() == codes.Internal || st.Code() == codes.Unknown {
			t.Errorf("%s: %v", name, err)
			continue
		}
		msg := st.Message()
		if r := repeats(msg); r != "" {
			t.Errorf("%s: %q says %q twice", name, msg, r)
		}
		if m := otherFieldStyles.FindString(msg); m != "" {
			t.Errorf("%s: %q names a field as %q, not as lines[0].quantity", name, msg, m)
		}
		for _, v := range violations(err) {
			if !fieldPath.MatchString(v.GetField()) {
				t.Errorf("%s: violation field %q is not in the lines[0].quantity style", name, v.GetField())
			}
			if !strings.Contains(msg, v.GetField()) {
				t.Errorf("%s: %q does not name the field %s", name, msg, v.GetField())
			}
			if r := repeats(v.GetDescription()); r != "" || strings.Contains(v.GetDescription(), v.GetField()+": ") {
				t.Errorf("%s: violation %s: %q repeats itself or its field", name, v.GetField(), v.GetDescription())
			}
		}
		t.Logf("%s: %s: %s", name, st.Code(), msg)
	}
}
