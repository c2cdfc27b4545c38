package traveller

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limits bound the look-ups, so that the service cannot be used to find forms by
// guessing: per client address, per form number, and a lock-out of a form number after
// repeated wrong answers. The rate limits are counted in this process's memory (a
// restart forgets them, several servers each count their own); the lock-out is kept in the
// database (lockout.go), so that several servers give a guesser no more tries than one.
type Limits struct {
	// PerAddress and AddressBurst: look-ups of one client address (IPv6 by /64).
	PerAddress   rate.Limit
	AddressBurst int
	// PerForm and FormBurst: look-ups of one form number, from any address.
	PerForm   rate.Limit
	FormBurst int
	// LockAfter wrong answers for one form number (a document or nationality that does not
	// match, or no such form: they are the same answer) within LockFor lock the number for
	// LockFor, whatever is typed.
	LockAfter int
	LockFor   time.Duration
	// MinLatency is the least time a look-up that reaches the database takes, found or not:
	// the answer's timing says nothing of whether the form exists.
	MinLatency time.Duration
	// InFlight bounds the look-ups at the database at once.
	InFlight int
	// MaxKeys bounds the addresses and form numbers the rate limits remember; idle ones
	// are forgotten first.
	MaxKeys int
}

// DefaultLimits are for people typing: 10 look-ups a minute per address (a burst of
// 10), 5 a minute per form number, a lock-out of one hour after 5 wrong answers.
func DefaultLimits() Limits {
	return Limits{
		PerAddress: rate.Every(6 * time.Second), AddressBurst: 10,
		PerForm: rate.Every(12 * time.Second), FormBurst: 5,
		LockAfter: 5, LockFor: time.Hour,
		MinLatency: 150 * time.Millisecond,
		InFlight:   8,
		MaxKeys:    100_000,
	}
}

// addressKey is the client's address, or its /64 for IPv6 (one subscriber's network).
func addressKey(a netip.Addr) string {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// buckets is a token bucket per key, bounded in number.
type buckets struct {
	mu    sync.Mutex
	every rate.Limit
	burst int
	max   int
	idle  time.Duration
	m     map[string]*bucket
}

func newBuckets(every rate.Limit, burst, max int) *buckets {
	idle := time.Hour
	if every > 0 {
		// A bucket idle this long is full again: forgetting it changes nothing.
		idle = time.Duration(float64(burst)/float64(every)*float64(time.Second)) + time.Second
	}
	return &buckets{every: every, burst: burst, max: max, idle: idle, m: map[string]*bucket{}}
}

func (b *buckets) allow(key string, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.m[key]
	if !ok {
		if len(b.m) >= b.max {
			b.sweep(now)
		}
		if len(b.m) >= b.max {
			return false // full of busy keys: refuse rather than grow
		}
		e = &bucket{lim: rate.NewLimiter(b.every, b.burst)}
		b.m[key] = e
	}
	e.seen = now
	return e.lim.AllowN(now, 1)
}

func (b *buckets) sweep(now time.Time) {
	for k, e := range b.m {
		if now.Sub(e.seen) > b.idle {
			delete(b.m, k)
		}
	}
}
