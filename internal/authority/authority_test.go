package authority_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/xuri/excelize/v2"

	authorityv1 "taxrefund/api/taxrefund/authority/v1"
	settlementv1 "taxrefund/api/taxrefund/settlement/v1"
	"taxrefund/internal/auth"
	"taxrefund/internal/fault"
	"taxrefund/internal/idempotency"
	"taxrefund/internal/report"
)

// call is one AuthorityService method with a request that the authority may make.
type call struct {
	name string
	do   func(ctx context.Context) error
}

// calls are every method of issue #5 with well-formed requests: declaration cq is to be
// approved, cd returned.
func (e *env) calls(cq, cd string) []call {
	rid := func() string { return uuid.NewString() }
	export := func(format authorityv1.ExportFormat) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			return e.h.ExportReport(&authorityv1.ExportReportRequest{Month: "2026-10", Format: format}, &exportStream{ctx: ctx})
		}
	}
	return []call{
		{"RunExpiry", func(ctx context.Context) error {
			_, err := e.h.RunExpiry(ctx, &authorityv1.RunExpiryRequest{})
			return err
		}},
		{"CheckInvariants", func(ctx context.Context) error {
			_, err := e.h.CheckInvariants(ctx, &authorityv1.CheckInvariantsRequest{})
			return err
		}},
		{"RegisterStore", func(ctx context.Context) error {
			_, err := e.h.RegisterStore(ctx, &authorityv1.RegisterStoreRequest{RequestId: rid(), Code: "S-NEW",
				CreditCode: "91510104HN2J1K6FM5", Name: "New store", BlockCode: "CXL", CreditGrade: "A"})
			return err
		}},
		{"SuspendStore", func(ctx context.Context) error {
			_, err := e.h.SuspendStore(ctx, &authorityv1.SuspendStoreRequest{RequestId: rid(), Code: "S-JFB-2", Reason: "audit"})
			return err
		}},
		{"ReinstateStore", func(ctx context.Context) error {
			_, err := e.h.ReinstateStore(ctx, &authorityv1.ReinstateStoreRequest{RequestId: rid(), Code: "S-SUSP", Reason: "fixed"})
			return err
		}},
		{"ExitStore", func(ctx context.Context) error {
			_, err := e.h.ExitStore(ctx, &authorityv1.ExitStoreRequest{RequestId: rid(), Code: "S-CXL-1", Reason: "closed"})
			return err
		}},
		{"GetStore", func(ctx context.Context) error {
			_, err := e.h.GetStore(ctx, &authorityv1.GetStoreRequest{Code: "S-JFB-1"})
			return err
		}},
		{"ListStores", func(ctx context.Context) error {
			_, err := e.h.ListStores(ctx, &authorityv1.ListStoresRequest{})
			return err
		}},
		{"GetRegistry", func(ctx context.Context) error {
			_, err := e.h.GetRegistry(ctx, &authorityv1.GetRegistryRequest{})
			return err
		}},
		{"SetParameter", func(ctx context.Context) error {
			_, err := e.h.SetParameter(ctx, &authorityv1.SetParameterRequest{RequestId: rid(), Parameter: &authorityv1.Parameter{
				Name: "min_purchase", ValidFrom: "2027-01-01", Value: "300.00", Note: "test"}})
			return err
		}},
		{"ListParameters", func(ctx context.Context) error {
			_, err := e.h.ListParameters(ctx, &authorityv1.ListParametersRequest{})
			return err
		}},
		{"ListDeclarations", func(ctx context.Context) error {
			_, err := e.h.ListDeclarations(ctx, &authorityv1.ListDeclarationsRequest{})
			return err
		}},
		{"GetDeclaration", func(ctx context.Context) error {
			_, err := e.h.GetDeclaration(ctx, &authorityv1.GetDeclarationRequest{DeclarationId: cq})
			return err
		}},
		{"ApproveDeclaration", func(ctx context.Context) error {
			_, err := e.h.ApproveDeclaration(ctx, &authorityv1.ApproveDeclarationRequest{RequestId: rid(), DeclarationId: cq})
			return err
		}},
		{"ReturnDeclaration", func(ctx context.Context) error {
			_, err := e.h.ReturnDeclaration(ctx, &authorityv1.ReturnDeclarationRequest{RequestId: rid(), DeclarationId: cd, Reasons: []string{"empty"}})
			return err
		}},
		{"CloseMonth", func(ctx context.Context) error {
			_, err := e.h.CloseMonth(ctx, &authorityv1.CloseMonthRequest{RequestId: rid(), Month: "2026-10"})
			return err
		}},
		{"Reconcile", func(ctx context.Context) error {
			_, err := e.h.Reconcile(ctx, &authorityv1.ReconcileRequest{Month: "2026-10"})
			return err
		}},
		{"GetFormTrail", func(ctx context.Context) error {
			_, err := e.h.GetFormTrail(ctx, &authorityv1.GetFormTrailRequest{FormNumber: "TR-NONE"})
			if fault.Is(err, fault.NotFound) {
				return nil // the authority got through
			}
			return err
		}},
		{"GetPayoutTrail", func(ctx context.Context) error {
			_, err := e.h.GetPayoutTrail(ctx, &authorityv1.GetPayoutTrailRequest{PayoutId: uuid.NewString()})
			if fault.Is(err, fault.NotFound) {
				return nil // the authority got through
			}
			return err
		}},
		{"SetStoreGrade", func(ctx context.Context) error {
			_, err := e.h.SetStoreGrade(ctx, &authorityv1.SetStoreGradeRequest{RequestId: rid(), Code: "S-JFB-1", CreditGrade: "B", Reason: "late filings"})
			return err
		}},
		{"MonthlyReport", func(ctx context.Context) error {
			_, err := e.h.MonthlyReport(ctx, &authorityv1.MonthlyReportRequest{Month: "2026-10"})
			return err
		}},
		{"ExportReport CSV", export(authorityv1.ExportFormat_EXPORT_FORMAT_CSV)},
		{"ExportReport XLSX", export(authorityv1.ExportFormat_EXPORT_FORMAT_XLSX)},
	}
}

// fixture: an overdue ISSUED form (issued 2026-07-10, deadline 2026-10-08), an October
// payout of AG-CQ, and on 2026-11-03 the October declarations of AG-CQ (one form) and
// AG-CD (empty).
func (e *env) fixture() (cq, cd string) {
	e.t.Helper()
	e.issue("OVERDUE1")
	e.clock.Set(local(2026, 10, 5, 10, 0))
	e.paid("PAID0001")
	e.clock.Set(local(2026, 11, 3, 10, 0))
	d1, err := e.settle.Declare(e.ctx, idempotency.Key{Caller: "taxrefund://agency/AG-CQ/bo", RequestID: uuid.New(), Hash: []byte{1}}, "AG-CQ", october)
	if err != nil {
		e.t.Fatal(err)
	}
	d2, err := e.settle.Declare(e.ctx, idempotency.Key{Caller: "taxrefund://agency/AG-CD/bo", RequestID: uuid.New(), Hash: []byte{2}}, "AG-CD", october)
	if err != nil {
		e.t.Fatal(err)
	}
	return d1.ID.String(), d2.ID.String()
}

// TestAuthorityRefusesEveryOtherParty: a store, a desk, a customs officer, an agency's
// back office or a caller without a party get PERMISSION_DENIED from every method, and
// nothing is written; the authority itself gets through.
func TestAuthorityRefusesEveryOtherParty(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cq, cd := e.fixture()
	parties := map[string]context.Context{
		"store":    auth.NewContext(e.ctx, auth.Party{Role: auth.RoleStore, Store: "S-JFB-1", URI: "taxrefund://store/S-JFB-1"}),
		"desk":     auth.NewContext(e.ctx, auth.Party{Role: auth.RoleDesk, Desk: "CKG-01", Cashier: "c-1", URI: "taxrefund://desk/CKG-01/c-1"}),
		"customs":  auth.NewContext(e.ctx, auth.Party{Role: auth.RoleCustoms, Port: "CKG", Officer: "o-1", URI: "taxrefund://customs/CKG/o-1"}),
		"agency":   auth.NewContext(e.ctx, auth.Party{Role: auth.RoleAgency, Agency: "AG-CQ", User: "bo", URI: "taxrefund://agency/AG-CQ/bo"}),
		"no party": e.ctx,
	}
	before := e.snapshot()
	n := 0
	for who, ctx := range parties {
		for _, c := range e.calls(cq, cd) {
			n++
			wantFault(t, who+" calling "+c.name, c.do(ctx), fault.Denied, "NOT_THE_AUTHORITY")
		}
	}
	if after := e.snapshot(); after != before {
		t.Errorf("refused calls wrote:\n\tbefore %s\n\tafter  %s", before, after)
	}
	t.Logf("%d refused calls", n)

	// The authority gets through every one of them (Reconcile's own outcome is the report
	// package's tests' business: here it must only not be refused).
	official := auth.NewContext(e.ctx, auth.Party{Role: auth.RoleAuthority, Office: "sat", URI: "taxrefund://authority/sat"})
	for _, c := range e.calls(cq, cd) {
		err := c.do(official)
		if c.name == "Reconcile" {
			if fault.Is(err, fault.Denied) {
				t.Errorf("authority calling Reconcile: %v", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("authority calling %s: %v", c.name, err)
		}
	}
	after := e.snapshot()
	want := map[string]string{
		"stores":         "S-CXL-1:EXITED,S-EXIT:EXITED,S-JFB-1:ACTIVE,S-JFB-2:SUSPENDED,S-NEW:ACTIVE,S-SUSP:ACTIVE",
		"declarations":   cq + ":APPROVED",
		"closed_months=": "closed_months=1",
	}
	for what, w := range want {
		if !bytes.Contains([]byte(after), []byte(w)) {
			t.Errorf("after the authority's calls, %s: want %q in %s", what, w, after)
		}
	}
	if e.count(`SELECT count(*) FROM forms WHERE state = 'EXPIRED'`) != 1 || e.count(`SELECT count(*) FROM forms WHERE state = 'SETTLED'`) != 1 {
		t.Errorf("after the authority's calls: %s", after)
	}
}

// TestExportReportStream: the export is a header (file name, type, rows, size) followed by
// chunks that make up exactly the file report.CSV / report.XLSX renders.
func TestExportReportStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.fixture()
	official := auth.NewContext(e.ctx, auth.Party{Role: auth.RoleAuthority, Office: "sat", URI: "taxrefund://authority/sat"})
	rows, err := report.Monthly(e.ctx, e.pool, october)
	if err != nil {
		t.Fatal(err)
	}
	wantCSV, err := report.CSV(rows)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		format      authorityv1.ExportFormat
		name, ctype string
	}{
		{authorityv1.ExportFormat_EXPORT_FORMAT_CSV, "taxrefund-report-2026-10.csv", "text/csv"},
		{authorityv1.ExportFormat_EXPORT_FORMAT_XLSX, "taxrefund-report-2026-10.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
	} {
		s := &exportStream{ctx: official}
		if err := e.h.ExportReport(&authorityv1.ExportReportRequest{Month: "2026-10", Format: tc.format}, s); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(s.sent) < 2 || s.sent[0].GetHeader() == nil {
			t.Fatalf("%s: sent %d messages, the first %v; want a header then chunks", tc.name, len(s.sent), s.sent)
		}
		h := s.sent[0].GetHeader()
		var data []byte
		for _, m := range s.sent[1:] {
			if m.GetHeader() != nil {
				t.Errorf("%s: a second header", tc.name)
			}
			data = append(data, m.GetChunk()...)
		}
		if h.GetFileName() != tc.name || h.GetContentType() != tc.ctype || h.GetRows() != int64(len(rows)) || h.GetSize() != int64(len(data)) {
			t.Errorf("header %v; want %s, %s, %d rows, size %d", h, tc.name, tc.ctype, len(rows), len(data))
		}
		if tc.format == authorityv1.ExportFormat_EXPORT_FORMAT_CSV {
			if !bytes.Equal(data, wantCSV) {
				t.Errorf("streamed CSV:\n%s\nwant:\n%s", data, wantCSV)
			}
			continue
		}
		f, err := excelize.OpenReader(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("streamed XLSX: %v", err)
		}
		got, err := f.GetRows("By agency", excelize.Options{RawCellValue: true})
		if err != nil {
			t.Fatal(err)
		}
		// One October form, paid by AG-CQ (G 110.00, F 20.00, N 90.00); the overdue form
		// was issued in July. Rows 1 to 4 are the title, the office and generation time
		// (the official's office, the handler's clock) and the two header rows; the totals
		// row follows the data.
		if len(got) < 6 || len(got[4]) != 12 || got[4][0] != "AG-CQ" || got[4][1] != "1" || got[4][7] != "110.00" || got[4][9] != "90.00" ||
			got[5][0] != "合计 Total" || got[5][9] != "90.00" || !strings.Contains(got[1][0], "Issuing office: sat") {
			t.Errorf("By agency: %q", got)
		}
		_ = f.Close()
	}

	// Bad input is refused before anything is read.
	for _, req := range []*authorityv1.ExportReportRequest{
		{Month: "2026-10"},
		{Month: "2026-13", Format: authorityv1.ExportFormat_EXPORT_FORMAT_CSV},
		{Month: "", Format: authorityv1.ExportFormat_EXPORT_FORMAT_XLSX},
	} {
		s := &exportStream{ctx: official}
		wantFault(t, "export "+req.String(), e.h.ExportReport(req, s), fault.Invalid, "INVALID_REQUEST")
		if len(s.sent) != 0 {
			t.Errorf("export %v sent %d messages", req, len(s.sent))
		}
	}
	_, err = e.h.ListDeclarations(official, &authorityv1.ListDeclarationsRequest{Status: settlementv1.DeclarationStatus(99)})
	wantFault(t, "list declarations of status 99", err, fault.Invalid, "INVALID_REQUEST")
}
