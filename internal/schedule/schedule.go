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
