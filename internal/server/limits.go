package server

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"

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
	// PartyShare is a caller's fair share of the units in flight: admitted whatever the
	// load. Beyond it (up to PartyInFlight) a caller borrows only while fewer than Busy
	// units are in flight in all; otherwise its call waits up to PartyWait, in a queue of
	// at most PartyQueue calls of that caller, and is then RESOURCE_EXHAUSTED. PartyShare
	// 0 is PartyInFlight (no queue); PartyWait 0 refuses at once; PartyQueue 0 is
	// DefaultPartyQueue. ForPool sizes PartyShare and Busy from the database pool.
	PartyShare int
	Busy       int
	PartyWait  time.Duration
	PartyQueue int
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
// below what would starve other callers. The fair share is ForPool(DefaultPoolConns).
func DefaultLimits() Limits {
	return Limits{Deadline: DefaultDeadline, Rate: 500, Burst: 1000, MaxInFlight: 512, PartyInFlight: 64,
		PartyWait: DefaultPartyWait, PartyQueue: DefaultPartyQueue,
		MaxConcurrentStreams: 256, MaxConnectionAge: 30 * time.Minute, MaxConnectionIdle: 15 * time.Minute, MinPingInterval: 10 * time.Second}.ForPool(DefaultPoolConns)
}

// Admission defaults (OPERATIONS.md, "Admission"): a pool of 16 connections per service
// (taxrefund serve -max-conns); a call beyond its caller's share waits up to 2 s, well
// inside the 10 s deadline, and a caller's queue holds as many calls as one connection
// may carry streams.
const (
	DefaultPoolConns  = 16
	DefaultPartyWait  = 2 * time.Second
	DefaultPartyQueue = 256
)

// ForPool sizes the admission to a database pool of conns connections: a caller's fair
// share is a quarter of the pool, and the server counts as busy once a pool's worth of
// units is in flight (beyond that, calls queue for a connection anyway). A caller alone
// still borrows up to the whole pool. A quarter, not a half: with half, a flooding store's
// calls (the expensive ones among them) took a third of the server's throughput from 63
// others and raised their p99 1.7-2.8 times; with a quarter 1.0 (BENCH.md, "A flooding
// caller").
func (l Limits) ForPool(conns int) Limits {
	if conns <= 0 {
		return l
	}
	l.PartyShare, l.Busy = max(1, conns/4), conns
	return l
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

// allow spends one of party's tokens, or says the bucket is empty.
func (l *limiter) allow(party string) bool {
	if l.limits.Rate <= 0 || party == "" {
		return true
	}
	l.mu.Lock()
	b, ok := l.buckets[party]
	if !ok {
		b = rate.NewLimiter(rate.Limit(l.limits.Rate), l.limits.Burst)
		l.buckets[party] = b
	}
	l.mu.Unlock()
	return b.Allow()
}

var errRate = status.Error(codes.ResourceExhausted, "too many calls from this caller; slow down and retry with the same request_id")

// tapHandle refuses a call as soon as its headers arrive, before its request is read,
// decoded or authorized (no goroutine, no database look-up), when its caller's rate budget
// is spent or its admission queue is full: a flood is answered at the least cost. The
// caller is the party of the connection's verified certificate; a connection without
// one passes, for the authorizer to refuse.
func tapHandle(lim *limiter, adm *admission, refusals *refusalLog) tap.ServerInHandle {
	return func(ctx context.Context, info *tap.Info) (context.Context, error) {
		p, ok := auth.PeerParty(ctx)
		if !ok {
			return ctx, nil
		}
		var err error
		if !lim.allow(p.URI) {
			err = errRate
		} else if Cost(info.FullMethodName) > 0 {
			err = adm.queueFull(p.URI)
		}
		if err != nil {
			refusals.record(ctx, info.FullMethodName, err)
			return ctx, err
		}
		return ctx, nil
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
