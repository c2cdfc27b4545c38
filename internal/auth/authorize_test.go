package auth

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

func TestDefaultMatrix(t *testing.T) {
	m := DefaultMatrix()
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	const (
		store     = "/taxrefund.store.v1.StoreService/"
		desk      = "/taxrefund.desk.v1.DeskService/"
		authority = "/taxrefund.authority.v1.AuthorityService/"
		agency    = "/taxrefund.agency.v1.AgencyService/"
		console   = "/taxrefund.console.v1.ConsoleService/"
	)
	want := map[string][]Role{
		store + "IssueForm":            {RoleStore},
		store + "GetForm":              {RoleStore},
		store + "ListForms":            {RoleStore},
		store + "VoidForm":             {RoleStore},
		store + "GetFormDocument":      {RoleStore},
		desk + "FindForms":             {RoleCustoms, RoleDesk},
		desk + "VerifyExport":          {RoleCustoms},
		desk + "SettleRefund":          {RoleDesk},
		desk + "GetPayout":             {RoleDesk},
		desk + "PayImmediateRefund":    {RoleDesk},
		desk + "ReturnPrepayment":      {RoleDesk},
		desk + "RecordInspection":      {RoleCustoms},
		agency + "DeclareMonth":        {RoleAgency, RoleDesk},
		agency + "GetDeclaration":      {RoleAgency, RoleDesk},
		agency + "ListDeclarations":    {RoleAgency, RoleDesk},
		console + "CreateSignInLink":   {RoleCustoms, RoleDesk, RoleAuthority},
		"/grpc.health.v1.Health/Check": Roles(),
		"/grpc.health.v1.Health/Watch": Roles(),
		"/grpc.health.v1.Health/List":  Roles(),
		"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      Roles(),
		"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": Roles(),
	}
	for _, method := range []string{
		"RunExpiry", "CheckInvariants", "RegisterStore", "SuspendStore", "ReinstateStore", "ExitStore", "GetStore",
		"ListStores", "GetRegistry", "SetParameter", "ListParameters", "ListDeclarations", "GetDeclaration",
		"ApproveDeclaration", "ReturnDeclaration", "CloseMonth", "Reconcile", "MonthlyReport", "ExportReport",
		"SetCalendarDay", "RunCaptures", "ListAcquirerInstructions", "VerifyChains", "RevokeCertificate", "MonthlyTrend", "ChainHeads",
		"SetStoreReview", "RiskReport", "GetFormTrail", "GetPayoutTrail", "SetStoreGrade",
	} {
		want[authority+method] = []Role{RoleAuthority}
	}
	if len(m) != len(want) {
		t.Errorf("DefaultMatrix has %d methods, want %d", len(m), len(want))
	}
	// Check every cell, allowed and denied, so an extra role is caught too.
	for method, roles := range want {
		for _, r := range Roles() {
			allowed := false
			for _, w := range roles {
				allowed = allowed || w == r
			}
			if got := m.Allows(method, r); got != allowed {
				t.Errorf("Allows(%s, %s) = %v, want %v", method, r, got, allowed)
			}
		}
	}
	if m.Allows(store+"DeleteEverything", RoleAuthority) {
		t.Error("a method missing from the matrix is allowed")
	}
	if m.Allows(strings.TrimPrefix(store+"IssueForm", "/"), RoleStore) {
		t.Error("a method name without leading slash is allowed")
	}
	if m.Allows(store+"IssueForm", Role("Store")) || m.Allows(store+"IssueForm", "") {
		t.Error("an undefined role is allowed")
	}
}

func TestMatrixValidate(t *testing.T) {
	bad := []Matrix{
		{"grpc.health.v1.Health/Check": {RoleStore}},
		{"/grpc.health.v1.Health": {RoleStore}},
		{"/grpc.health.v1.Health/": {RoleStore}},
		{"//Check": {RoleStore}},
		{"/Health/Check": {RoleStore}},
		{"/grpc.health.v1.Health/Check/x": {RoleStore}},
		{"/grpc.health.v1.Health/Check": {"traveller"}},
	}
	for _, m := range bad {
		if err := m.Validate(); err == nil {
			t.Errorf("Validate(%v) succeeded", m)
		}
	}
}

// tlsPeer returns ctx with a TLS peer whose verified chain starts with leaf.
func tlsPeer(ctx context.Context, leaf *x509.Certificate) context.Context {
	st := tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}
	if leaf != nil {
		st.VerifiedChains = [][]*x509.Certificate{{leaf}}
	}
	return peer.NewContext(ctx, &peer.Peer{AuthInfo: credentials.TLSInfo{State: st}})
}

const checkMethod = "/grpc.health.v1.Health/Check"

// callUnary runs a's unary interceptor and reports the party the handler saw.
func callUnary(ctx context.Context, a *Authorizer, method string) (Party, bool, error) {
	var seen Party
	called := false
	_, err := a.Unary()(ctx, "req", &grpc.UnaryServerInfo{FullMethod: method}, func(ctx context.Context, req any) (any, error) {
		called = true
		seen, _ = FromContext(ctx)
		return "resp", nil
	})
	return seen, called, err
}

func TestUnaryAuthentication(t *testing.T) {
	a := &Authorizer{Matrix: DefaultMatrix()}
	store := newCert(t, false, "taxrefund://store/S1")
	cases := []struct {
		name string
		ctx  context.Context
	}{
		{"no peer", context.Background()},
		{"peer without auth info", peer.NewContext(context.Background(), &peer.Peer{})},
		{"certificate presented but not verified", peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{
			State: tls.ConnectionState{PeerCertificates: []*x509.Certificate{store}},
		}})},
		{"CA certificate", tlsPeer(context.Background(), newCert(t, true, "taxrefund://store/S1"))},
		{"no identity", tlsPeer(context.Background(), newCert(t, false))},
		{"two identities", tlsPeer(context.Background(), newCert(t, false, "taxrefund://store/S1", "taxrefund://store/S2"))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, called, err := callUnary(tc.ctx, a, checkMethod)
			if status.Code(err) != codes.Unauthenticated {
				t.Fatalf("code = %v (%v), want Unauthenticated", status.Code(err), err)
			}
			if called {
				t.Fatal("handler ran for an unauthenticated call")
			}
		})
	}

	p, called, err := callUnary(tlsPeer(context.Background(), store), a, checkMethod)
	if err != nil || !called {
		t.Fatalf("verified store: err %v, called %v", err, called)
	}
	if p.URI != "taxrefund://store/S1" || p.Role != RoleStore {
		t.Fatalf("handler saw party %+v, want store S1", p)
	}
}

func TestUnaryAuthorization(t *testing.T) {
	store := tlsPeer(context.Background(), newCert(t, false, "taxrefund://store/S1"))
	desk := tlsPeer(context.Background(), newCert(t, false, "taxrefund://desk/D1/C1"))
	a := &Authorizer{Matrix: DefaultMatrix()}

	const settle = "/taxrefund.desk.v1.DeskService/SettleRefund"
	if _, called, err := callUnary(desk, a, settle); err != nil || !called {
		t.Fatalf("desk SettleRefund: err %v, called %v", err, called)
	}
	_, called, err := callUnary(store, a, settle)
	if status.Code(err) != codes.PermissionDenied || called {
		t.Fatalf("store SettleRefund: code %v, called %v; want PermissionDenied, not called", status.Code(err), called)
	}
	msg := status.Convert(err).Message()
	if !strings.Contains(msg, "store") || !strings.Contains(msg, settle) {
		t.Errorf("denial %q does not name the role and the method", msg)
	}
	if strings.Contains(msg, "S1") || strings.Contains(msg, "taxrefund://") {
		t.Errorf("denial %q reveals certificate details", msg)
	}

	// A matrix entry without a leading slash never matches, even verbatim.
	noSlash := &Authorizer{Matrix: Matrix{"grpc.health.v1.Health/Check": Roles()}}
	if _, called, err := callUnary(store, noSlash, "grpc.health.v1.Health/Check"); status.Code(err) != codes.PermissionDenied || called {
		t.Errorf("method without leading slash: code %v, called %v; want PermissionDenied", status.Code(err), called)
	}
	// A nil matrix denies everything.
	if _, _, err := callUnary(store, &Authorizer{}, checkMethod); status.Code(err) != codes.PermissionDenied {
		t.Errorf("nil matrix: code %v, want PermissionDenied", status.Code(err))
	}
	// The package-level constructors enforce the matrix too.
	_, err = UnaryServerInterceptor(Matrix{})(store, nil, &grpc.UnaryServerInfo{FullMethod: checkMethod}, func(context.Context, any) (any, error) {
		t.Error("handler ran")
		return nil, nil
	})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("UnaryServerInterceptor(empty): code %v, want PermissionDenied", status.Code(err))
	}
}

func TestActiveHook(t *testing.T) {
	var logs bytes.Buffer
	var hookSaw Party
	a := &Authorizer{
		Matrix: DefaultMatrix(),
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Active: func(ctx context.Context, p Party) error {
			hookSaw, _ = FromContext(ctx)
			switch p.Store {
			case "SUSPENDED":
				return fmt.Errorf("store %s: %w", p.Store, ErrInactive)
			case "GONE":
				return status.Error(codes.NotFound, "store not registered")
			case "DBDOWN":
				return errors.New("pq: connection refused to 10.0.0.5")
			}
			return nil
		},
	}
	call := func(store string) (bool, error) {
		ctx := tlsPeer(context.Background(), newCert(t, false, "taxrefund://store/"+store))
		_, called, err := callUnary(ctx, a, checkMethod)
		return called, err
	}

	if called, err := call("OK1"); err != nil || !called {
		t.Fatalf("active store: err %v, called %v", err, called)
	}
	if hookSaw.Store != "OK1" {
		t.Errorf("Active hook's context carried %+v, want store OK1", hookSaw)
	}
	if called, err := call("SUSPENDED"); status.Code(err) != codes.PermissionDenied || called {
		t.Errorf("suspended store: code %v, called %v; want PermissionDenied", status.Code(err), called)
	}
	if called, err := call("GONE"); status.Code(err) != codes.NotFound || called {
		t.Errorf("status error from hook: code %v, called %v; want NotFound", status.Code(err), called)
	}
	called, err := call("DBDOWN")
	if status.Code(err) != codes.Internal || called {
		t.Fatalf("failing hook: code %v, called %v; want Internal", status.Code(err), called)
	}
	if strings.Contains(err.Error(), "10.0.0.5") {
		t.Errorf("internal error leaked to the client: %v", err)
	}
	if !strings.Contains(logs.String(), "10.0.0.5") {
		t.Errorf("internal error was not logged; log: %q", logs.String())
	}

	// The hook is not consulted for a call the matrix already denies.
	hookSaw = Party{}
	ctx := tlsPeer(context.Background(), newCert(t, false, "taxrefund://store/OK2"))
	if _, _, err := callUnary(ctx, a, "/taxrefund.authority.v1.AuthorityService/RunExpiry"); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("store RunExpiry: code %v, want PermissionDenied", status.Code(err))
	}
	if hookSaw != (Party{}) {
		t.Error("Active hook ran for a call the matrix denies")
	}
}

type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s fakeStream) Context() context.Context { return s.ctx }

func TestStreamInterceptor(t *testing.T) {
	a := &Authorizer{Matrix: Matrix{"/grpc.health.v1.Health/Watch": {RoleCustoms}}}
	run := func(ctx context.Context) (Party, bool, error) {
		var seen Party
		called := false
		err := a.Stream()(nil, fakeStream{ctx: ctx}, &grpc.StreamServerInfo{FullMethod: "/grpc.health.v1.Health/Watch"}, func(_ any, ss grpc.ServerStream) error {
			called = true
			seen, _ = FromContext(ss.Context())
			return nil
		})
		return seen, called, err
	}

	p, called, err := run(tlsPeer(context.Background(), newCert(t, false, "taxrefund://customs/TFU/O9")))
	if err != nil || !called || p.Port != "TFU" || p.Officer != "O9" {
		t.Fatalf("customs Watch: party %+v, called %v, err %v", p, called, err)
	}
	if _, called, err := run(tlsPeer(context.Background(), newCert(t, false, "taxrefund://desk/D1"))); status.Code(err) != codes.PermissionDenied || called {
		t.Errorf("desk Watch: code %v, called %v; want PermissionDenied", status.Code(err), called)
	}
	if _, called, err := run(context.Background()); status.Code(err) != codes.Unauthenticated || called {
		t.Errorf("no peer: code %v, called %v; want Unauthenticated", status.Code(err), called)
	}
	err = StreamServerInterceptor(Matrix{})(nil, fakeStream{ctx: tlsPeer(context.Background(), newCert(t, false, "taxrefund://desk/D1"))},
		&grpc.StreamServerInfo{FullMethod: "/grpc.health.v1.Health/Watch"}, func(any, grpc.ServerStream) error {
			t.Error("handler ran")
			return nil
		})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("StreamServerInterceptor(empty): code %v, want PermissionDenied", status.Code(err))
	}
}
