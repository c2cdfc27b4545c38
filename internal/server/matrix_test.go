package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	agencyv1 "taxrefund/api/taxrefund/agency/v1"
	deskv1 "taxrefund/api/taxrefund/desk/v1"
	storev1 "taxrefund/api/taxrefund/store/v1"
	"taxrefund/internal/auth"
	"taxrefund/internal/refund"
)

// roleCerts is the certificate each role calls the matrix with.
var roleCerts = map[auth.Role]string{
	auth.RoleStore:     storeJFB1,
	auth.RoleCustoms:   customsCKG,
	auth.RoleDesk:      cashier1,
	auth.RoleAuthority: sat,
	auth.RoleAgency:    agencyCQ,
}

// rpcMethod is one method the server registered.
type rpcMethod struct {
	full                       string // "/package.Service/Method"
	service, name              string
	clientStream, serverStream bool
}

// registeredMethods lists every method of every service srv registered, from its own
// service descriptors, sorted by full name.
func registeredMethods(srv *grpc.Server) []rpcMethod {
	var out []rpcMethod
	for svc, info := range srv.GetServiceInfo() {
		for _, m := range info.Methods {
			out = append(out, rpcMethod{full: "/" + svc + "/" + m.Name, service: svc, name: m.Name,
				clientStream: m.IsClientStream, serverStream: m.IsServerStream})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].full < out[j].full })
	return out
}

// minimalRequest returns an empty request of m's input type, with a fresh request_id
// when the message has one (so that a permitted call gets past its first check), and a
// new empty response.
func minimalRequest(t *testing.T, m rpcMethod) (req, resp proto.Message) {
	t.Helper()
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(m.service))
	if err != nil {
		t.Fatalf("%s: no descriptor: %v", m.full, err)
	}
	md := d.(protoreflect.ServiceDescriptor).Methods().ByName(protoreflect.Name(m.name))
	if md == nil {
		t.Fatalf("%s: no method descriptor", m.full)
	}
	in, err := protoregistry.GlobalTypes.FindMessageByName(md.Input().FullName())
	if err != nil {
		t.Fatalf("%s: input type: %v", m.full, err)
	}
	out, err := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName())
	if err != nil {
		t.Fatalf("%s: output type: %v", m.full, err)
	}
	req = in.New().Interface()
	if f := req.ProtoReflect().Descriptor().Fields().ByName("request_id"); f != nil && f.Kind() == protoreflect.StringKind {
		req.ProtoReflect().Set(f, protoreflect.ValueOfString(uuid.NewString()))
	}
	return req, out.New().Interface()
}

// callMinimal calls m on conn with a minimal request and returns the status: a unary
// call, or a stream that sends the request, half-closes and reads one response.
func callMinimal(t *testing.T, conn grpc.ClientConnInterface, m rpcMethod) *status.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, resp := minimalRequest(t, m)
	if !m.clientStream && !m.serverStream {
		return status.Convert(conn.Invoke(ctx, m.full, req, resp))
	}
	cs, err := conn.NewStream(ctx, &grpc.StreamDesc{StreamName: m.name, ClientStreams: m.clientStream, ServerStreams: m.serverStream}, m.full)
	if err != nil {
		return status.Convert(err)
	}
	if err := cs.SendMsg(req); err != nil && err.Error() != "EOF" {
		return status.Convert(err)
	}
	if err := cs.CloseSend(); err != nil {
		return status.Convert(err)
	}
	return status.Convert(cs.RecvMsg(resp))
}

// interceptorDenied reports whether st is the authorizer's refusal of a role.
func interceptorDenied(st *status.Status) bool {
	return st.Code() == codes.PermissionDenied && strings.Contains(st.Message(), "may not call")
}

// matrixMismatches calls observe for every method and role and compares the outcome with
// what m says: a role m allows must be served (any code but PERMISSION_DENIED,
// UNAUTHENTICATED or UNIMPLEMENTED: a minimal request may be refused by validation, never
// by authorization); a role m does not allow must get the authorizer's
// PERMISSION_DENIED. It returns one line per mismatch.
func matrixMismatches(methods []rpcMethod, m auth.Matrix, observe func(rpcMethod, auth.Role) *status.Status) (mismatches []string, allowed, denied int) {
	for _, meth := range methods {
		for _, role := range auth.Roles() {
			st := observe(meth, role)
			if m.Allows(meth.full, role) {
				allowed++
				switch st.Code() {
				case codes.PermissionDenied, codes.Unauthenticated, codes.Unimplemented:
					mismatches = append(mismatches, string(role)+" "+meth.full+": the matrix allows it, got "+st.Code().String()+" "+st.Message())
				}
				continue
			}
			denied++
			if !interceptorDenied(st) {
				mismatches = append(mismatches, string(role)+" "+meth.full+": the matrix denies it, got "+st.Code().String()+" "+st.Message())
			}
		}
	}
	return mismatches, allowed, denied
}

// matrixCoverage returns the registered methods the matrix does not list (silently denied
// to everyone) and the matrix entries no registered method has (stale).
func matrixCoverage(methods []rpcMethod, m auth.Matrix) (unlisted, stale []string) {
	registered := map[string]bool{}
	for _, meth := range methods {
		registered[meth.full] = true
		if _, ok := m[meth.full]; !ok {
			unlisted = append(unlisted, meth.full)
		}
	}
	for name := range m {
		if !registered[name] {
			stale = append(stale, name)
		}
	}
	slices.Sort(stale)
	return unlisted, stale
}

// TestMatrixWalk walks the whole authorization matrix over real mutual TLS: every role ×
// every method the server registered (read from its service descriptors, not a hand
// list), each called with a minimal request. The role is in auth.DefaultMatrix for the
// method exactly when the call is not refused by the authorizer; a refused call writes
// nothing to any table of the database. Every registered method is in the matrix and the
// matrix names no method that does not exist. TestMatrixWalkDetectsBrokenMatrix shows
// that the same check reports a wrong matrix.
func TestMatrixWalk(t *testing.T) {
	t.Parallel()
	env := newSecEnv(t, secOptions{})
	methods := registeredMethods(env.srv)
	m := auth.DefaultMatrix()

	unlisted, stale := matrixCoverage(methods, m)
	if len(unlisted) > 0 {
		t.Errorf("registered methods missing from the matrix (denied to everyone without a decision): %q", unlisted)
	}
	if len(stale) > 0 {
		t.Errorf("matrix entries for methods the server does not register: %q", stale)
	}
	// Every service of the API is there: the walk cannot pass by seeing nothing.
	for _, svc := range []string{storev1.StoreService_ServiceDesc.ServiceName, deskv1.DeskService_ServiceDesc.ServiceName,
		"taxrefund.authority.v1.AuthorityService", agencyv1.AgencyService_ServiceDesc.ServiceName, "grpc.health.v1.Health",
		"taxrefund.console.v1.ConsoleService"} {
		if !slices.ContainsFunc(methods, func(r rpcMethod) bool { return r.service == svc }) {
			t.Fatalf("service %s is not registered", svc)
		}
	}

	wrote := 0
	servedCodes := map[codes.Code]int{}
	observe := func(meth rpcMethod, role auth.Role) *status.Status {
		before := env.tableCounts(t)
		st := callMinimal(t, env.conn(t, roleCerts[role]), meth)
		if m.Allows(meth.full, role) {
			servedCodes[st.Code()]++
		} else {
			if diff := countDiff(before, env.tableCounts(t)); diff != "" {
				wrote++
				t.Errorf("%s %s was refused (%v) but wrote: %s", role, meth.full, st.Code(), diff)
			}
		}
		return st
	}
	mismatches, allowed, denied := matrixMismatches(methods, m, observe)
	for _, mm := range mismatches {
		t.Error(mm)
	}
	t.Logf("authorization matrix: %d methods × %d roles = %d calls over mTLS (%d allowed, %d denied), %d mismatches, %d refused calls that wrote",
		len(methods), len(auth.Roles()), len(methods)*len(auth.Roles()), allowed, denied, len(mismatches), wrote)
	t.Logf("codes of the allowed minimal calls: %v", servedCodes)
	if allowed == 0 || denied == 0 {
		t.Fatalf("allowed %d, denied %d: the walk did not exercise both outcomes", allowed, denied)
	}
}

// tlsPeerContext is a server-side context of a call whose verified client certificate is
// leaf, as the TLS layer hands it to the interceptors.
func tlsPeerContext(leaf *x509.Certificate) context.Context {
	info := credentials.TLSInfo{State: tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{leaf}}}}
	return peer.NewContext(context.Background(), &peer.Peer{AuthInfo: info})
}

// readLeaf parses the certificate file <dir>/<name>.pem.
func readLeaf(t *testing.T, dir, name string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name+".pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM", name)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// inProcessObserver runs auth.Authorizer with matrix m in process, as server.New chains
// it, for the role certificates of dir; a call it lets through gets OK.
func inProcessObserver(t *testing.T, dir string, m auth.Matrix) func(rpcMethod, auth.Role) *status.Status {
	leaves := map[auth.Role]*x509.Certificate{}
	for role, name := range roleCerts {
		leaves[role] = readLeaf(t, dir, name)
	}
	intercept := (&auth.Authorizer{Matrix: m}).Unary()
	return func(meth rpcMethod, role auth.Role) *status.Status {
		_, err := intercept(tlsPeerContext(leaves[role]), nil, &grpc.UnaryServerInfo{FullMethod: meth.full},
			func(ctx context.Context, _ any) (any, error) {
				if p, ok := auth.FromContext(ctx); !ok || p.Role != role {
					return nil, status.Error(codes.Internal, "the handler got no party or another one")
				}
				return nil, nil
			})
		return status.Convert(err)
	}
}

// TestMatrixWalkDetectsBrokenMatrix is the broken control of TestMatrixWalk: the same
// check, run through auth.Authorizer in process with a deliberately wrong copy of the
// matrix, reports exactly the wrong cells, and the coverage check reports a dropped and
// an invented method.
func TestMatrixWalkDetectsBrokenMatrix(t *testing.T) {
	t.Parallel()
	env := newSecEnv(t, secOptions{})
	methods := registeredMethods(env.srv)
	expected := auth.DefaultMatrix()
	const settle = "/taxrefund.desk.v1.DeskService/SettleRefund"
	const verify = "/taxrefund.desk.v1.DeskService/VerifyExport"

	// The correct matrix in process: no mismatch (the control's control).
	if mm, _, _ := matrixMismatches(methods, expected, inProcessObserver(t, env.certDir, expected)); len(mm) != 0 {
		t.Fatalf("the correct matrix in process reports %d mismatches: %q", len(mm), mm)
	}

	cases := []struct {
		name   string
		mutate func(auth.Matrix)
		want   []string // the mismatch lines' prefixes
	}{
		{"store added to SettleRefund", func(b auth.Matrix) { b[settle] = append(slices.Clone(b[settle]), auth.RoleStore) },
			[]string{"store " + settle + ": the matrix denies it, got OK"}},
		{"customs dropped from VerifyExport", func(b auth.Matrix) { b[verify] = nil },
			[]string{"customs " + verify + ": the matrix allows it, got PermissionDenied"}},
		{"authority role everywhere", func(b auth.Matrix) {
			b["/taxrefund.store.v1.StoreService/IssueForm"] = append(slices.Clone(b["/taxrefund.store.v1.StoreService/IssueForm"]), auth.RoleAuthority)
		}, []string{"authority /taxrefund.store.v1.StoreService/IssueForm: the matrix denies it, got OK"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			broken := auth.DefaultMatrix()
			c.mutate(broken)
			mm, _, _ := matrixMismatches(methods, expected, inProcessObserver(t, env.certDir, broken))
			if len(mm) != len(c.want) {
				t.Fatalf("the check reports %d mismatches for a matrix with %d wrong cells: %q", len(mm), len(c.want), mm)
			}
			for i, w := range c.want {
				if !strings.HasPrefix(mm[i], w) {
					t.Errorf("mismatch %q, want %q", mm[i], w)
				}
			}
		})
	}

	t.Run("coverage", func(t *testing.T) {
		dropped := auth.DefaultMatrix()
		delete(dropped, settle)
		dropped["/taxrefund.desk.v1.DeskService/RefundEverything"] = []auth.Role{auth.RoleDesk}
		unlisted, stale := matrixCoverage(methods, dropped)
		if !slices.Equal(unlisted, []string{settle}) || !slices.Equal(stale, []string{"/taxrefund.desk.v1.DeskService/RefundEverything"}) {
			t.Errorf("coverage of a matrix missing %s and inventing RefundEverything: unlisted %q, stale %q", settle, unlisted, stale)
		}
	})
}

// TestCrossObjectAccess: every party acts only on its own objects, whatever the request
// says. Refused attempts write nothing.
func TestCrossObjectAccess(t *testing.T) {
	t.Parallel()
	env := newSecEnv(t, secOptions{})
	ctx := ctxTimeout(t)
	docA := passport(env.tr.secret("K1111-2222"))
	formA := env.issue(t, storeJFB1, domainExample("K1111-2222", "INV-X-A"))

	t.Run("store B cannot read, list or void store A's form", func(t *testing.T) {
		before := env.tableCounts(t)
		_, err := env.store(t, storeJFB2).GetForm(ctx, &storev1.GetFormRequest{FormNumber: formA.GetNumber()})
		checkStatus(t, err, want{codes.NotFound, "FORM_NOT_FOUND", []string{"form_number"}})
		_, err = env.store(t, storeJFB2).VoidForm(ctx, &storev1.VoidFormRequest{RequestId: uuid.NewString(), FormNumber: formA.GetNumber(), Reason: "goods returned"})
		checkStatus(t, err, want{codes.NotFound, "FORM_NOT_FOUND", []string{"form_number"}})
		list, err := env.store(t, storeJFB2).ListForms(ctx, &storev1.ListFormsRequest{})
		if err != nil {
			t.Fatalf("ListForms: %v", err)
		}
		for _, f := range list.GetForms() {
			if f.GetNumber() == formA.GetNumber() || f.GetStoreCode() != "S-JFB-2" {
				t.Errorf("S-JFB-2 lists form %s of %s", f.GetNumber(), f.GetStoreCode())
			}
		}
		if d := countDiff(before, env.tableCounts(t)); d != "" {
			t.Errorf("refused cross-store calls wrote: %s", d)
		}
		if got := env.formState(t, formA.GetNumber()); got != "ISSUED" {
			t.Errorf("form A is %s, want ISSUED", got)
		}
		// The control: the owner reads and lists it.
		own, err := env.store(t, storeJFB1).ListForms(ctx, &storev1.ListFormsRequest{})
		if err != nil || len(own.GetForms()) != 1 || own.GetForms()[0].GetNumber() != formA.GetNumber() {
			t.Fatalf("S-JFB-1 lists %v (%v), want its form %s", own.GetForms(), err, formA.GetNumber())
		}
	})

	t.Run("the port of a verification is the officer's certificate's", func(t *testing.T) {
		// The request has no port to forge: no field of VerifyExportRequest names one.
		fields := (&deskv1.VerifyExportRequest{}).ProtoReflect().Descriptor().Fields()
		for i := range fields.Len() {
			if n := string(fields.Get(i).Name()); strings.Contains(n, "port") || strings.Contains(n, "officer") {
				t.Errorf("VerifyExportRequest has a field %q: the port/officer must come from the certificate", n)
			}
		}
		v := env.verifyAll(t, customsTFU, formA, docA)
		var port, officer string
		if err := env.pool.QueryRow(ctx, `SELECT verified_port, verified_officer FROM forms WHERE number = $1`, formA.GetNumber()).Scan(&port, &officer); err != nil {
			t.Fatal(err)
		}
		if v.GetVerification().GetPort() != "TFU" || port != "TFU" || officer != "officer-2" {
			t.Errorf("verified at %q (stored %q by %q), want TFU by officer-2 (the TFU certificate)", v.GetVerification().GetPort(), port, officer)
		}
		var ckg int
		if err := env.pool.QueryRow(ctx, `SELECT count(*) FROM forms WHERE verified_port = 'CKG'`).Scan(&ckg); err != nil {
			t.Fatal(err)
		}
		if ckg != 0 {
			t.Errorf("%d forms verified at CKG, want 0", ckg)
		}
		// Customs at CKG confirming the same form again is refused and writes nothing.
		before := env.tableCounts(t)
		_, err := env.desk(t, customsCKG).VerifyExport(ctx, &deskv1.VerifyExportRequest{RequestId: uuid.NewString(), FormNumber: formA.GetNumber(),
			PresentedDocument: docA, Lines: []*deskv1.LineConfirmation{{LineNo: 1, ConfirmedQuantity: 3}, {LineNo: 2, ConfirmedQuantity: 1}}})
		if st := status.Convert(err); st.Code() == codes.OK {
			t.Errorf("a second verification at CKG succeeded")
		}
		if d := countDiff(before, env.tableCounts(t)); d != "" {
			t.Errorf("the refused second verification wrote: %s", d)
		}
	})

	var payoutCQ string
	t.Run("a payout is at the caller's desk and agency", func(t *testing.T) {
		// The traveller's form confirmed at CKG is paid at CKG-01.
		formA2 := env.verifyAll(t, customsCKG, env.issue(t, storeJFB1, domainExample("K1111-2222", "INV-X-A2")), docA)
		paid, err := env.desk(t, cashier1).SettleRefund(ctx, settleReq(docA, "RCPT-X-A", formA2.GetNumber()))
		if err != nil {
			t.Fatalf("SettleRefund: %v", err)
		}
		// Form A was confirmed at TFU: CKG-01 may not pay it (DOMAIN.md §5), and writes nothing.
		before := env.tableCounts(t)
		_, err = env.desk(t, cashier1).SettleRefund(ctx, settleReq(docA, "RCPT-X-A1", formA.GetNumber()))
		st := checkStatus(t, err, want{codes.FailedPrecondition, "WRONG_PORT", []string{"form_numbers"}})
		if !strings.Contains(st.Message(), "TFU") || !strings.Contains(st.Message(), "CKG") {
			t.Errorf("WRONG_PORT message %q does not name both ports", st.Message())
		}
		if d := countDiff(before, env.tableCounts(t)); d != "" {
			t.Errorf("the refused payout at the wrong port wrote: %s", d)
		}
		p := paid.GetPayout()
		payoutCQ = p.GetPayoutId()
		var deskCode, agencyCode, cashier string
		if err := env.pool.QueryRow(ctx, `SELECT desk_code, agency_code, cashier FROM payouts WHERE id = $1`, payoutCQ).Scan(&deskCode, &agencyCode, &cashier); err != nil {
			t.Fatal(err)
		}
		if p.GetDeskCode() != "CKG-01" || p.GetAgencyCode() != "AG-CQ" || p.GetCashier() != "cashier-1" ||
			deskCode != "CKG-01" || agencyCode != "AG-CQ" || cashier != "cashier-1" {
			t.Errorf("payout at %s/%s by %s (stored %s/%s by %s), want CKG-01/AG-CQ by cashier-1 (the certificate's)",
				p.GetDeskCode(), p.GetAgencyCode(), p.GetCashier(), deskCode, agencyCode, cashier)
		}
		fields := (&deskv1.SettleRefundRequest{}).ProtoReflect().Descriptor().Fields()
		for i := range fields.Len() {
			if n := string(fields.Get(i).Name()); strings.Contains(n, "desk") || strings.Contains(n, "agency") || strings.Contains(n, "cashier") {
				t.Errorf("SettleRefundRequest has a field %q: desk, agency and cashier must come from the certificate", n)
			}
		}
	})

	t.Run("a cashier of AG-CD cannot reprint AG-CQ's payout", func(t *testing.T) {
		if payoutCQ == "" {
			t.Skip("no payout")
		}
		before := env.tableCounts(t)
		_, err := env.desk(t, cashierTFU).GetPayout(ctx, &deskv1.GetPayoutRequest{PayoutId: payoutCQ})
		theirs := checkStatus(t, err, want{codes.NotFound, "PAYOUT_NOT_FOUND", []string{"payout_id"}})
		_, err = env.desk(t, cashierTFU).GetPayout(ctx, &deskv1.GetPayoutRequest{PayoutId: uuid.NewString()})
		none := checkStatus(t, err, want{codes.NotFound, "PAYOUT_NOT_FOUND", []string{"payout_id"}})
		if theirs.Message() != none.Message() {
			t.Errorf("another agency's payout (%q) and no payout (%q) read differently", theirs.Message(), none.Message())
		}
		if d := countDiff(before, env.tableCounts(t)); d != "" {
			t.Errorf("refused reprint wrote: %s", d)
		}
		// The control: a cashier of AG-CQ at another desk reprints it.
		if _, err := env.desk(t, cashier2).GetPayout(ctx, &deskv1.GetPayoutRequest{PayoutId: payoutCQ}); err != nil {
			t.Errorf("CKG-02 (AG-CQ) reprint: %v", err)
		}
	})

	t.Run("an agency declares only its own payouts", func(t *testing.T) {
		// A second traveller paid at TFU-01 (AG-CD) in the same month.
		docB := passport(env.tr.secret("L3333-4444"))
		formB := env.verifyAll(t, customsTFU, env.issue(t, storeJFB2, domainExample("L3333-4444", "INV-X-B")), docB)
		paidB, err := env.desk(t, cashierTFU).SettleRefund(ctx, settleReq(docB, "RCPT-X-B", formB.GetNumber()))
		if err != nil {
			t.Fatalf("SettleRefund at TFU-01: %v", err)
		}
		if paidB.GetPayout().GetDeskCode() != "TFU-01" || paidB.GetPayout().GetAgencyCode() != "AG-CD" {
			t.Errorf("payout at %s/%s, want TFU-01/AG-CD", paidB.GetPayout().GetDeskCode(), paidB.GetPayout().GetAgencyCode())
		}
		env.clock.Set(time.Date(2025, 7, 2, 2, 0, 0, 0, time.UTC))
		agencyClient := func(name string) agencyv1.AgencyServiceClient {
			return agencyv1.NewAgencyServiceClient(env.conn(t, name))
		}
		cq, err := agencyClient(agencyCQ).DeclareMonth(ctx, &agencyv1.DeclareMonthRequest{RequestId: uuid.NewString(), Month: "2025-06"})
		if err != nil {
			t.Fatalf("DeclareMonth AG-CQ: %v", err)
		}
		d := cq.GetDeclaration()
		if d.GetAgencyCode() != "AG-CQ" || d.GetForms() != 1 || len(d.GetLines()) != 1 || d.GetLines()[0].GetPayoutId() != payoutCQ {
			t.Errorf("AG-CQ declared agency %s, %d forms, lines %v; want AG-CQ, 1 form, payout %s only", d.GetAgencyCode(), d.GetForms(), d.GetLines(), payoutCQ)
		}
		// A cashier of AG-CD declares for AG-CD, with its own payout only.
		cd, err := agencyClient(cashierTFU).DeclareMonth(ctx, &agencyv1.DeclareMonthRequest{RequestId: uuid.NewString(), Month: "2025-06"})
		if err != nil {
			t.Fatalf("DeclareMonth as TFU-01: %v", err)
		}
		if g := cd.GetDeclaration(); g.GetAgencyCode() != "AG-CD" || len(g.GetLines()) != 1 || g.GetLines()[0].GetPayoutId() != paidB.GetPayout().GetPayoutId() {
			t.Errorf("TFU-01 declared agency %s, lines %v; want AG-CD with payout %s only", g.GetAgencyCode(), g.GetLines(), paidB.GetPayout().GetPayoutId())
		}
		// AG-CD's back office cannot read AG-CQ's declaration, nor list it.
		before := env.tableCounts(t)
		_, err = agencyClient(agencyCD).GetDeclaration(ctx, &agencyv1.GetDeclarationRequest{DeclarationId: d.GetDeclarationId()})
		checkStatus(t, err, want{codes.NotFound, "DECLARATION_NOT_FOUND", []string{"declaration_id"}})
		list, err := agencyClient(agencyCD).ListDeclarations(ctx, &agencyv1.ListDeclarationsRequest{})
		if err != nil {
			t.Fatalf("ListDeclarations AG-CD: %v", err)
		}
		for _, x := range list.GetDeclarations() {
			if x.GetAgencyCode() != "AG-CD" {
				t.Errorf("AG-CD lists a declaration of %s", x.GetAgencyCode())
			}
		}
		if len(list.GetDeclarations()) != 1 {
			t.Errorf("AG-CD lists %d declarations, want 1 (its own)", len(list.GetDeclarations()))
		}
		if d := countDiff(before, env.tableCounts(t)); d != "" {
			t.Errorf("refused cross-agency reads wrote: %s", d)
		}
	})

	// Nothing above leaked a form number guess: a random number is NOT_FOUND to everyone.
	_, err := env.store(t, storeJFB2).GetForm(ctx, &storev1.GetFormRequest{FormNumber: refund.NewFormNumber()})
	checkStatus(t, err, want{codes.NotFound, "FORM_NOT_FOUND", []string{"form_number"}})
}
