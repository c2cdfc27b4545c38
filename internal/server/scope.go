package server

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"taxrefund/internal/auth"
	"taxrefund/internal/db"
)

// The scope interceptors hand the authenticated party on to the database: every
// statement the handler makes runs with it, and row-level security on forms and payouts
// checks each row against it (migrations/00008_row_security.sql). They run after the
// authorizer, which put the party into the context.

func scopeUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := scope(ctx)
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func scopeStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := scope(ss.Context())
	if err != nil {
		return err
	}
	return handler(srv, &scopedStream{ServerStream: ss, ctx: ctx})
}

func scope(ctx context.Context) (context.Context, error) {
	p, ok := auth.FromContext(ctx)
	if !ok || p.Code() == "" {
		return nil, status.Error(codes.PermissionDenied, "no party")
	}
	return db.WithParty(ctx, string(p.Role), p.Code()), nil
}

type scopedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *scopedStream) Context() context.Context { return s.ctx }
