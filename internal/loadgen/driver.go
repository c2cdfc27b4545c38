package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Mode is how load is offered.
type Mode string

// Closed: N callers, each sending its next request when the last one is answered.
// Open: requests arrive at a fixed rate whatever the answers, as from many independent
// clients; an arrival that finds every caller busy waits in a queue (late, if it waits
// long) or, when the queue is full too, is dropped.
const (
	Closed Mode = "closed"
	Open   Mode = "open"
)

// Load is how a run offers load.
type Load struct {
	Mode        Mode
	Concurrency int
	// Rate is arrivals per second (open loop).
	Rate float64 // arrival rate metric (calls/s), not money
	// Queue bounds the arrivals waiting for a caller (open loop); 0 means Concurrency.
	Queue int
	// LateAfter is how long an arrival may wait for a caller before it counts as late.
	LateAfter time.Duration
	Warmup    time.Duration
	Duration  time.Duration
	// Timeout bounds each call.
	Timeout time.Duration
	Seed    uint64
}

func (l Load) validate() error {
	switch {
	case l.Mode != Closed && l.Mode != Open:
		return fmt.Errorf("mode %q: want closed or open", l.Mode)
	case l.Concurrency < 1 || l.Concurrency > 10_000:
		return fmt.Errorf("concurrency %d: want 1 to 10000", l.Concurrency)
	case l.Mode == Open && (l.Rate <= 0 || l.Rate > 1e6):
		return fmt.Errorf("open loop needs -rate between 0 and 1000000 per second, got %g", l.Rate)
	case l.Duration <= 0 || l.Warmup < 0:
		return errors.New("duration must be positive and warm-up not negative")
	}
	return nil
}

// errExhausted is returned by a visit when the scenario has no more work.
var errExhausted = errors.New("scenario exhausted")

// visitFunc performs one unit of work (one form issued, one traveller at the desks) as
// worker w, recording each call with w.call.
type visitFunc func(ctx context.Context, w *worker) error

// worker is one concurrent caller. Its random source and statistics are its own.
type worker struct {
	id      int
	r       *rand.Rand
	zipf    *rand.Zipf
	timeout time.Duration
	stats   *stats
	// calls of the visit in progress, committed to stats only if the visit falls inside
	// the measurement window.
	calls []call
}

type call struct {
	method string
	took   time.Duration
	code   codes.Code
}

// call runs fn with the call timeout and records its latency and status under method.
func (w *worker) call(ctx context.Context, method string, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	start := time.Now()
	err := fn(ctx)
	w.calls = append(w.calls, call{method: method, took: time.Since(start), code: status.Code(err)})
	return err
}

// stats are the counts of one worker, or of all of them once merged.
type stats struct {
	// visits is the latency of whole visits (from the arrival's due time in open loop).
	visits  Histogram
	methods map[string]*methodStats
}

type methodStats struct {
	latency Histogram
	codes   map[codes.Code]int64
}

func newStats() *stats { return &stats{methods: map[string]*methodStats{}} }

func (s *stats) method(name string) *methodStats {
	m, ok := s.methods[name]
	if !ok {
		m = &methodStats{codes: map[codes.Code]int64{}}
		s.methods[name] = m
	}
	return m
}

func (s *stats) merge(o *stats) {
	s.visits.Merge(&o.visits)
	for name, om := range o.methods {
		m := s.method(name)
		m.latency.Merge(&om.latency)
		for c, n := range om.codes {
			m.codes[c] += n
		}
	}
}

// outcome is what drive measured.
type outcome struct {
	stats *stats
	// from is when the measurement window began (the end of the warm-up).
	from    time.Time
	window  time.Duration
	late    int64
	dropped int64
	offered int64
	cpu     CPUSplit
	peakRSS float64
	rssNow  float64
	notes   []string
}

// drive offers load with visit for Warmup+Duration and measures the window after the
// warm-up: only visits that start and end inside it are counted.
func drive(ctx context.Context, l Load, m *meter, visit visitFunc, setup func(w *worker)) (outcome, error) {
	if err := l.validate(); err != nil {
		return outcome{}, err
	}
	if l.Timeout == 0 {
		l.Timeout = 10 * time.Second
	}
	if l.LateAfter == 0 {
		l.LateAfter = 10 * time.Millisecond
	}
	queue := l.Queue
	if queue == 0 {
		queue = l.Concurrency
	}
	start := time.Now()
	from := start.Add(l.Warmup)
	to := from.Add(l.Duration)

	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var late, dropped, offered atomic.Int64
	var exhausted atomic.Bool
	workers := make([]*worker, l.Concurrency)
	for i := range workers {
		w := &worker{
			id:      i,
			r:       rand.New(rand.NewPCG(l.Seed, uint64(i))),
			timeout: l.Timeout,
			stats:   newStats(),
		}
		w.zipf = rand.NewZipf(w.r, ZipfS, ZipfV, IssueTravellers-1)
		if setup != nil {
			setup(w)
		}
		workers[i] = w
	}
	// one runs one visit due at due, and commits its calls if it lies in the window.
	one := func(w *worker, due time.Time) bool {
		w.calls = w.calls[:0]
		err := visit(ctx, w)
		end := time.Now()
		if errors.Is(err, errExhausted) {
			exhausted.Store(true)
			return false
		}
		if due.Before(from) || end.After(to) {
			return ctx.Err() == nil
		}
		w.stats.visits.Record(end.Sub(due))
		for _, c := range w.calls {
			ms := w.stats.method(c.method)
			ms.codes[c.code]++
			if c.code == codes.OK {
				ms.latency.Record(c.took)
			}
		}
		return ctx.Err() == nil
	}

	var wg sync.WaitGroup
	var arrivals chan time.Time
	if l.Mode == Open {
		arrivals = make(chan time.Time, queue)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(arrivals)
			interval := time.Duration(float64(time.Second) / l.Rate)
			for due := start; due.Before(to); due = due.Add(interval) {
				if d := time.Until(due); d > 0 {
					select {
					case <-ctx.Done():
						return
					case <-time.After(d):
					}
				}
				inWindow := !due.Before(from)
				if inWindow {
					offered.Add(1)
				}
				select {
				case arrivals <- due:
				default:
					if inWindow {
						dropped.Add(1)
					}
				}
			}
		}()
	}
	done := make(chan struct{})
	var running sync.WaitGroup
	for _, w := range workers {
		running.Add(1)
		go func() {
			defer running.Done()
			if l.Mode == Closed {
				for time.Now().Before(to) {
					if !one(w, time.Now()) {
						return
					}
				}
				return
			}
			for due := range arrivals {
				if wait := time.Since(due); wait > l.LateAfter && !due.Before(from) {
					late.Add(1)
				}
				if !one(w, due) {
					return
				}
			}
		}()
	}
	go func() { running.Wait(); close(done) }()

	// The measurement window: CPU and memory from its start to its end (or to the moment
	// the scenario ran out of work).
	select {
	case <-time.After(time.Until(from)):
	case <-done:
		cancel()
		wg.Wait()
		if exhausted.Load() {
			return outcome{}, errors.New("the scenario ran out of work during the warm-up: prepare more (e.g. -travellers)")
		}
		return outcome{}, errors.New("every caller stopped during the warm-up")
	case <-ctx.Done():
		return outcome{}, ctx.Err()
	}
	m.begin()
	out := outcome{from: from}
	select {
	case <-time.After(time.Until(to)):
	case <-done:
		out.notes = append(out.notes, fmt.Sprintf("the scenario ran out of work after %.1fs of the %s measured: prepare more (e.g. -travellers)",
			time.Since(from).Seconds(), l.Duration))
	case <-ctx.Done():
	}
	out.cpu = m.end(-1)
	out.peakRSS, out.rssNow = m.serverMemory()
	out.window = time.Since(from)
	if out.window > l.Duration {
		out.window = l.Duration
	}
	// Let calls in flight finish (they are not counted), then stop.
	finished := make(chan struct{})
	go func() { running.Wait(); wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(l.Timeout):
		cancel()
		<-finished
	}
	cancel()
	if err := parent.Err(); err != nil {
		return outcome{}, err
	}
	out.stats = newStats()
	for _, w := range workers {
		out.stats.merge(w.stats)
	}
	out.late, out.dropped, out.offered = late.Load(), dropped.Load(), offered.Load()
	out.notes = append(out.notes, m.notes...)
	return out, nil
}

// sortedCodes lists a method's status codes, most frequent first.
func sortedCodes(m map[codes.Code]int64) []codes.Code {
	out := make([]codes.Code, 0, len(m))
	for c := range m {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return m[out[i]] > m[out[j]] || m[out[i]] == m[out[j]] && out[i] < out[j] })
	return out
}
