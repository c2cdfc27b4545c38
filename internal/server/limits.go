package server

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"taxrefund/internal/auth"
)

// Limits bound what one caller can ask of the server.
type Limits struct {
	// Deadline is applied to a unary call that arrives without one, or with a longer one,
	// before anything else runs: the authorization's registry check is inside it, so a
	// database that does not answer holds a call no longer than this.
	Deadline time.Duration
	// Rate and Burst bound each caller's calls per second (token bucket); 0 disables.
	// What a call costs is bounded by MaxInFlight and PartyInFlight.
	Rate  float64
	Burst int
	// MaxInFlight bounds the cost units in flight of all callers, PartyInFlight those of
	// one caller; a call over either is RESOURCE_EXHAUSTED at once. 0 disables.
	MaxInFlight   int
	PartyInFlight int
	// Connection limits (0: gRPC's default, none): the most streams of one connection,
	// how long a connection lives and may stay idle, and the least interval between a
	// client's keepalive pings (a client pinging more often is disconnected).
	MaxConcurrentStreams uint32
	MaxConnectionAge     time.Duration
	MaxConnectionIdle    time.Duration
	MinPingInterval      time.Duration
}

// DefaultDeadline is the server's deadline of a unary call (taxrefund serve -call-timeout).
const DefaultDeadline = 10 * time.Second

// DefaultLimits suit a store POS, a desk and an official: well above a busy counter, far
// below what would starve other callers.
func DefaultLimits() Limits {
	return Limits{Deadline: DefaultDeadline, Rate: 500, Burst: 1000, MaxInFlight: 512, PartyInFlight: 64,
		MaxConcurrentStreams: 256, MaxConnectionAge: 30 * time.Minute, MaxConnectionIdle: 15 * time.Minute, MinPingInterval: 10 * time.Second}
}

// limiter keeps one token bucket per caller identity.
type limiter struct {
	limits  Limits
	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

func newLimiter(l Limits) *limiter {
	return &limiter{limits: l, buckets: map[string]*rate.Limiter{}}
}

func (l *limiter) allow(ctx context.Context) bool {
	if l.limits.Rate <= 0 {
		return true
	}
	p, ok := auth.FromContext(ctx)
	if !ok {
		return true
	}
	l.mu.Lock()
	b, ok := l.buckets[p.URI]
	if !ok {
		b = rate.NewLimiter(rate.Limit(l.limits.Rate), l.limits.Burst)
		l.buckets[p.URI] = b
	}
	l.mu.Unlock()
	return b.Allow()
}

// unary applies the caller's rate limit. It runs after the authorizer, so the bucket is
// the authenticated caller's.
func (l *limiter) unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !l.allow(ctx) {
			return nil, status.Error(codes.ResourceExhausted, "too many calls from this caller; slow down and retry with the same request_id")
		}
		return handler(ctx, req)
	}
}

// deadlineUnary gives a unary call the server's deadline d when the caller set none or a
// longer one (a shorter one of the caller's stands). It is the first interceptor after
// the panic guard, so that every later step, the registry check included, is bounded.
func deadlineUnary(d time.Duration) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if d > 0 {
			if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > d {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, d)
				defer cancel()
			}
		}
		return handler(ctx, req)
	}
}

func (l *limiter) stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if !l.allow(ss.Context()) {
			return status.Error(codes.ResourceExhausted, "too many calls from this caller; slow down")
		}
		return handler(srv, ss)
	}
}
