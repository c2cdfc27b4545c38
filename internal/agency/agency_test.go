package agency_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	agencyv1 "taxrefund/api/taxrefund/agency/v1"
	settlementv1 "taxrefund/api/taxrefund/settlement/v1"
	"taxrefund/internal/auth"
	"taxrefund/internal/fault"
)

// TestDeskDeclaresForItsOwnAgencyOnly: a cashier declares the month for the agency of
// their desk, never another; each agency (desk or back office) sees only its own
// declarations.
func TestDeskDeclaresForItsOwnAgencyOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cqPayout := e.paid("CKG-01", "CKG", "1000.00") // G 110.00 F 20.00 N 90.00
	e.clock.Set(local(2026, 10, 6, 10, 0))
	cdPayout := e.paid("TFU-01", "TFU", "2000.00") // G 220.00 F 40.00 N 180.00
	e.clock.Set(local(2026, 11, 3, 10, 0))

	req := &agencyv1.DeclareMonthRequest{RequestId: uuid.NewString(), Month: "2026-10"}
	resp, err := e.h.DeclareMonth(e.desk("CKG-02", "cashier-2"), req)
	if err != nil {
		t.Fatal(err)
	}
	cq := resp.GetDeclaration()
	if cq.GetAgencyCode() != "AG-CQ" || cq.GetMonth() != "2026-10" || cq.GetForms() != 1 || cq.GetGrossRefund() != "110.00" ||
		cq.GetFee() != "20.00" || cq.GetNetRefund() != "90.00" || cq.GetDeclaredBy() != "taxrefund://desk/CKG-02/cashier-2" ||
		cq.GetStatus() != settlementv1.DeclarationStatus_DECLARATION_STATUS_DECLARED {
		t.Errorf("CKG-02's declaration: %v", cq)
	}
	if len(cq.GetLines()) != 1 || cq.GetLines()[0].GetPayoutId() != cqPayout.ID.String() || cq.GetLines()[0].GetVerifiedPort() != "CKG" ||
		cq.GetLines()[0].GetReceiptReference() != cqPayout.ReceiptReference {
		t.Errorf("CKG-02's declaration lines: %v", cq.GetLines())
	}
	// The same request again answers the same declaration.
	again, err := e.h.DeclareMonth(e.desk("CKG-02", "cashier-2"), req)
	if err != nil || again.GetDeclaration().GetDeclarationId() != cq.GetDeclarationId() {
		t.Errorf("retry: %v, %v", again, err)
	}

	resp, err = e.h.DeclareMonth(e.desk("TFU-01", "cashier-5"), &agencyv1.DeclareMonthRequest{RequestId: uuid.NewString(), Month: "2026-10"})
	if err != nil {
		t.Fatal(err)
	}
	cd := resp.GetDeclaration()
	if cd.GetAgencyCode() != "AG-CD" || cd.GetForms() != 1 || cd.GetGrossRefund() != "220.00" || cd.GetLines()[0].GetPayoutId() != cdPayout.ID.String() {
		t.Errorf("TFU-01's declaration: %v", cd)
	}

	// Who sees which declaration.
	get := func(ctx context.Context, id string) error {
		_, err := e.h.GetDeclaration(ctx, &agencyv1.GetDeclarationRequest{DeclarationId: id})
		return err
	}
	for _, c := range []struct {
		who string
		ctx context.Context
		id  string
		ok  bool
	}{
		{"CKG-01 (AG-CQ) reads AG-CQ's", e.desk("CKG-01", "cashier-1"), cq.GetDeclarationId(), true},
		{"the JFB refund point (AG-CQ) reads AG-CQ's", e.desk("JFB-RP", "cashier-3"), cq.GetDeclarationId(), true},
		{"AG-CQ's back office reads AG-CQ's", e.backOffice("AG-CQ"), cq.GetDeclarationId(), true},
		{"TFU-01 (AG-CD) reads AG-CQ's", e.desk("TFU-01", "cashier-5"), cq.GetDeclarationId(), false},
		{"CTU-01 (AG-CD) reads AG-CQ's", e.desk("CTU-01", "cashier-6"), cq.GetDeclarationId(), false},
		{"AG-CD's back office reads AG-CQ's", e.backOffice("AG-CD"), cq.GetDeclarationId(), false},
		{"CKG-01 (AG-CQ) reads AG-CD's", e.desk("CKG-01", "cashier-1"), cd.GetDeclarationId(), false},
		{"TFU-01 reads AG-CD's", e.desk("TFU-01", "cashier-5"), cd.GetDeclarationId(), true},
		{"CKG-01 reads an unknown id", e.desk("CKG-01", "cashier-1"), uuid.NewString(), false},
	} {
		err := get(c.ctx, c.id)
		if c.ok && err != nil {
			t.Errorf("%s: %v", c.who, err)
		}
		if !c.ok {
			wantFault(t, c.who, err, fault.NotFound, "DECLARATION_NOT_FOUND")
		}
	}
	list := func(ctx context.Context) []string {
		t.Helper()
		resp, err := e.h.ListDeclarations(ctx, &agencyv1.ListDeclarationsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, d := range resp.GetDeclarations() {
			ids = append(ids, d.GetAgencyCode()+" "+d.GetDeclarationId())
		}
		return ids
	}
	if got := list(e.desk("TFU-01", "cashier-5")); len(got) != 1 || got[0] != "AG-CD "+cd.GetDeclarationId() {
		t.Errorf("TFU-01 lists %v", got)
	}
	if got := list(e.backOffice("AG-CQ")); len(got) != 1 || got[0] != "AG-CQ "+cq.GetDeclarationId() {
		t.Errorf("AG-CQ's back office lists %v", got)
	}

	// Refusals: another desk of the same agency cannot declare October again; the month
	// must have ended; the request must be well-formed; nothing is written.
	before := e.snapshot()
	refusals := []struct {
		what   string
		ctx    context.Context
		req    *agencyv1.DeclareMonthRequest
		kind   fault.Kind
		reason string
	}{
		{"CKG-01 declares October again", e.desk("CKG-01", "cashier-1"), &agencyv1.DeclareMonthRequest{RequestId: uuid.NewString(), Month: "2026-10"},
			fault.Precondition, "ALREADY_DECLARED"},
		{"AG-CQ's back office declares October again", e.backOffice("AG-CQ"), &agencyv1.DeclareMonthRequest{RequestId: uuid.NewString(), Month: "2026-10"},
			fault.Precondition, "ALREADY_DECLARED"},
		{"the current month", e.desk("CKG-01", "cashier-1"), &agencyv1.DeclareMonthRequest{RequestId: uuid.NewString(), Month: "2026-11"},
			fault.Precondition, "MONTH_NOT_ENDED"},
		{"a future month", e.backOffice("AG-CD"), &agencyv1.DeclareMonthRequest{RequestId: uuid.NewString(), Month: "2027-01"},
			fault.Precondition, "MONTH_NOT_ENDED"},
		{"a month that is not YYYY-MM", e.desk("CKG-01", "cashier-1"), &agencyv1.DeclareMonthRequest{RequestId: uuid.NewString(), Month: "2026-10-01"},
			fault.Invalid, "INVALID_REQUEST"},
		{"no request_id", e.desk("CKG-01", "cashier-1"), &agencyv1.DeclareMonthRequest{Month: "2026-09"},
			fault.Invalid, "INVALID_REQUEST"},
		{"an unregistered desk", e.desk("XXX-99", "cashier-1"), &agencyv1.DeclareMonthRequest{RequestId: uuid.NewString(), Month: "2026-09"},
			fault.Denied, "UNKNOWN_DESK"},
		{"a store", auth.NewContext(e.ctx, auth.Party{Role: auth.RoleStore, Store: "S-JFB-1", URI: "taxrefund://store/S-JFB-1"}),
			&agencyv1.DeclareMonthRequest{RequestId: uuid.NewString(), Month: "2026-09"}, fault.Denied, "NOT_AN_AGENCY"},
		{"customs", auth.NewContext(e.ctx, auth.Party{Role: auth.RoleCustoms, Port: "CKG", Officer: "o-1", URI: "taxrefund://customs/CKG/o-1"}),
			&agencyv1.DeclareMonthRequest{RequestId: uuid.NewString(), Month: "2026-09"}, fault.Denied, "NOT_AN_AGENCY"},
		{"the authority", auth.NewContext(e.ctx, auth.Party{Role: auth.RoleAuthority, Office: "sat", URI: "taxrefund://authority/sat"}),
			&agencyv1.DeclareMonthRequest{RequestId: uuid.NewString(), Month: "2026-09"}, fault.Denied, "NOT_AN_AGENCY"},
		{"no party", e.ctx, &agencyv1.DeclareMonthRequest{RequestId: uuid.NewString(), Month: "2026-09"}, fault.Denied, "NOT_AN_AGENCY"},
	}
	for _, r := range refusals {
		_, err := e.h.DeclareMonth(r.ctx, r.req)
		wantFault(t, r.what, err, r.kind, r.reason)
	}
	_, err = e.h.GetDeclaration(e.desk("CKG-01", "cashier-1"), &agencyv1.GetDeclarationRequest{DeclarationId: "not-a-uuid"})
	wantFault(t, "GetDeclaration of a malformed id", err, fault.Invalid, "INVALID_REQUEST")
	_, err = e.h.ListDeclarations(auth.NewContext(e.ctx, auth.Party{Role: auth.RoleStore, Store: "S-JFB-1", URI: "taxrefund://store/S-JFB-1"}), &agencyv1.ListDeclarationsRequest{})
	wantFault(t, "a store lists declarations", err, fault.Denied, "NOT_AN_AGENCY")
	if after := e.snapshot(); after != before {
		t.Errorf("refused calls wrote:\n\tbefore %s\n\tafter  %s", before, after)
	}
}
