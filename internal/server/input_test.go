package server_test

import (
	"testing"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"

	deskv1 "taxrefund/api/taxrefund/desk/v1"
	"taxrefund/internal/wire"
)

// TestVerifyExportTooManyConfirmations: a form has at most wire.MaxLines lines, so
// VerifyExport with more line confirmations (here 100,000 for a form of two lines) is
// refused INVALID_ARGUMENT with one violation naming lines, and writes nothing; so are
// confirmations of lines the form does not have, and a line confirmed twice.
func TestVerifyExportTooManyConfirmations(t *testing.T) {
	t.Parallel()
	env := newSecEnv(t, secOptions{})
	ctx := ctxTimeout(t)
	doc := passport(env.tr.secret("V1234-5678"))
	form := env.issue(t, storeJFB1, domainExample("V1234-5678", "INV-V-1"))
	many := make([]*deskv1.LineConfirmation, 100_000)
	for i := range many {
		many[i] = &deskv1.LineConfirmation{LineNo: int32(i%2 + 1), ConfirmedQuantity: 1}
	}
	for _, c := range []struct {
		name   string
		lines  []*deskv1.LineConfirmation
		code   codes.Code
		reason string
		fields []string
	}{
		{"100,000 confirmations", many, codes.InvalidArgument, "INVALID_REQUEST", []string{"lines"}},
		{"MaxLines + 1 confirmations", many[:wire.MaxLines+1], codes.InvalidArgument, "INVALID_REQUEST", []string{"lines"}},
		{"a line confirmed twice", []*deskv1.LineConfirmation{{LineNo: 1, ConfirmedQuantity: 1}, {LineNo: 2, ConfirmedQuantity: 1}, {LineNo: 1, ConfirmedQuantity: 1}},
			codes.InvalidArgument, "INVALID_REQUEST", []string{"lines[2].line_no"}},
		{"three confirmations for two lines", []*deskv1.LineConfirmation{{LineNo: 1, ConfirmedQuantity: 1}, {LineNo: 2, ConfirmedQuantity: 1}, {LineNo: 3, ConfirmedQuantity: 1}},
			codes.InvalidArgument, "INVALID_CONFIRMATION", []string{"lines[line_no=3]"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := env.tableCounts(t)
			_, err := env.desk(t, customsCKG).VerifyExport(ctx, &deskv1.VerifyExportRequest{
				RequestId: uuid.NewString(), FormNumber: form.GetNumber(), PresentedDocument: doc, Lines: c.lines})
			checkStatus(t, err, want{c.code, c.reason, c.fields})
			if d := countDiff(before, env.tableCounts(t)); d != "" {
				t.Errorf("the refused verification wrote: %s", d)
			}
		})
	}
}
