package server

import (
	"context"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"taxrefund/internal/auth"
)

// Admission by cost: each method costs units (a GetForm 1, a monthly report or export 32),
// and a call is admitted only when its cost fits both the server's capacity (MaxInFlight
// units in flight, all callers together) and the caller's share of it (PartyInFlight
// units in flight of one party); the caller's rate budget (Limits.Rate) counts calls.
// Otherwise it is answered RESOURCE_EXHAUSTED at once, rather than queued into
// timeouts: one caller's flood cannot take the pool from the others.

// Cost returns the admission cost of a full method name: 1 unless listed.
func Cost(method string) int {
	if c, ok := costs[method[strings.LastIndexByte(method, '/')+1:]]; ok && !strings.HasPrefix(method, "/grpc.") {
		return c
	}
	if strings.HasPrefix(method, "/grpc.health.") {
		return 0
	}
	return 1
}

// costs are by method name: the whole-database reads cost most.
var costs = map[string]int{
	"ListForms": 4, "FindForms": 2, "ListDeclarations": 4, "ListStores": 4, "ListParameters": 2,
	"ListAcquirerInstructions": 4, "GetRegistry": 4, "DeclareMonth": 8,
	"RunExpiry": 16, "RunCaptures": 16,
	"MonthlyReport": 32, "ExportReport": 32, "Reconcile": 32, "CheckInvariants": 32, "VerifyChains": 32,
	"CloseMonth": 16,
	// A print holds a browser tab for a few hundred milliseconds.
	"GetFormDocument": 8,
	// The officials' trend reads a year of payouts, not a form.
	"MonthlyTrend": 8,
}

// admission counts the units in flight, overall and per party.
type admission struct {
	max, perParty int

	mu      sync.Mutex
	total   int
	byParty map[string]int
}

func newAdmission(max, perParty int) *admission {
	return &admission{max: max, perParty: perParty, byParty: map[string]int{}}
}

// acquire admits cost units of party, or says why not. A cost above the caller's share is
// charged as the whole share: an expensive call runs alone for its caller.
func (a *admission) acquire(party string, cost int) (release func(), err error) {
	if a == nil || a.max <= 0 || cost == 0 {
		return func() {}, nil
	}
	if a.perParty > 0 && cost > a.perParty {
		cost = a.perParty
	}
	if cost > a.max {
		cost = a.max
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.total+cost > a.max {
		return nil, status.Error(codes.ResourceExhausted, "the server is at capacity; retry with backoff and the same request_id")
	}
	if a.perParty > 0 && a.byParty[party]+cost > a.perParty {
		return nil, status.Error(codes.ResourceExhausted, "too many calls of this caller in flight; retry with backoff and the same request_id")
	}
	a.total += cost
	a.byParty[party] += cost
	return func() {
		a.mu.Lock()
		a.total -= cost
		if a.byParty[party] -= cost; a.byParty[party] == 0 {
			delete(a.byParty, party)
		}
		a.mu.Unlock()
	}, nil
}

func partyKey(ctx context.Context) string {
	if p, ok := auth.FromContext(ctx); ok {
		return p.URI
	}
	return ""
}

func (a *admission) unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		release, err := a.acquire(partyKey(ctx), Cost(info.FullMethod))
		if err != nil {
			return nil, err
		}
		defer release()
		return handler(ctx, req)
	}
}

func (a *admission) stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		release, err := a.acquire(partyKey(ss.Context()), Cost(info.FullMethod))
		if err != nil {
			return err
		}
		defer release()
		return handler(srv, ss)
	}
}
