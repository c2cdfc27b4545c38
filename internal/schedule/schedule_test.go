package schedule

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// A paced job whose rounds take d waits at least d × (1/share − 1) between them, even with
// a shorter interval: rounds of 60 ms at a share of 1/3 start at least 180 ms apart.
func TestPacedKeepsItsShare(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var starts []time.Time
	var logs bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		Paced(ctx, 10*time.Millisecond, 1.0/3, slog.New(slog.NewTextHandler(&logs, nil)), "check", func(context.Context) (int, error) {
			mu.Lock()
			starts = append(starts, time.Now())
			n := len(starts)
			mu.Unlock()
			if n == 3 {
				cancel()
			}
			time.Sleep(60 * time.Millisecond)
			return 1, nil
		})
	}()
	<-done
	if len(starts) != 3 {
		t.Fatalf("%d rounds, want 3", len(starts))
	}
	for i := 1; i < len(starts); i++ {
		if gap := starts[i].Sub(starts[i-1]); gap < 180*time.Millisecond {
			t.Errorf("round %d started %v after the one before: the job took more than its third", i+1, gap)
		}
	}
	if !strings.Contains(logs.String(), "took=") || !strings.Contains(logs.String(), "next_in=") {
		t.Errorf("the rounds' durations are not logged:\n%s", logs.String())
	}
}

// A quick round keeps the interval.
func TestPacedKeepsTheInterval(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var starts []time.Time
	done := make(chan struct{})
	go func() {
		defer close(done)
		Paced(ctx, 100*time.Millisecond, 0.1, slog.New(slog.DiscardHandler), "check", func(context.Context) (int, error) {
			starts = append(starts, time.Now())
			if len(starts) == 2 {
				cancel()
			}
			return 0, nil
		})
	}()
	<-done
	if gap := starts[1].Sub(starts[0]); gap < 100*time.Millisecond {
		t.Errorf("rounds %v apart, want the interval of 100ms", gap)
	}
}
