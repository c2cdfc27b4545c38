// Package server builds the gRPC server: mutual TLS, the caller's identity and
// authorization, error mapping, health and reflection, and the three services.
package server

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	agencyv1 "taxrefund/api/taxrefund/agency/v1"
	authorityv1 "taxrefund/api/taxrefund/authority/v1"
	consolev1 "taxrefund/api/taxrefund/console/v1"
	deskv1 "taxrefund/api/taxrefund/desk/v1"
	storev1 "taxrefund/api/taxrefund/store/v1"
	"taxrefund/internal/auth"
)

// MaxMessageBytes bounds a request. It is above any legitimate form (at most 100 lines)
// so that an oversized field is refused by validation, naming the field.
const MaxMessageBytes = 16 << 20

// Services are the handlers to register; nil ones are left out.
type Services struct {
	Store     storev1.StoreServiceServer
	Desk      deskv1.DeskServiceServer
	Authority authorityv1.AuthorityServiceServer
	Agency    agencyv1.AgencyServiceServer
	Console   consolev1.ConsoleServiceServer
}

// Options configure New.
type Options struct {
	TLS *tls.Config
	Log *slog.Logger
	// Active says whether a party named in a valid certificate may act now (e.g. the store
	// exists and has not exited). Nil allows every party.
	Active func(ctx context.Context, p auth.Party) error
	// Limits bound each caller; nil means DefaultLimits().
	Limits *Limits
	// Unary and Stream run first, outside everything else but the panic guard, so that
	// they see every call and its final status (metrics).
	Unary  []grpc.UnaryServerInterceptor
	Stream []grpc.StreamServerInterceptor
	// ServerOptions are added as they are (a stats handler for traces).
	ServerOptions []grpc.ServerOption
	// Local, if set, is wired to the same matrix, registry check, rate buckets and
	// admission as the gRPC calls, for in-process calls (the console).
	Local *Local
}

// New returns a server with every service registered, and its health server (SERVING,
// overall and for each service; DatabaseWatch keeps it in step with the database).
func New(o Options, s Services) (*grpc.Server, *health.Server, error) {
	m := auth.DefaultMatrix()
	if err := m.Validate(); err != nil {
		return nil, nil, err
	}
	// Health checking answers from the server's own state and names no party: it must
	// answer while the registry's database is away.
	a := &auth.Authorizer{Matrix: m, Active: o.Active, Logger: o.Log, SkipActive: []string{
		"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch", "/grpc.health.v1.Health/List"}}
	limits := DefaultLimits()
	if o.Limits != nil {
		limits = *o.Limits
	}
	lim := newLimiter(limits)
	refusals := newRefusalLog(o.Log)
	codec := newRequestCodec()
	adm := newAdmission(limits)
	if o.Local != nil {
		d := limits.Deadline
		*o.Local = Local{matrix: m, active: o.Active, skip: a.SkipActive, limiter: lim, admission: adm, log: cmp.Or(o.Log, slog.Default()),
			deadline: func(ctx context.Context) (context.Context, context.CancelFunc) {
				if dl, ok := ctx.Deadline(); d <= 0 || ok && time.Until(dl) <= d {
					return ctx, func() {}
				}
				return context.WithTimeout(ctx, d)
			}}
	}
	// The order: the rate budget and a full admission queue are answered at the transport,
	// before the request is read (tapHandle); metrics and the refusal log see every other
	// call's final status; the deadline bounds everything after it; a malformed or
	// oversized request is refused before the authorization's database check; admission
	// runs once the caller is known and active.
	unary := append([]grpc.UnaryServerInterceptor{recoverUnary(o.Log)}, o.Unary...)
	unary = append(unary, refusals.unary(), deadlineUnary(limits.Deadline), codec.unary(), a.Unary(), scopeUnary, adm.unary(), errorInterceptor(o.Log))
	stream := append([]grpc.StreamServerInterceptor{recoverStream(o.Log)}, o.Stream...)
	stream = append(stream, refusals.stream(), codec.stream(), a.Stream(), scopeStream, adm.stream(), errorStreamInterceptor(o.Log))
	opts := []grpc.ServerOption{
		grpc.Creds(credentials.NewTLS(o.TLS)),
		grpc.InTapHandle(tapHandle(lim, adm, refusals)),
		grpc.ForceServerCodecV2(codec),
		grpc.MaxRecvMsgSize(MaxMessageBytes),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
	}
	if limits.MaxConcurrentStreams > 0 {
		opts = append(opts, grpc.MaxConcurrentStreams(limits.MaxConcurrentStreams))
	}
	if limits.MinPingInterval > 0 {
		opts = append(opts, grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: limits.MinPingInterval, PermitWithoutStream: true}))
	}
	opts = append(opts, grpc.KeepaliveParams(keepalive.ServerParameters{
		MaxConnectionIdle: limits.MaxConnectionIdle, MaxConnectionAge: limits.MaxConnectionAge, MaxConnectionAgeGrace: 30 * time.Second,
		Time: time.Minute, Timeout: 20 * time.Second,
	}))
	opts = append(opts, o.ServerOptions...)
	srv := grpc.NewServer(opts...)
	if s.Store != nil {
		storev1.RegisterStoreServiceServer(srv, s.Store)
	}
	if s.Desk != nil {
		deskv1.RegisterDeskServiceServer(srv, s.Desk)
	}
	if s.Authority != nil {
		authorityv1.RegisterAuthorityServiceServer(srv, s.Authority)
	}
	if s.Agency != nil {
		agencyv1.RegisterAgencyServiceServer(srv, s.Agency)
	}
	if s.Console != nil {
		consolev1.RegisterConsoleServiceServer(srv, s.Console)
	}
	hs := health.NewServer()
	for name := range srv.GetServiceInfo() {
		hs.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	healthpb.RegisterHealthServer(srv, hs)
	reflection.Register(srv)
	return srv, hs, nil
}

func recoverUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				log.ErrorContext(ctx, "panic", "method", info.FullMethod, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				err = status.Error(codes.Internal, "internal error; retry with the same request_id")
			}
		}()
		return handler(ctx, req)
	}
}

func recoverStream(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer func() {
			if r := recover(); r != nil {
				log.Error("panic", "method", info.FullMethod, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				err = status.Error(codes.Internal, "internal error")
			}
		}()
		return handler(srv, ss)
	}
}
