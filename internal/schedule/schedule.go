// Package schedule runs the server's background jobs: expiry, captures, sealing and
// acquirer delivery each run one round every interval until the server stops.
package schedule

import (
	"context"
	"log/slog"
	"time"
)

// Every runs round now and then every interval until ctx ends. A round reports how many
// things it did; a failed round is logged and the next one runs on time.
func Every(ctx context.Context, interval time.Duration, log *slog.Logger, job string, round func(context.Context) (int, error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := round(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Error("background job failed", "job", job, "error", err)
		case n > 0:
			log.Info("background job", "job", job, "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Paced is Every for a round whose cost grows with the data it reads (the chain and
// invariant check reads every sealed row and the whole ledger): a round starts at most
// every interval, and after a round that took d the next waits at least d × (1/share − 1),
// so the job keeps at most share of the time however long its rounds grow. Each round's
// duration is logged, with when the next starts.
func Paced(ctx context.Context, interval time.Duration, share float64, log *slog.Logger, job string, round func(context.Context) (int, error)) {
	if share <= 0 || share > 1 {
		share = 1
	}
	for {
		start := time.Now()
		n, err := round(ctx)
		took := time.Since(start)
		if ctx.Err() != nil {
			return
		}
		wait := max(interval-took, time.Duration(float64(took)*(1/share-1)))
		if err != nil {
			log.Error("background job failed", "job", job, "error", err, "took", took.Round(time.Millisecond), "next_in", wait.Round(time.Second))
		} else {
			log.Info("background job", "job", job, "count", n, "took", took.Round(time.Millisecond), "next_in", wait.Round(time.Second))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
