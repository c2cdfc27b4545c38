package loadgen

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// fakeVisit takes d and fails one call in ten with Unavailable.
func fakeVisit(d time.Duration) visitFunc {
	var n atomic.Int64
	return func(ctx context.Context, w *worker) error {
		_ = w.call(ctx, "IssueForm", func(ctx context.Context) error {
			time.Sleep(d)
			if n.Add(1)%10 == 0 {
				return status.Error(codes.Unavailable, "try later")
			}
			return nil
		})
		return nil
	}
}

// span is one fake call: when it started and ended, and whether it failed.
type span struct {
	start, end time.Time
	failed     bool
}

// TestClosedLoopCountsTheWindowOnly: exactly the calls that started after the warm-up
// and ended inside the window are counted, failures by their code, and never more than
// the callers could make in the window. The expected counts come from the fake calls'
// own clocks, so a slow machine changes how many there are, not whether they match.
func TestClosedLoopCountsTheWindowOnly(t *testing.T) {
	const d = 10 * time.Millisecond
	var (
		mu    sync.Mutex
		spans []span
		n     atomic.Int64
	)
	visit := func(ctx context.Context, w *worker) error {
		_ = w.call(ctx, "IssueForm", func(ctx context.Context) error {
			s := span{start: time.Now()}
			time.Sleep(d)
			s.failed = n.Add(1)%10 == 0
			s.end = time.Now()
			mu.Lock()
			spans = append(spans, s)
			mu.Unlock()
			if s.failed {
				return status.Error(codes.Unavailable, "try later")
			}
			return nil
		})
		return nil
	}
	l := Load{Mode: Closed, Concurrency: 4, Warmup: 200 * time.Millisecond, Duration: time.Second, Seed: 1}
	out, err := drive(context.Background(), l, &meter{}, visit, nil)
	if err != nil {
		t.Fatal(err)
	}
	to := out.from.Add(l.Duration)
	var wantOK, wantFailed, warmup int
	var longest time.Duration
	mu.Lock()
	for _, s := range spans {
		switch {
		case s.start.Before(out.from):
			warmup++
		case !s.end.After(to):
			if s.failed {
				wantFailed++
			} else {
				wantOK++
			}
			longest = max(longest, s.end.Sub(s.start))
		}
	}
	mu.Unlock()
	m := out.stats.methods["IssueForm"]
	ok, failed := m.codes[codes.OK], m.codes[codes.Unavailable]
	if warmup == 0 {
		t.Fatal("no call started in the warm-up: the test shows nothing about leaving them out")
	}
	if int(ok) != wantOK || int(failed) != wantFailed {
		t.Errorf("counted %d OK and %d UNAVAILABLE; the calls inside the window were %d and %d (%d more in the warm-up)",
			ok, failed, wantOK, wantFailed, warmup)
	}
	// 4 callers × 1s / 10ms = 400 calls at most in the window.
	if total := ok + failed; total == 0 || total > 400 {
		t.Errorf("%d calls counted in a 1s window of 4 callers × 10ms: want some, never more than 400", total)
	}
	if p50 := m.latency.Quantile(0.5); p50 < d || p50 > longest+longest/10 {
		t.Errorf("p50 %v, want between the %v of a call and the longest call in the window, %v", p50, d, longest)
	}
	if out.window != time.Second {
		t.Errorf("window %v, want 1s", out.window)
	}
}

func TestOpenLoopCountsLateAndDropped(t *testing.T) {
	// 1000 arrivals/s offered to 2 callers that each take 10ms: capacity 200/s. The queue
	// (2) fills, and most arrivals are dropped; those that wait are late.
	l := Load{Mode: Open, Concurrency: 2, Rate: 1000, Warmup: 100 * time.Millisecond, Duration: time.Second, Seed: 1}
	out, err := drive(context.Background(), l, &meter{}, fakeVisit(10*time.Millisecond), nil)
	if err != nil {
		t.Fatal(err)
	}
	m := out.stats.methods["IssueForm"]
	done := m.codes[codes.OK] + m.codes[codes.Unavailable]
	if out.offered < 900 || out.offered > 1001 {
		t.Errorf("%d arrivals offered in 1s at 1000/s", out.offered)
	}
	if out.dropped < 600 || done > 220 || out.late == 0 {
		t.Errorf("offered %d: %d done, %d dropped, %d late; want about 200 done, the rest dropped, some late",
			out.offered, done, out.dropped, out.late)
	}
	// Latency runs from the arrival's due time: queueing included, so above the 10ms service.
	if p99 := out.stats.visits.Quantile(0.99); p99 < 15*time.Millisecond {
		t.Errorf("p99 %v: queueing time must count", p99)
	}
}

func TestDriveStopsWhenTheScenarioIsExhausted(t *testing.T) {
	var n atomic.Int64
	visit := func(ctx context.Context, w *worker) error {
		if n.Add(1) > 50 {
			return errExhausted
		}
		time.Sleep(5 * time.Millisecond)
		return nil
	}
	l := Load{Mode: Closed, Concurrency: 2, Warmup: 10 * time.Millisecond, Duration: 5 * time.Second}
	start := time.Now()
	out, err := drive(context.Background(), l, &meter{}, visit, nil)
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 2*time.Second || out.window >= time.Second || len(out.notes) == 0 {
		t.Errorf("ran %v, window %v, notes %q: want an early stop, noted", time.Since(start), out.window, out.notes)
	}
	l.Warmup = 5 * time.Second
	n.Store(0)
	if _, err := drive(context.Background(), l, &meter{}, visit, nil); err == nil || errors.Is(err, errExhausted) {
		t.Errorf("exhausted during the warm-up: err %v, want a message to prepare more", err)
	}
}
