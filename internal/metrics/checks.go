package metrics

import (
	"context"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"taxrefund/internal/db"
	"taxrefund/internal/invariants"
	"taxrefund/internal/seal"
)

var (
	chainAtDesc = prometheus.NewDesc(Namespace+"_chain_verification_timestamp_seconds",
		"When the hash chain was last verified.", []string{"chain"}, nil)
	chainOKDesc = prometheus.NewDesc(Namespace+"_chain_verification_ok",
		"1 when the last verification of the hash chain found it intact, 0 when broken or not verifiable.", []string{"chain"}, nil)
	invAtDesc = prometheus.NewDesc(Namespace+"_invariant_check_timestamp_seconds",
		"When the ledger's invariants were last checked.", nil, nil)
	chainFullAtDesc = prometheus.NewDesc(Namespace+"_chain_full_verification_timestamp_seconds",
		"When the hash chain was last verified from its first seal (the rounds between verify only what was sealed since).", []string{"chain"}, nil)
	invViolDesc = prometheus.NewDesc(Namespace+"_invariant_violations",
		"Violations found by the last invariant check (-1: the check could not run).", nil, nil)
)

// Checks remembers the outcome of the last journal/audit chain verification and the last
// invariant check, whoever ran them.
type Checks struct {
	// FullEvery is how often Run verifies a chain from its first seal, and looks for rows
	// outside it; the rounds between verify only the seals made since the last verified
	// one, which stays where it was verified (its hash is kept here, not read back). Zero:
	// every round is full.
	FullEvery time.Duration

	mu      sync.Mutex
	chains  map[string]checkResult
	marks   map[string]chainMark
	invAt   time.Time
	invViol int
	invRan  bool
}

type checkResult struct {
	at, fullAt time.Time
	ok         bool
}

// chainMark is how far a chain was found intact: its last verified seal and hash, and
// when it was last verified in full.
type chainMark struct {
	seq  int64
	hash []byte
	full time.Time
}

func newChecks() *Checks {
	return &Checks{chains: map[string]checkResult{}, marks: map[string]chainMark{}}
}

// RecordChain records a chain's verification, full or not.
func (c *Checks) RecordChain(chain string, at time.Time, ok, full bool) {
	c.mu.Lock()
	r := c.chains[chain]
	r.at, r.ok = at, ok
	if full {
		r.fullAt = at
	}
	c.chains[chain] = r
	c.mu.Unlock()
}

// verifyChain verifies chain in full when one is due (or nothing was verified yet),
// otherwise from its mark, and moves the mark; a broken chain loses it, so the next
// round is full.
func (c *Checks) verifyChain(ctx context.Context, tx pgx.Tx, chain string, now time.Time) (r seal.Result, full bool, err error) {
	c.mu.Lock()
	mark, have := c.marks[chain]
	c.mu.Unlock()
	full = !have || c.FullEvery <= 0 || now.Sub(mark.full) >= c.FullEvery
	if full {
		r, err = seal.Verify(ctx, tx, chain)
		mark.full = now
	} else {
		r, err = seal.VerifyFrom(ctx, tx, chain, mark.seq, mark.hash)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	hash, herr := hex.DecodeString(r.Head)
	if err != nil || r.Broken != nil || herr != nil {
		delete(c.marks, chain)
		return r, full, err
	}
	c.marks[chain] = chainMark{seq: r.Seq, hash: hash, full: mark.full}
	return r, full, nil
}

// RecordInvariants records an invariant check: violations found, -1 when it failed to run.
func (c *Checks) RecordInvariants(at time.Time, violations int) {
	c.mu.Lock()
	c.invAt, c.invViol, c.invRan = at, violations, true
	c.mu.Unlock()
}

// Run verifies every hash chain (in full every FullEvery, otherwise what was sealed since
// the last round) and checks the invariants, recording each outcome; it is the server's
// periodic job (taxrefund serve -check-interval). It returns how many problems it found,
// and an error when a check could not run or found a problem.
func (c *Checks) Run(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	ctx = db.WithParty(ctx, "system", "checks")
	problems := 0
	var firstErr error
	for _, chain := range seal.Chains {
		var r seal.Result
		var full bool
		err := db.InTx(ctx, pool, func(tx pgx.Tx) error {
			var err error
			r, full, err = c.verifyChain(ctx, tx, chain, time.Now())
			return err
		})
		ok := err == nil && r.Broken == nil
		c.RecordChain(chain, time.Now(), ok, full)
		if !ok {
			problems++
			if firstErr == nil {
				if err == nil {
					err = fmt.Errorf("chain %s broken at seal %d: %s", chain, r.Broken.Seq, r.Broken.Reason)
				}
				firstErr = err
			}
		}
	}
	var n int
	err := db.InTx(ctx, pool, func(tx pgx.Tx) error {
		// The chains were verified above (a broken one counts there, not here).
		vs, err := invariants.CheckLedger(ctx, tx)
		n = len(vs)
		return err
	})
	if err != nil {
		c.RecordInvariants(time.Now(), -1)
		problems++
		if firstErr == nil {
			firstErr = err
		}
	} else {
		c.RecordInvariants(time.Now(), n)
		if n > 0 {
			problems += n
			if firstErr == nil {
				firstErr = fmt.Errorf("%d invariant violations", n)
			}
		}
	}
	return problems, firstErr
}

func (c *Checks) Describe(ch chan<- *prometheus.Desc) {
	ch <- chainAtDesc
	ch <- chainOKDesc
	ch <- chainFullAtDesc
	ch <- invAtDesc
	ch <- invViolDesc
}

func (c *Checks) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for chain, r := range c.chains {
		ok := 0.0
		if r.ok {
			ok = 1
		}
		ch <- prometheus.MustNewConstMetric(chainAtDesc, prometheus.GaugeValue, float64(r.at.UnixNano())/1e9, chain)
		ch <- prometheus.MustNewConstMetric(chainOKDesc, prometheus.GaugeValue, ok, chain)
		if !r.fullAt.IsZero() {
			ch <- prometheus.MustNewConstMetric(chainFullAtDesc, prometheus.GaugeValue, float64(r.fullAt.UnixNano())/1e9, chain)
		}
	}
	if c.invRan {
		ch <- prometheus.MustNewConstMetric(invAtDesc, prometheus.GaugeValue, float64(c.invAt.UnixNano())/1e9)
		ch <- prometheus.MustNewConstMetric(invViolDesc, prometheus.GaugeValue, float64(c.invViol))
	}
}
