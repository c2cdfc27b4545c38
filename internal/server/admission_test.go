package server

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestAdmissionFairShare: with a share of 2 units, a busy mark of 4 and 10 at most per
// caller: a caller alone borrows up to the busy mark; once the server is busy a caller
// beyond its share waits, and starts when one of its own calls ends; one that waits too
// long is RESOURCE_EXHAUSTED; another caller within its share is admitted at once
// throughout; a full queue is refused before the request is read.
func TestAdmissionFairShare(t *testing.T) {
	t.Parallel()
	a := newAdmission(Limits{MaxInFlight: 100, PartyInFlight: 10, PartyShare: 2, Busy: 4, PartyWait: time.Second, PartyQueue: 2})
	ctx := context.Background()
	must := func(party string) func() {
		t.Helper()
		start := time.Now()
		release, err := a.acquire(ctx, party, 1)
		if err != nil || time.Since(start) > 100*time.Millisecond {
			t.Fatalf("%s: %v after %v, want admitted at once", party, err, time.Since(start))
		}
		return release
	}
	// The flooder alone borrows the idle capacity: 4 units, more than its share.
	var flood []func()
	for range 4 {
		flood = append(flood, must("flooder"))
	}
	// The server is busy: its fifth waits and is refused after PartyWait.
	start := time.Now()
	if _, err := a.acquire(ctx, "flooder", 1); status.Code(err) != codes.ResourceExhausted || time.Since(start) < 900*time.Millisecond {
		t.Errorf("the flooder's fifth call on a busy server: %v after %v, want RESOURCE_EXHAUSTED after waiting", err, time.Since(start))
	}
	// Another caller is within its share: admitted at once, busy or not.
	other1, other2 := must("store-2"), must("store-2")

	// A waiting call starts when one of the flooder's own calls ends, in order.
	got := make(chan error, 1)
	go func() {
		release, err := a.acquire(ctx, "flooder", 1)
		if err == nil {
			defer release()
		}
		got <- err
	}()
	waitFor(t, func() bool { return a.waiting("flooder") == 1 })
	noStart := func(what string) {
		t.Helper()
		select {
		case err := <-got:
			t.Fatalf("the flooder's waiting call started on %s: %v", what, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	// Neither store-2's release nor one of the flooder's own starts it: the flooder holds 3
	// units, over its share, on a server still busy (4 units).
	other1()
	noStart("another's release")
	flood[0]()
	noStart("its own release on a busy server")
	// A second of its own ends: 3 units in flight, room below the busy mark.
	flood[1]()
	if err := <-got; err != nil {
		t.Errorf("the waiting call once the flooder's own calls ended: %v", err)
	}

	// The queue holds PartyQueue calls; with it full the next is refused at the tap.
	// (store-3 keeps the server busy.)
	other3, other4 := must("store-3"), must("store-3")
	for range 2 {
		go func() {
			if release, err := a.acquire(ctx, "flooder", 1); err == nil {
				release()
			}
		}()
	}
	waitFor(t, func() bool { return a.waiting("flooder") == 2 })
	if err := a.queueFull("flooder"); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("a full queue: %v, want RESOURCE_EXHAUSTED", err)
	}
	if err := a.queueFull("store-2"); err != nil {
		t.Errorf("another caller's queue: %v", err)
	}
	other2()
	other3()
	other4()
	for _, r := range flood[2:] {
		r()
	}
	// Every unit returned (the queued calls' timers end theirs).
	waitFor(t, func() bool { a.mu.Lock(); defer a.mu.Unlock(); return a.total == 0 && len(a.parties) == 0 })
}

// TestAdmissionCaps: over the server's capacity, and over a caller's hard cap, a call is
// refused at once, never queued; a cost above the share is charged as the share.
func TestAdmissionCaps(t *testing.T) {
	t.Parallel()
	a := newAdmission(Limits{MaxInFlight: 6, PartyInFlight: 4, PartyShare: 4, PartyWait: time.Second})
	ctx := context.Background()
	r1, err := a.acquire(ctx, "a", 32) // charged 4
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := a.acquire(ctx, "a", 1); status.Code(err) != codes.ResourceExhausted || time.Since(start) > 100*time.Millisecond {
		t.Errorf("over the caller's cap: %v after %v, want RESOURCE_EXHAUSTED at once", err, time.Since(start))
	}
	r2, err := a.acquire(ctx, "b", 2)
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if _, err := a.acquire(ctx, "c", 1); status.Code(err) != codes.ResourceExhausted || time.Since(start) > 100*time.Millisecond {
		t.Errorf("over the server's capacity: %v after %v, want RESOURCE_EXHAUSTED at once", err, time.Since(start))
	}
	if err := a.queueFull("c"); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("the tap at capacity: %v, want RESOURCE_EXHAUSTED", err)
	}
	r1()
	r1() // a second release is a no-op
	r2()
	if a.total != 0 {
		t.Errorf("%d units left in flight", a.total)
	}
}

// waiting is how many calls of party wait.
func (a *admission) waiting(party string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if p := a.parties[party]; p != nil {
		return len(p.waiting)
	}
	return 0
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not reached in 5s")
}
