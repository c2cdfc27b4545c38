package acquirer_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"taxrefund/internal/acquirer"
)

var discard = slog.New(slog.DiscardHandler)

// TestDispatcherDeliversOnce delivers five CAPTURE instructions to the development
// acquirer in batches of two: each is received once, with its kind, token and amount,
// and marked delivered after one attempt; a further round finds nothing to do.
func TestDispatcherDeliversOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	keys := e.instructions(5)
	if len(keys) != 5 {
		t.Fatalf("%d instructions, want 5", len(keys))
	}
	pending, err := acquirer.Pending(e.ctx, e.pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 5 || pending[0].Kind != acquirer.Capture || pending[0].Attempts != 0 || pending[0].Amount.StringFixed(2) != "90.00" {
		t.Errorf("pending before delivery: %+v", pending)
	}
	d := &acquirer.Dispatcher{Pool: e.pool, Acquirer: acquirer.DevAcquirer{Pool: e.pool}, Log: discard, Batch: 2}
	var rounds []int
	for {
		n, err := d.RunOnce(e.ctx)
		if err != nil {
			t.Fatalf("RunOnce: %v", err)
		}
		rounds = append(rounds, n)
		if n == 0 {
			break
		}
	}
	if !slices.Equal(rounds, []int{2, 2, 1, 0}) {
		t.Errorf("delivered per round %v, want [2 2 1 0]", rounds)
	}
	got, want := e.received(), e.sent()
	if len(got) != 5 {
		t.Errorf("the acquirer received %d keys, want 5", len(got))
	}
	for k, w := range want {
		w.Deliveries = 1
		if got[k] != w {
			t.Errorf("%s: received %+v, want %+v", k, got[k], w)
		}
		if s := e.state(k); s.Attempts != 1 || !s.Delivered || s.LastError != "" {
			t.Errorf("%s: outbox %+v, want delivered after 1 attempt", k, s)
		}
	}
	if pending, err := acquirer.Pending(e.ctx, e.pool); err != nil || len(pending) != 0 {
		t.Errorf("pending after delivery: %v %v", pending, err)
	}
	e.checkInvariants()
}

// TestDispatcherBacksOffAndSurfacesStuck delivers to an acquirer that refuses one
// instruction: its attempts grow, each retry waits about twice as long (1–2 s, 2–4 s,
// 4–8 s, ... with jitter), the error is recorded, it is not retried before its time;
// from StuckAfter attempts it is logged at ERROR and listed first by Pending. When the
// acquirer recovers it is delivered once.
func TestDispatcherBacksOffAndSurfacesStuck(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	keys := e.instructions(3)
	stuck := keys[1]
	logs := &records{}
	dev := acquirer.DevAcquirer{Pool: e.pool}
	d := &acquirer.Dispatcher{Pool: e.pool, Acquirer: selective{next: dev, down: map[string]bool{stuck: true}}, Log: slog.New(logs)}

	for attempt := 1; attempt <= 6; attempt++ {
		n, err := d.RunOnce(e.ctx)
		if err != nil {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
		if wantN := map[bool]int{true: 2, false: 0}[attempt == 1]; n != wantN {
			t.Errorf("attempt %d: delivered %d, want %d", attempt, n, wantN)
		}
		s := e.state(stuck)
		lo, hi := time.Second<<(attempt-1), time.Second<<attempt // wait/2 .. wait, wait = 1 s << attempts
		if s.Attempts != attempt || s.Delivered || s.LastError != "acquirer refused CAPTURE: 503 service unavailable" ||
			s.Wait < lo-time.Second || s.Wait > hi {
			t.Errorf("attempt %d: outbox %+v, want attempts %d, the error, next attempt in %v..%v", attempt, s, attempt, lo, hi)
		}
		// Not due yet: another round leaves it alone.
		if n, err := d.RunOnce(e.ctx); err != nil || n != 0 {
			t.Errorf("attempt %d, early round: %d %v", attempt, n, err)
		}
		if s2 := e.state(stuck); s2.Attempts != attempt {
			t.Errorf("attempt %d: an early round made attempts %d", attempt, s2.Attempts)
		}
		e.makeDue()
	}
	lv := logs.levels()
	if !slices.Equal(lv, []string{
		"WARN acquirer delivery failed", "WARN acquirer delivery failed", "WARN acquirer delivery failed", "WARN acquirer delivery failed",
		"ERROR acquirer delivery failed", "ERROR acquirer delivery failed",
	}) {
		t.Errorf("log records %q, want 4 WARN then ERROR from attempt %d", lv, acquirer.StuckAfter)
	}

	// A new instruction, never attempted, is listed after the stuck one.
	fresh := e.instructions(1)
	if len(fresh) != 2 || fresh[0] != stuck {
		t.Fatalf("undelivered %v, want the stuck one and a new one", fresh)
	}
	pending, err := acquirer.Pending(e.ctx, e.pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 2 || pending[0].IdemKey != stuck || pending[0].Attempts < acquirer.StuckAfter ||
		pending[0].LastError == "" || pending[1].IdemKey != fresh[1] || pending[1].Attempts != 0 {
		t.Errorf("pending %+v, want the stuck instruction first with ≥ %d attempts and its error, then the new one", pending, acquirer.StuckAfter)
	}

	// A bounded back-off: MaxBackoff 3 s gives 1.5–3 s however many attempts.
	capped := &acquirer.Dispatcher{Pool: e.pool, Acquirer: failing{"still down"}, Log: discard, MaxBackoff: 3 * time.Second}
	if _, err := capped.RunOnce(e.ctx); err != nil {
		t.Fatal(err)
	}
	if s := e.state(stuck); s.Attempts != 7 || s.Wait < 500*time.Millisecond || s.Wait > 3*time.Second || s.LastError != "still down" {
		t.Errorf("capped back-off: %+v, want attempts 7, next attempt in 1.5–3 s", s)
	}

	// The acquirer recovers.
	e.makeDue()
	healthy := &acquirer.Dispatcher{Pool: e.pool, Acquirer: dev, Log: discard}
	if n, err := healthy.RunOnce(e.ctx); err != nil || n != 2 {
		t.Fatalf("after recovery: %d %v, want 2", n, err)
	}
	got := e.received()
	for k, w := range e.sent() {
		w.Deliveries = 1
		if got[k] != w {
			t.Errorf("%s: received %+v, want %+v", k, got[k], w)
		}
	}
	if s := e.state(stuck); !s.Delivered || s.LastError != "" || s.Attempts != 8 {
		t.Errorf("stuck instruction after recovery: %+v, want delivered, error cleared, 8 attempts", s)
	}
	if pending, err := acquirer.Pending(e.ctx, e.pool); err != nil || len(pending) != 0 {
		t.Errorf("pending after recovery: %v %v", pending, err)
	}
}

// slow delivers through next after a pause, so that concurrent dispatchers overlap.
type slow struct {
	next  acquirer.Acquirer
	pause time.Duration
	calls *atomic.Int64
}

func (s slow) Deliver(ctx context.Context, in acquirer.Instruction) error {
	s.calls.Add(1)
	time.Sleep(s.pause)
	return s.next.Deliver(ctx, in)
}

// TestConcurrentDispatchersDeliverOnce runs four dispatchers at once over 40
// instructions: the claim is a lease, so no instruction is delivered twice.
func TestConcurrentDispatchersDeliverOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const n, workers = 40, 4
	keys := e.instructions(n)
	var calls atomic.Int64
	acq := slow{next: acquirer.DevAcquirer{Pool: e.pool}, pause: 3 * time.Millisecond, calls: &calls}
	start := make(chan struct{})
	var wg sync.WaitGroup
	delivered := make([]int, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := &acquirer.Dispatcher{Pool: e.pool, Acquirer: acq, Log: discard, Batch: 3}
			<-start
			for {
				got, err := d.RunOnce(e.ctx)
				if err != nil {
					t.Errorf("dispatcher %d: %v", w, err)
					return
				}
				delivered[w] += got
				if got == 0 {
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	total := 0
	for _, d := range delivered {
		total += d
	}
	t.Logf("%d instructions, %d dispatchers: delivered per dispatcher %v, acquirer calls %d", n, workers, delivered, calls.Load())
	if total != n || calls.Load() != n {
		t.Errorf("delivered %d with %d acquirer calls, want %d and %d", total, calls.Load(), n, n)
	}
	got := e.received()
	if len(got) != n {
		t.Errorf("received %d keys, want %d", len(got), n)
	}
	for _, k := range keys {
		if got[k].Deliveries != 1 {
			t.Errorf("%s delivered %d times, want 1", k, got[k].Deliveries)
		}
		if s := e.state(k); s.Attempts != 1 || !s.Delivered {
			t.Errorf("%s: %+v, want delivered after 1 attempt", k, s)
		}
	}
}

// deliverThenFail delivers and then fails, as when the acquirer applied the instruction
// but the answer was lost.
type deliverThenFail struct{ next acquirer.Acquirer }

func (d deliverThenFail) Deliver(ctx context.Context, in acquirer.Instruction) error {
	if err := d.next.Deliver(ctx, in); err != nil {
		return err
	}
	return errors.New("connection reset after the request was sent")
}

// deliverThenDie delivers and then cancels the dispatcher's context, as when its process
// dies between the delivery and recording it.
type deliverThenDie struct {
	next   acquirer.Acquirer
	cancel context.CancelFunc
}

func (d deliverThenDie) Deliver(ctx context.Context, in acquirer.Instruction) error {
	err := d.next.Deliver(ctx, in)
	d.cancel()
	return err
}

// TestRedeliveryAfterLostAnswer and after a crash: the instruction took effect at the
// acquirer but the dispatcher did not record it; it is delivered again later, and the
// acquirer, keyed by the instruction, still holds one row for it (deliveries 2).
func TestRedeliveryAfterLostAnswer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	keys := e.instructions(2)
	dev := acquirer.DevAcquirer{Pool: e.pool}

	// The answer is lost: recorded as a failure, retried after the back-off.
	lost := &acquirer.Dispatcher{Pool: e.pool, Acquirer: deliverThenFail{dev}, Log: discard, Batch: 1, MaxBackoff: 100 * time.Millisecond}
	if n, err := lost.RunOnce(e.ctx); err != nil || n != 0 {
		t.Fatalf("lost answer round: %d %v", n, err)
	}
	if s := e.state(keys[0]); s.Delivered || s.Attempts != 1 || s.LastError != "connection reset after the request was sent" {
		t.Errorf("after a lost answer: %+v", s)
	}
	time.Sleep(150 * time.Millisecond)
	d := &acquirer.Dispatcher{Pool: e.pool, Acquirer: dev, Log: discard, Batch: 1}
	if n, err := d.RunOnce(e.ctx); err != nil || n != 1 {
		t.Fatalf("redelivery: %d %v", n, err)
	}
	if s := e.state(keys[0]); !s.Delivered || s.Attempts != 2 || s.LastError != "" {
		t.Errorf("after redelivery: %+v", s)
	}

	// The dispatcher dies after delivering: the claim is a lease of 300 ms; until it ends
	// no one delivers the instruction again; after it, another dispatcher does.
	ctx, cancel := context.WithCancel(e.ctx)
	dying := &acquirer.Dispatcher{Pool: e.pool, Acquirer: deliverThenDie{next: dev, cancel: cancel}, Log: discard, Batch: 1, Lease: 300 * time.Millisecond}
	if _, err := dying.RunOnce(ctx); err == nil {
		t.Fatal("the dying dispatcher recorded its delivery")
	}
	if s := e.state(keys[1]); s.Delivered || s.Attempts != 1 || s.Wait <= 0 || s.Wait > 300*time.Millisecond {
		t.Errorf("after the crash: %+v, want claimed (lease ≤ 300 ms), not delivered", s)
	}
	other := &acquirer.Dispatcher{Pool: e.pool, Acquirer: dev, Log: discard, Lease: 300 * time.Millisecond}
	if n, err := other.RunOnce(e.ctx); err != nil || n != 0 {
		t.Errorf("within the lease: delivered %d %v, want 0", n, err)
	}
	time.Sleep(350 * time.Millisecond)
	if n, err := other.RunOnce(e.ctx); err != nil || n != 1 {
		t.Errorf("after the lease: delivered %d %v, want 1", n, err)
	}

	got := e.received()
	if len(got) != 2 {
		t.Errorf("%d received rows, want 2 (one per key)", len(got))
	}
	for _, k := range keys {
		if got[k].Deliveries != 2 {
			t.Errorf("%s: deliveries %d, want 2 (delivered, then again)", k, got[k].Deliveries)
		}
		if s := e.state(k); !s.Delivered || s.Attempts != 2 {
			t.Errorf("%s: %+v, want delivered after 2 attempts", k, s)
		}
	}
	if pending, err := acquirer.Pending(e.ctx, e.pool); err != nil || len(pending) != 0 {
		t.Errorf("pending at the end: %v %v", pending, err)
	}
	e.checkInvariants()
}
