package server

import (
	"context"
	"errors"
	"log/slog"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"taxrefund/internal/auth"
)

// Local runs a service method in-process for a party authenticated some other way than a
// client certificate on the call (a browser session bound to a party by a certificate-
// authenticated call: internal/console). It applies what the gRPC chain applies after the
// certificate is read: the deadline, the authorization matrix, the registry's Active check,
// the database scope, the caller's rate budget and admission (the same buckets as the
// party's gRPC calls), and the error mapping. Hand it to New in Options.Local; it answers
// Unavailable until New has wired it.
type Local struct {
	matrix    auth.Matrix
	active    func(ctx context.Context, p auth.Party) error
	skip      []string
	limiter   *limiter
	admission *admission
	deadline  deadlineFunc
	log       *slog.Logger
}

type deadlineFunc func(ctx context.Context) (context.Context, context.CancelFunc)

// Call runs handler with req as party p calling method (a full gRPC method name), and
// returns its response or a gRPC status error.
func (l *Local) Call(ctx context.Context, p auth.Party, method string, req any, handler func(ctx context.Context, req any) (any, error)) (any, error) {
	if l == nil || l.matrix == nil {
		return nil, status.Error(codes.Unavailable, "the service is starting")
	}
	ctx, cancel := l.deadline(ctx)
	defer cancel()
	if !l.matrix.Allows(method, p.Role) {
		return nil, status.Errorf(codes.PermissionDenied, "role %s may not call %s", p.Role, method)
	}
	if l.active != nil && !slices.Contains(l.skip, method) {
		if err := l.active(ctx, p); err != nil {
			if errors.Is(err, auth.ErrInactive) {
				return nil, status.Errorf(codes.PermissionDenied, "role %s: party is not active", p.Role)
			}
			if s, ok := status.FromError(err); ok {
				return nil, s.Err()
			}
			l.log.ErrorContext(ctx, "active check failed", "method", method, "party", p.URI, "err", err)
			return nil, status.Error(codes.Internal, "authorization check failed")
		}
	}
	ctx = auth.NewContext(ctx, p)
	ctx, err := scope(ctx)
	if err != nil {
		return nil, err
	}
	if !l.limiter.allow(p.URI) {
		return nil, errRate
	}
	release, err := l.admission.acquire(ctx, p.URI, Cost(method))
	if err != nil {
		return nil, err
	}
	defer release()
	resp, err := handler(ctx, req)
	if err != nil {
		st := Status(err)
		if st.Code() == codes.Internal || st.Code() == codes.Unavailable {
			l.log.ErrorContext(ctx, "request failed", "method", method, "error", err)
		}
		return nil, st.Err()
	}
	return resp, nil
}
