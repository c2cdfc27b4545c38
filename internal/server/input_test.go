package server_test

import (
	"strings"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"

	deskv1 "taxrefund/api/taxrefund/desk/v1"
	"taxrefund/internal/dbtest"
	"taxrefund/internal/server"
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

// TestClosedMonthIsFailedPrecondition: PostgreSQL's refusal of a posting into a closed
// accounting month (the trigger's SQLSTATE TR002) reaches the client as
// FAILED_PRECONDITION MONTH_CLOSED naming the month, not INTERNAL.
func TestClosedMonthIsFailedPrecondition(t *testing.T) {
	t.Parallel()
	pool := dbtest.NewPool(t)
	ctx := ctxTimeout(t)
	if _, err := pool.Exec(ctx, `INSERT INTO closed_months (month, closed_by) VALUES ('2026-10-01', 'test')`); err != nil {
		t.Fatal(err)
	}
	_, err := pool.Exec(ctx, `INSERT INTO journal_txns (id, idem_key, kind, ref, effective_date) VALUES (gen_random_uuid(), 'closed-month-probe', 'TEST', 'x', '2026-10-15')`)
	if err == nil {
		t.Fatal("a posting into the closed month was accepted")
	}
	st := server.Status(err)
	if st.Code() != codes.FailedPrecondition || !strings.Contains(st.Message(), "2026-10") {
		t.Fatalf("closed month: %v %q, want FAILED_PRECONDITION naming 2026-10", st.Code(), st.Message())
	}
	var reason, month string
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			reason, month = info.GetReason(), info.GetMetadata()["month"]
		}
	}
	if reason != "MONTH_CLOSED" || month != "2026-10" {
		t.Errorf("ErrorInfo reason %q month %q, want MONTH_CLOSED 2026-10", reason, month)
	}
}
