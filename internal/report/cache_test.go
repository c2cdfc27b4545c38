package report_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"taxrefund/internal/report"
)

// cacheEnv is a fresh database, one form issued in October, and a cache of the month's
// forms issued (report.Monthly, summed over the blocks) on the env's clock.
type cacheEnv struct {
	*env
	cache *report.Cache[int64]
	// computed counts the computations; gate, when set, holds each one before it reads.
	computed atomic.Int64
	gate     chan struct{}
}

var alice = traveller{doc: "E11111111", nationality: "US"}

func newCacheEnv(t *testing.T, size int) *cacheEnv {
	t.Helper()
	e := newEnv(t)
	e.issue("S-JFB-1", alice, item{1, "1000.00", "0.13"})
	return &cacheEnv{env: e, cache: report.NewCache[int64](report.CacheOptions{Size: size, Now: e.clock.Now})}
}

// issued reads October's forms issued from the database, as of the clock.
func (c *cacheEnv) issued(ctx context.Context) (int64, time.Time, error) {
	c.computed.Add(1)
	if c.gate != nil {
		<-c.gate
	}
	asOf := c.clock.Now()
	rows, err := report.Monthly(ctx, c.pool, october)
	if err != nil {
		return 0, time.Time{}, err
	}
	var n int64
	for _, r := range rows {
		if r.Dimension == "block" {
			n += r.FormsIssued
		}
	}
	return n, asOf, nil
}

func (c *cacheEnv) get(key string, maxAge time.Duration) report.Result[int64] {
	c.t.Helper()
	r, err := c.cache.Get(c.ctx, key, maxAge, c.issued)
	if err != nil {
		c.t.Fatalf("get %s: %v", key, err)
	}
	return r
}

func (c *cacheEnv) advance(d time.Duration) { c.clock.Set(c.clock.Now().Add(d)) }

func TestCacheComputesOnceForConcurrentCallers(t *testing.T) {
	t.Parallel()
	c := newCacheEnv(t, 0)
	c.gate = make(chan struct{})
	var wg sync.WaitGroup
	results := make([]report.Result[int64], 10)
	errs := make([]error, 10)
	for i := range results {
		wg.Go(func() { results[i], errs[i] = c.cache.Get(c.ctx, "monthly 2026-10", time.Minute, c.issued) })
	}
	// Let the callers pile up behind the first computation; one that comes after it
	// finds its entry, which is computed once all the same.
	time.Sleep(200 * time.Millisecond)
	close(c.gate)
	wg.Wait()
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if r.Value != 1 {
			t.Errorf("caller %d: %d forms, want 1", i, r.Value)
		}
	}
	if n := c.computed.Load(); n != 1 {
		t.Errorf("computed %d times for 10 concurrent callers, want once", n)
	}
}

func TestCacheAnswersWithinMaxAgeAndRecomputesAfter(t *testing.T) {
	t.Parallel()
	c := newCacheEnv(t, 0)
	first := c.get("monthly 2026-10", time.Minute)
	if first.Value != 1 || first.Cached || !first.AsOf.Equal(c.clock.Now()) {
		t.Fatalf("first get: %+v, want 1 form computed now", first)
	}
	c.issue("S-JFB-1", alice, item{1, "2000.00", "0.13"})
	c.advance(20 * time.Second)
	again := c.get("monthly 2026-10", time.Minute)
	if again.Value != 1 || !again.Cached || !again.AsOf.Equal(first.AsOf) {
		t.Errorf("20 s later: %+v, want the cached 1 form as of %v", again, first.AsOf)
	}
	// A caller who wants fresher figures than the entry's gets them.
	strict := c.get("monthly 2026-10", 10*time.Second)
	if strict.Value != 2 || strict.Cached {
		t.Errorf("max age 10 s, entry 20 s old: %+v, want 2 forms computed now", strict)
	}
	c.issue("S-JFB-1", alice, item{1, "3000.00", "0.13"})
	c.advance(61 * time.Second)
	expired := c.get("monthly 2026-10", time.Minute)
	if expired.Value != 3 || expired.Cached || !expired.AsOf.Equal(c.clock.Now()) {
		t.Errorf("61 s later: %+v, want 3 forms computed now", expired)
	}
	if n := c.computed.Load(); n != 3 {
		t.Errorf("computed %d times, want 3", n)
	}
	c.cache.Wait()
}

func TestCacheMaxAgeZeroComputesNowAndKeepsIt(t *testing.T) {
	t.Parallel()
	c := newCacheEnv(t, 0)
	c.get("monthly 2026-10", time.Minute)
	c.issue("S-JFB-1", alice, item{1, "2000.00", "0.13"})
	c.advance(time.Second)
	now := c.get("monthly 2026-10", 0)
	if now.Value != 2 || now.Cached {
		t.Fatalf("max age 0: %+v, want 2 forms computed now", now)
	}
	later := c.get("monthly 2026-10", time.Minute)
	if later.Value != 2 || !later.Cached || !later.AsOf.Equal(now.AsOf) {
		t.Errorf("after a fresh computation: %+v, want its 2 forms, cached", later)
	}
}

func TestCacheServesStaleWhileRefreshing(t *testing.T) {
	t.Parallel()
	c := newCacheEnv(t, 0)
	first := c.get("monthly 2026-10", time.Minute)
	c.issue("S-JFB-1", alice, item{1, "2000.00", "0.13"})
	// Past half the maximum age: answered at once with the old figures; the refresh waits
	// at the gate, so an answer that waited for it could not come back.
	c.advance(40 * time.Second)
	refreshAt := c.clock.Now()
	c.gate = make(chan struct{})
	for range 3 {
		stale := c.get("monthly 2026-10", time.Minute)
		if stale.Value != 1 || !stale.Cached || !stale.AsOf.Equal(first.AsOf) {
			t.Errorf("40 s later: %+v, want the cached 1 form as of %v", stale, first.AsOf)
		}
	}
	close(c.gate)
	c.cache.Wait()
	if n := c.computed.Load(); n != 2 {
		t.Errorf("computed %d times, want 2: one refresh for three stale answers", n)
	}
	fresh := c.get("monthly 2026-10", time.Minute)
	if fresh.Value != 2 || !fresh.Cached || !fresh.AsOf.Equal(refreshAt) {
		t.Errorf("after the refresh: %+v, want its 2 forms as of %v", fresh, refreshAt)
	}
}

func TestCacheNeverKeepsErrors(t *testing.T) {
	t.Parallel()
	c := newCacheEnv(t, 0)
	failing := func(ctx context.Context) (int64, time.Time, error) {
		c.computed.Add(1)
		// A real refusal of the database: the report of a table that is not there.
		_, err := c.pool.Exec(ctx, "SELECT * FROM no_such_report")
		return 0, time.Time{}, err
	}
	if _, err := c.cache.Get(c.ctx, "monthly 2026-10", time.Minute, failing); err == nil {
		t.Fatal("a failed computation answered no error")
	}
	if n := c.cache.Len(); n != 0 {
		t.Errorf("%d entries after a failure, want 0", n)
	}
	ok := c.get("monthly 2026-10", time.Minute)
	if ok.Value != 1 || ok.Cached {
		t.Errorf("after a failure: %+v, want 1 form computed now", ok)
	}
	// A failed background refresh keeps the old figures, and the next stale answer tries
	// again.
	c.advance(40 * time.Second)
	stale, err := c.cache.Get(c.ctx, "monthly 2026-10", time.Minute, failing)
	if err != nil || stale.Value != 1 || !stale.Cached {
		t.Fatalf("stale answer: %+v, %v; want the cached 1 form", stale, err)
	}
	c.cache.Wait()
	c.issue("S-JFB-1", alice, item{1, "2000.00", "0.13"})
	if r := c.get("monthly 2026-10", time.Minute); r.Value != 1 || !r.Cached {
		t.Errorf("after a failed refresh: %+v, want the old 1 form", r)
	}
	c.cache.Wait()
	if r := c.get("monthly 2026-10", time.Minute); r.Value != 2 {
		t.Errorf("after the retried refresh: %+v, want 2 forms", r)
	}
	if n := c.computed.Load(); n != 4 {
		t.Errorf("computed %d times, want 4 (failure, miss, failed refresh, refresh)", n)
	}
}

func TestCacheHoldsAtMostSizeKeys(t *testing.T) {
	t.Parallel()
	c := newCacheEnv(t, 3)
	for _, k := range []string{"a", "b", "c", "d"} {
		c.get(k, time.Hour)
		c.advance(time.Second)
	}
	if n := c.cache.Len(); n != 3 {
		t.Errorf("%d keys held, want 3", n)
	}
	before := c.computed.Load()
	// "a" had the oldest figures: dropped; "d" is held.
	if r := c.get("d", time.Hour); !r.Cached {
		t.Errorf("d: %+v, want cached", r)
	}
	if r := c.get("a", time.Hour); r.Cached {
		t.Errorf("a: %+v, want computed again (dropped)", r)
	}
	if n := c.computed.Load() - before; n != 1 {
		t.Errorf("computed %d times, want 1 (a)", n)
	}
	if n := c.cache.Len(); n != 3 {
		t.Errorf("%d keys held, want 3", n)
	}
}

// A caller who stops waiting does not fail the others waiting for the same computation,
// and its result still serves the next caller.
func TestCacheCallerGivingUpDoesNotFailOthers(t *testing.T) {
	t.Parallel()
	c := newCacheEnv(t, 0)
	c.gate = make(chan struct{})
	ctx, cancel := context.WithCancel(c.ctx)
	gaveUp := make(chan error, 1)
	go func() {
		_, err := c.cache.Get(ctx, "monthly 2026-10", time.Minute, c.issued)
		gaveUp <- err
	}()
	for c.computed.Load() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	type answer struct {
		r   report.Result[int64]
		err error
	}
	waited := make(chan answer, 1)
	go func() {
		r, err := c.cache.Get(c.ctx, "monthly 2026-10", time.Minute, c.issued)
		waited <- answer{r, err}
	}()
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Errorf("the caller who gave up: %v, want context.Canceled", err)
	}
	close(c.gate)
	if a := <-waited; a.err != nil || a.r.Value != 1 {
		t.Errorf("the caller who waited: %+v, %v; want 1 form", a.r, a.err)
	}
	if r := c.get("monthly 2026-10", time.Minute); r.Value != 1 || !r.Cached {
		t.Errorf("next caller: %+v, want the cached 1 form", r)
	}
	if n := c.computed.Load(); n != 1 {
		t.Errorf("computed %d times, want once", n)
	}
}
