package server_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"taxrefund/internal/auth"
	"taxrefund/internal/db"
	"taxrefund/internal/fault"
	"taxrefund/internal/server"
)

// TestLocalAppliesTheAPIsChecks: a call through server.Local (the console's way in) meets
// the gRPC chain's checks: the matrix, the registry's Active hook, the database scope, the
// caller's rate bucket, and the error mapping.
func TestLocalAppliesTheAPIsChecks(t *testing.T) {
	local := &server.Local{}
	cashier := auth.Party{Role: auth.RoleDesk, Desk: "CKG-01", Cashier: "c1", URI: "taxrefund://desk/CKG-01/c1"}
	suspended := auth.Party{Role: auth.RoleDesk, Desk: "OLD", URI: "taxrefund://desk/OLD"}
	active := func(_ context.Context, p auth.Party) error {
		if p.Desk == "OLD" {
			return fmt.Errorf("desk closed: %w", auth.ErrInactive)
		}
		return nil
	}
	limits := server.DefaultLimits()
	limits.Rate, limits.Burst = 0.001, 2 // two calls, then the bucket is empty for a long while
	if _, _, err := server.New(server.Options{TLS: &tls.Config{}, Log: slog.New(slog.DiscardHandler), Active: active, Limits: &limits, Local: local}, server.Services{}); err != nil {
		t.Fatal(err)
	}
	const settle = "/taxrefund.desk.v1.DeskService/SettleRefund"
	var seen context.Context
	ok := func(ctx context.Context, req any) (any, error) { seen = ctx; return "paid", nil }

	if _, err := local.Call(context.Background(), cashier, "/taxrefund.authority.v1.AuthorityService/ApproveDeclaration", nil, ok); status.Code(err) != codes.PermissionDenied {
		t.Errorf("cashier calling ApproveDeclaration: %v, want PermissionDenied", err)
	}
	if _, err := local.Call(context.Background(), suspended, settle, nil, ok); status.Code(err) != codes.PermissionDenied {
		t.Errorf("inactive desk: %v, want PermissionDenied", err)
	}
	out, err := local.Call(context.Background(), cashier, settle, nil, ok)
	if err != nil || out != "paid" {
		t.Fatalf("cashier SettleRefund: %v %v", out, err)
	}
	if p, _ := auth.FromContext(seen); p.URI != cashier.URI {
		t.Errorf("the handler saw party %q", p.URI)
	}
	if db.PartyOf(seen) == "" {
		t.Error("the handler's context carries no database scope")
	}
	_, err = local.Call(context.Background(), cashier, settle, nil, func(context.Context, any) (any, error) {
		return nil, fault.New(fault.Precondition, "WRONG_PORT", "pay at TFU")
	})
	if st := status.Convert(err); st.Code() != codes.FailedPrecondition || st.Message() != "pay at TFU" {
		t.Errorf("a fault: %v, want FailedPrecondition with its message", err)
	}
	// Two calls admitted (the matrix and Active refusals spent no token): the third is over
	// the budget.
	if _, err := local.Call(context.Background(), cashier, settle, nil, ok); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("third call: %v, want ResourceExhausted", err)
	}
	if _, err := (&server.Local{}).Call(context.Background(), cashier, settle, nil, ok); status.Code(err) != codes.Unavailable {
		t.Errorf("an unwired Local: %v, want Unavailable", err)
	}
}
