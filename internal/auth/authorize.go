package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Matrix lists, per full gRPC method name ("/package.Service/Method"), the
// roles allowed to call it. A method that is not in the matrix is denied to
// everyone, and so is any name without a leading slash.
type Matrix map[string][]Role

// Allows reports whether role may call the full method name method.
func (m Matrix) Allows(method string, role Role) bool {
	if !strings.HasPrefix(method, "/") || !role.Valid() {
		return false
	}
	return slices.Contains(m[method], role)
}

// Validate checks that every entry names a method as "/package.Service/Method"
// and lists only defined roles, so that a typo in the table shows up at
// start-up rather than as a mysterious PermissionDenied.
func (m Matrix) Validate() error {
	for method, roles := range m {
		svc, name, ok := strings.Cut(strings.TrimPrefix(method, "/"), "/")
		if !strings.HasPrefix(method, "/") || !ok || svc == "" || name == "" || strings.Contains(name, "/") || !strings.Contains(svc, ".") {
			return fmt.Errorf("authorization matrix: %q is not a full method name /package.Service/Method", method)
		}
		for _, r := range roles {
			if !r.Valid() {
				return fmt.Errorf("authorization matrix: %s lists unknown role %q", method, r)
			}
		}
	}
	return nil
}

// DefaultMatrix returns the service's authorization matrix: each party's
// services, plus health checking and server reflection for every role.
func DefaultMatrix() Matrix {
	const (
		store     = "/taxrefund.store.v1.StoreService/"
		desk      = "/taxrefund.desk.v1.DeskService/"
		authority = "/taxrefund.authority.v1.AuthorityService/"
		agency    = "/taxrefund.agency.v1.AgencyService/"
		console   = "/taxrefund.console.v1.ConsoleService/"
	)
	all := Roles()
	m := Matrix{
		store + "IssueForm": {RoleStore},
		store + "GetForm":   {RoleStore},
		store + "ListForms": {RoleStore},
		store + "VoidForm":  {RoleStore},

		store + "GetFormDocument": {RoleStore},

		desk + "FindForms":          {RoleCustoms, RoleDesk},
		desk + "VerifyExport":       {RoleCustoms},
		desk + "SettleRefund":       {RoleDesk},
		desk + "GetPayout":          {RoleDesk},
		desk + "PayImmediateRefund": {RoleDesk},
		desk + "ReturnPrepayment":   {RoleDesk},
		desk + "RecordInspection":   {RoleCustoms},

		agency + "DeclareMonth":     {RoleAgency, RoleDesk},
		agency + "GetDeclaration":   {RoleAgency, RoleDesk},
		agency + "ListDeclarations": {RoleAgency, RoleDesk},

		// The console has pages for the people at the desks and in the tax office.
		console + "CreateSignInLink": {RoleCustoms, RoleDesk, RoleAuthority},

		"/grpc.health.v1.Health/Check": all,
		"/grpc.health.v1.Health/Watch": all,
		"/grpc.health.v1.Health/List":  all,

		"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      all,
		"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": all,
	}
	// Every AuthorityService method is the authority's alone.
	for _, method := range []string{
		"RunExpiry", "CheckInvariants", "RegisterStore", "SuspendStore", "ReinstateStore", "ExitStore", "GetStore",
		"ListStores", "GetRegistry", "SetParameter", "ListParameters", "ListDeclarations", "GetDeclaration",
		"ApproveDeclaration", "ReturnDeclaration", "CloseMonth", "Reconcile", "MonthlyReport", "ExportReport",
		"SetCalendarDay", "RunCaptures", "ListAcquirerInstructions", "VerifyChains", "RevokeCertificate", "MonthlyTrend", "ChainHeads",
		"SetStoreReview", "RiskReport", "GetFormTrail", "GetPayoutTrail", "SetStoreGrade",
	} {
		m[authority+method] = []Role{RoleAuthority}
	}
	return m
}

// ErrInactive is what an Authorizer's Active hook returns (possibly wrapped)
// when the party exists but may not act now, e.g. a suspended store. The
// caller gets PermissionDenied. It is a constant, so nothing can reassign it.
const ErrInactive = constError("party is not active")

// ErrUnregistered is what an Active hook returns (possibly wrapped) when the certificate
// names an identity the register does not know, or a certificate that is not registered
// for it: the caller gets Unauthenticated.
const ErrUnregistered = constError("identity is not registered")

// constError is an error that can be declared as a constant.
type constError string

// Error returns the message.
func (e constError) Error() string { return string(e) }

// Authorizer authenticates and authorizes every gRPC call.
//
// For each call it takes the leaf of the first verified TLS chain of the
// peer, parses the Party from it (Unauthenticated if there is none), checks
// Matrix (PermissionDenied naming the role and the method, never certificate
// details), then calls Active if set, and hands the handler a context
// carrying the Party (see FromContext).
//
// Active may return ErrInactive (PermissionDenied), ErrUnregistered (Unauthenticated), a gRPC status error
// (passed through), or any other error (Internal, with a generic message;
// the error itself goes to Logger).
type Authorizer struct {
	Matrix Matrix
	Active func(ctx context.Context, p Party) error
	// SkipActive lists full method names that do not call Active (the matrix still
	// applies): health checking, which must answer while the registry's database is away.
	SkipActive []string
	Logger     *slog.Logger // nil: do not log
}

// UnaryServerInterceptor returns a unary interceptor enforcing m, with no
// Active hook.
func UnaryServerInterceptor(m Matrix) grpc.UnaryServerInterceptor {
	return (&Authorizer{Matrix: m}).Unary()
}

// StreamServerInterceptor returns a stream interceptor enforcing m, with no
// Active hook.
func StreamServerInterceptor(m Matrix) grpc.StreamServerInterceptor {
	return (&Authorizer{Matrix: m}).Stream()
}

// Unary returns the unary server interceptor of a.
func (a *Authorizer) Unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := a.authorize(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// Stream returns the stream server interceptor of a.
func (a *Authorizer) Stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := a.authorize(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, &partyStream{ServerStream: ss, ctx: ctx})
	}
}

// partyStream is a server stream whose context carries the Party.
type partyStream struct {
	grpc.ServerStream
	ctx context.Context
}

// Context returns the stream's context with the Party in it.
func (s *partyStream) Context() context.Context {
	return s.ctx
}

func (a *Authorizer) authorize(ctx context.Context, method string) (context.Context, error) {
	p, err := peerParty(ctx)
	if err != nil {
		return nil, err
	}
	if !a.Matrix.Allows(method, p.Role) {
		return nil, status.Errorf(codes.PermissionDenied, "role %s may not call %s", p.Role, method)
	}
	ctx = NewContext(ctx, p)
	if a.Active == nil || slices.Contains(a.SkipActive, method) {
		return ctx, nil
	}
	err = a.Active(ctx, p)
	switch {
	case err == nil:
		return ctx, nil
	case errors.Is(err, ErrInactive):
		return nil, status.Errorf(codes.PermissionDenied, "role %s: party is not active", p.Role)
	case errors.Is(err, ErrUnregistered):
		return nil, status.Errorf(codes.Unauthenticated, "role %s: the certificate's identity is not registered", p.Role)
	}
	if s, ok := status.FromError(err); ok {
		return nil, s.Err()
	}
	if a.Logger != nil {
		a.Logger.ErrorContext(ctx, "active check failed", "method", method, "party", p.URI, "err", err)
	}
	return nil, status.Error(codes.Internal, "authorization check failed")
}

// peerParty reads the party from the verified client certificate of the
// call's TLS connection. Unverified peer certificates are never looked at.
func peerParty(ctx context.Context) (Party, error) {
	pr, ok := peer.FromContext(ctx)
	if !ok || pr.AuthInfo == nil {
		return Party{}, status.Error(codes.Unauthenticated, "no TLS peer")
	}
	info, ok := pr.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return Party{}, status.Error(codes.Unauthenticated, "no TLS peer")
	}
	chains := info.State.VerifiedChains
	if len(chains) == 0 || len(chains[0]) == 0 {
		return Party{}, status.Error(codes.Unauthenticated, "no verified client certificate")
	}
	p, err := FromCertificate(chains[0][0])
	if err != nil {
		return Party{}, status.Error(codes.Unauthenticated, "client certificate does not name a party")
	}
	return p, nil
}

// PeerParty returns the party of the call's verified client certificate, for those that
// run before the authorizer (the refusal log); ok is false when there is none.
func PeerParty(ctx context.Context) (Party, bool) {
	p, err := peerParty(ctx)
	return p, err == nil
}
