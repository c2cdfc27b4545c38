package loadgen

import (
	"context"
	"errors"
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

func TestClosedLoopCountsTheWindowOnly(t *testing.T) {
	l := Load{Mode: Closed, Concurrency: 4, Warmup: 200 * time.Millisecond, Duration: time.Second, Seed: 1}
	out, err := drive(context.Background(), l, &meter{}, fakeVisit(10*time.Millisecond), nil)
	if err != nil {
		t.Fatal(err)
	}
	m := out.stats.methods["IssueForm"]
	ok, failed := m.codes[codes.OK], m.codes[codes.Unavailable]
	// 4 callers × 1s / 10ms = 400 calls at most in the window (the warm-up's are not counted).
	if total := ok + failed; total < 250 || total > 400 {
		t.Errorf("%d calls counted in a 1s window of 4 callers × 10ms: want about 400, never more", total)
	}
	if failed == 0 || failed > ok/5 {
		t.Errorf("%d failed of %d: want about one in ten", failed, ok+failed)
	}
	if p50 := m.latency.Quantile(0.5); p50 < 10*time.Millisecond || p50 > 40*time.Millisecond {
		t.Errorf("p50 %v, want about 10ms", p50)
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
