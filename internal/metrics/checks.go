package metrics

import (
	"context"
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
	invViolDesc = prometheus.NewDesc(Namespace+"_invariant_violations",
		"Violations found by the last invariant check (-1: the check could not run).", nil, nil)
)

// Checks remembers the outcome of the last journal/audit chain verification and the last
// invariant check, whoever ran them.
type Checks struct {
	mu      sync.Mutex
	chains  map[string]checkResult
	invAt   time.Time
	invViol int
	invRan  bool
}

type checkResult struct {
	at time.Time
	ok bool
}

func newChecks() *Checks { return &Checks{chains: map[string]checkResult{}} }

// RecordChain records a chain's verification.
func (c *Checks) RecordChain(chain string, at time.Time, ok bool) {
	c.mu.Lock()
	c.chains[chain] = checkResult{at, ok}
	c.mu.Unlock()
}

// RecordInvariants records an invariant check: violations found, -1 when it failed to run.
func (c *Checks) RecordInvariants(at time.Time, violations int) {
	c.mu.Lock()
	c.invAt, c.invViol, c.invRan = at, violations, true
	c.mu.Unlock()
}

// Run verifies every hash chain and checks the invariants, recording each outcome; it is
// a schedule.Every job (taxrefund serve -check-interval). It returns how many problems
// it found, and an error when a check could not run or found a problem.
func (c *Checks) Run(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	ctx = db.WithParty(ctx, "system", "checks")
	problems := 0
	var firstErr error
	for _, chain := range seal.Chains {
		var r seal.Result
		err := db.InTx(ctx, pool, func(tx pgx.Tx) error {
			var err error
			r, err = seal.Verify(ctx, tx, chain)
			return err
		})
		ok := err == nil && r.Broken == nil
		c.RecordChain(chain, time.Now(), ok)
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
		vs, err := invariants.Check(ctx, tx)
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
	}
	if c.invRan {
		ch <- prometheus.MustNewConstMetric(invAtDesc, prometheus.GaugeValue, float64(c.invAt.UnixNano())/1e9)
		ch <- prometheus.MustNewConstMetric(invViolDesc, prometheus.GaugeValue, float64(c.invViol))
	}
}
