package server

import (
	"context"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"taxrefund/internal/auth"
)

// Admission by cost: each method costs units (a GetForm 1, a monthly report or export 32).
// A party is an identity URI (every certificate of one store, or of one cashier, shares
// one budget). A call is admitted when its cost fits:
//
//   - the server's capacity (MaxInFlight units in flight, all parties together), else it
//     is RESOURCE_EXHAUSTED at once;
//   - the party's hard cap (PartyInFlight), else RESOURCE_EXHAUSTED at once;
//   - the party's fair share, always admitted: PartyShare units, or Busy split among the
//     parties with calls in flight or waiting if that is more (two desks alone get half
//     the pool each, 64 stores a quarter each); above it a party may
//     borrow only capacity nobody else wants: while fewer than Busy units (a database
//     pool's worth) are in flight in all. A call beyond the share on a busy server waits
//     up to PartyWait, in its party's queue, for the party's own calls to finish (or for
//     the server to calm down), then is RESOURCE_EXHAUSTED.
//
// So the parties within their share keep the database pool: one party's flood holds its
// share of it and queues behind itself, and its excess calls cost a waiting goroutine,
// not the CPU of a refusal answered and retried at once. The caller's rate budget
// (Limits.Rate) counts calls; it and a full queue are answered before the request is
// decoded or authorized (tapHandle).

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
	// One form, its lines, its few journal transactions and its payout, by their keys.
	"GetFormTrail": 2,
	// One payout, its few forms, its transaction and its declarations, by their keys.
	"GetPayoutTrail": 2,
}

// The refusals' texts, fixed: they quote nothing of the request.
var (
	errAtCapacity    = status.Error(codes.ResourceExhausted, "the server is at capacity; retry with backoff and the same request_id")
	errPartyInFlight = status.Error(codes.ResourceExhausted, "too many calls of this caller in flight; retry with backoff and the same request_id")
)

// admission counts the units in flight, overall and per party, and queues the calls
// beyond a party's share.
type admission struct {
	max, perParty, share, busy int
	wait                       time.Duration
	queue                      int

	mu      sync.Mutex
	total   int
	parties map[string]*partyState
}

// partyState is one party's units in flight and its calls waiting, first come first.
type partyState struct {
	inFlight int
	waiting  []*waiter
}

type waiter struct {
	cost    int
	ready   chan struct{}
	granted bool
}

// newAdmission applies l's MaxInFlight, PartyInFlight, PartyShare, Busy, PartyWait and
// PartyQueue (Limits says what each means and what 0 does).
func newAdmission(l Limits) *admission {
	a := &admission{max: l.MaxInFlight, perParty: l.PartyInFlight, share: l.PartyShare, busy: l.Busy,
		wait: l.PartyWait, queue: l.PartyQueue, parties: map[string]*partyState{}}
	if a.perParty <= 0 || a.perParty > a.max && a.max > 0 {
		a.perParty = a.max
	}
	if a.share <= 0 || a.perParty > 0 && a.share > a.perParty {
		a.share = a.perParty
	}
	if a.queue <= 0 {
		a.queue = DefaultPartyQueue
	}
	return a
}

// charge is what a call of cost units is counted as: a cost above the party's share is
// charged as the whole share (an expensive call runs alone for its caller), and none
// above the server's capacity.
func (a *admission) charge(cost int) int {
	if a.share > 0 && cost > a.share {
		cost = a.share
	}
	if cost > a.max {
		cost = a.max
	}
	return cost
}

// fits says whether cost more units of p may start now; mu held. refuse is set when the
// call cannot start however long it waits.
func (a *admission) fits(p *partyState, cost int) (ok bool, refuse error) {
	switch {
	case a.total+cost > a.max:
		return false, errAtCapacity
	case a.perParty > 0 && p.inFlight+cost > a.perParty:
		return false, errPartyInFlight
	case a.share <= 0 || p.inFlight+cost <= max(a.share, a.busy/len(a.parties)):
		return true, nil // within the share: the larger of PartyShare and Busy split among the callers present
	case a.busy > 0 && a.total+cost <= a.busy:
		return true, nil // borrowing what nobody else is using
	}
	return false, nil
}

// acquire admits cost units of party, waiting up to PartyWait (and no later than half of
// ctx's remaining time) when the party is over its share on a busy server, or says why not.
func (a *admission) acquire(ctx context.Context, party string, cost int) (release func(), err error) {
	if a == nil || a.max <= 0 || cost == 0 {
		return func() {}, nil
	}
	cost = a.charge(cost)
	a.mu.Lock()
	p := a.parties[party]
	if p == nil {
		p = &partyState{}
		a.parties[party] = p
	}
	ok, refuse := a.fits(p, cost)
	if ok && len(p.waiting) == 0 {
		a.take(p, cost)
		a.mu.Unlock()
		return a.releaser(party, cost), nil
	}
	wait := a.wait
	if dl, has := ctx.Deadline(); has {
		wait = min(wait, time.Until(dl)/2)
	}
	if refuse == nil && (wait <= 0 || len(p.waiting) >= a.queue) {
		refuse = errPartyInFlight
	}
	if refuse != nil {
		a.forget(party, p)
		a.mu.Unlock()
		return nil, refuse
	}
	w := &waiter{cost: cost, ready: make(chan struct{})}
	p.waiting = append(p.waiting, w)
	a.mu.Unlock()

	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-w.ready:
		return a.releaser(party, cost), nil
	case <-timer.C:
	case <-ctx.Done():
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if w.granted { // granted as the wait ended
		return a.releaser(party, cost), nil
	}
	for i, x := range p.waiting {
		if x == w {
			p.waiting = append(p.waiting[:i], p.waiting[i+1:]...)
			break
		}
	}
	a.forget(party, p)
	if ctx.Err() != nil {
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	return nil, errPartyInFlight
}

// take counts cost units of p in flight; mu held.
func (a *admission) take(p *partyState, cost int) {
	a.total += cost
	p.inFlight += cost
}

// forget drops an idle party's entry; mu held.
func (a *admission) forget(party string, p *partyState) {
	if p.inFlight == 0 && len(p.waiting) == 0 {
		delete(a.parties, party)
	}
}

func (a *admission) releaser(party string, cost int) func() {
	var once sync.Once
	return func() { once.Do(func() { a.release(party, cost) }) }
}

// release returns cost units of party and starts the waiting calls that now fit: the
// party's own first (its share freed), then any other's (the server may have calmed).
func (a *admission) release(party string, cost int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.total -= cost
	p := a.parties[party]
	p.inFlight -= cost
	a.grant(p)
	if a.busy > 0 && a.total < a.busy {
		for _, q := range a.parties {
			if q != p && len(q.waiting) > 0 {
				a.grant(q)
			}
		}
	}
	a.forget(party, p)
}

// grant starts p's waiting calls, in order, while the first fits; mu held.
func (a *admission) grant(p *partyState) {
	for len(p.waiting) > 0 {
		w := p.waiting[0]
		if ok, _ := a.fits(p, w.cost); !ok {
			return
		}
		a.take(p, w.cost)
		w.granted = true
		close(w.ready)
		p.waiting = p.waiting[1:]
	}
}

// queueFull says whether party's queue is full, or the server at capacity: a call of it
// now would be refused, so it is refused before its request is read (tapHandle).
func (a *admission) queueFull(party string) error {
	if a == nil || a.max <= 0 {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.total >= a.max {
		return errAtCapacity
	}
	if p := a.parties[party]; p != nil && len(p.waiting) >= a.queue {
		return errPartyInFlight
	}
	return nil
}

func partyKey(ctx context.Context) string {
	if p, ok := auth.FromContext(ctx); ok {
		return p.URI
	}
	return ""
}

func (a *admission) unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		release, err := a.acquire(ctx, partyKey(ctx), Cost(info.FullMethod))
		if err != nil {
			return nil, err
		}
		defer release()
		return handler(ctx, req)
	}
}

func (a *admission) stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		release, err := a.acquire(ss.Context(), partyKey(ss.Context()), Cost(info.FullMethod))
		if err != nil {
			return err
		}
		defer release()
		return handler(srv, ss)
	}
}
