package report

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Cache defaults.
const (
	DefaultCacheSize    = 64
	DefaultCacheTimeout = 2 * time.Minute
)

// Cache keeps recent answers of long reads (a month's report, its reconciliation summary)
// for callers who accept figures of a bounded age. An answer's age is counted from its
// as_of, the time its figures were read (a replica's lag counts against it), never from
// when it entered the cache. No answer is final: a month's figures keep changing after
// it ends, so the cache only ever trades freshness the caller agreed to for speed.
//
// Get with a maximum age m:
//   - an entry at most m/2 old is returned;
//   - an entry older than m/2 but at most m old is returned at once and refreshed in the
//     background (one refresh per key at a time), so a caller who keeps asking never waits;
//   - otherwise the value is computed, once for all the concurrent callers of the key.
//
// Errors are never cached. The cache holds at most Size keys; adding one more drops the
// one with the oldest figures.
type Cache[V any] struct {
	now     func() time.Time
	size    int
	timeout time.Duration
	log     *slog.Logger

	mu    sync.Mutex // guards entries and refreshing
	calls singleflight.Group
	// entries by key; refreshing: keys whose background refresh is running.
	entries    map[string]cached[V]
	refreshing map[string]bool
	background sync.WaitGroup
}

type cached[V any] struct {
	value V
	asOf  time.Time
}

// CacheOptions configure a Cache; the zero value is usable.
type CacheOptions struct {
	// Size is the most keys held; 0: DefaultCacheSize.
	Size int
	// Timeout bounds a computation the cache runs on its own: a background refresh, or
	// a miss shared by several callers (it outlives a caller who stops waiting). 0:
	// DefaultCacheTimeout.
	Timeout time.Duration
	// Now is the clock ages are measured with; nil: time.Now.
	Now func() time.Time
	// Log receives failed background refreshes; nil: discarded.
	Log *slog.Logger
}

// NewCache returns an empty cache.
func NewCache[V any](o CacheOptions) *Cache[V] {
	if o.Size <= 0 {
		o.Size = DefaultCacheSize
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultCacheTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Cache[V]{now: o.Now, size: o.Size, timeout: o.Timeout, log: o.Log,
		entries: map[string]cached[V]{}, refreshing: map[string]bool{}}
}

// Compute reads a value and says when its figures were read (its as_of).
type Compute[V any] func(ctx context.Context) (V, time.Time, error)

// Result is what Get answers.
type Result[V any] struct {
	Value V
	// AsOf is when the value's figures were read.
	AsOf time.Time
	// Cached is true when the value was computed before this call, for another.
	Cached bool
}

// Get returns key's value at most maxAge old. maxAge <= 0: computed now with ctx, and
// kept for the callers who accept an older one.
func (c *Cache[V]) Get(ctx context.Context, key string, maxAge time.Duration, compute Compute[V]) (Result[V], error) {
	if maxAge <= 0 {
		v, asOf, err := compute(ctx)
		if err != nil {
			return Result[V]{}, err
		}
		c.Put(key, v, asOf)
		return Result[V]{Value: v, AsOf: asOf}, nil
	}
	c.mu.Lock()
	e, ok := c.entries[key]
	if ok {
		age := c.now().Sub(e.asOf)
		if age <= maxAge {
			if age > maxAge/2 && !c.refreshing[key] {
				c.refreshing[key] = true
				c.background.Add(1)
				go c.refresh(ctx, key, compute)
			}
			c.mu.Unlock()
			return Result[V]{Value: e.value, AsOf: e.asOf, Cached: true}, nil
		}
	}
	c.mu.Unlock()
	select {
	case r := <-c.load(ctx, key, compute):
		if r.Err != nil {
			return Result[V]{}, r.Err
		}
		e := r.Val.(cached[V])
		return Result[V]{Value: e.value, AsOf: e.asOf}, nil
	case <-ctx.Done():
		return Result[V]{}, ctx.Err()
	}
}

// load computes key once for every caller waiting for it, with a context of its own: a
// caller who stops waiting does not fail the others, and the value still serves the
// next caller.
func (c *Cache[V]) load(ctx context.Context, key string, compute Compute[V]) <-chan singleflight.Result {
	return c.calls.DoChan(key, func() (any, error) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
		defer cancel()
		v, asOf, err := compute(cctx)
		if err != nil {
			return nil, err
		}
		c.Put(key, v, asOf)
		return cached[V]{value: v, asOf: asOf}, nil
	})
}

// refresh recomputes key in the background (or joins a computation of it under way).
func (c *Cache[V]) refresh(ctx context.Context, key string, compute Compute[V]) {
	defer c.background.Done()
	r := <-c.load(ctx, key, compute)
	c.mu.Lock()
	delete(c.refreshing, key)
	c.mu.Unlock()
	if r.Err != nil {
		c.log.WarnContext(ctx, "report cache refresh", "key", key, "error", r.Err)
	}
}

// Put keeps v, computed by the caller, unless the cache already holds newer figures of key (a slow computation
// finishing after a quicker later one), then drops the entry with the oldest figures
// while the cache is over its size.
func (c *Cache[V]) Put(key string, v V, asOf time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[key]; ok && e.asOf.After(asOf) {
		return
	}
	c.entries[key] = cached[V]{value: v, asOf: asOf}
	for len(c.entries) > c.size {
		oldest, first := "", true
		for k, e := range c.entries {
			if k != key && (first || e.asOf.Before(c.entries[oldest].asOf)) {
				oldest, first = k, false
			}
		}
		delete(c.entries, oldest)
	}
}

// Len is the number of keys held.
func (c *Cache[V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// Wait waits for the background refreshes under way.
func (c *Cache[V]) Wait() { c.background.Wait() }
