package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc/codes"

	deskv1 "taxrefund/api/taxrefund/desk/v1"
	formv1 "taxrefund/api/taxrefund/form/v1"
	storev1 "taxrefund/api/taxrefund/store/v1"
)

// RunConfig is a service measurement.
type RunConfig struct {
	Scenario  string // "issue", "desk", "immediate", "report", "console" or "flood"
	Label     string
	Addr      string
	CertDir   string
	ServerPID int
	// Stores is how many bench stores issue forms (1..the number set up).
	Stores int
	// Travellers is how many desk travellers get their forms issued before the desk run.
	Travellers int
	// Month is the month the report and console scenarios ask for (the current one if zero).
	Month time.Time
	// Cost: also measure what PostgreSQL writes per form (Result.Cost), waiting for its
	// statistics to settle before and after the run (issue scenario).
	Cost bool
	Load Load
	Log  io.Writer
}

// Run measures the service under cfg.Load.
func Run(ctx context.Context, pool *pgxpool.Pool, cfg RunConfig) (Result, error) {
	if cfg.Stores < 1 {
		return Result{}, errors.New("-stores must be at least 1")
	}
	have, err := benchStores(ctx, pool)
	if err != nil {
		return Result{}, err
	}
	if have < cfg.Stores {
		return Result{}, fmt.Errorf("%d bench stores are set up, %d wanted: run `loadgen setup -stores %d`", have, cfg.Stores, cfg.Stores)
	}
	c := newConns(cfg.Addr, cfg.CertDir)
	defer c.close()
	if err := c.waitReady(ctx, "store-"+storeCode(1), 15*time.Second); err != nil {
		return Result{}, err
	}
	stores := make([]storev1.StoreServiceClient, cfg.Stores)
	for i := range stores {
		cc, err := c.get("store-" + storeCode(i+1))
		if err != nil {
			return Result{}, err
		}
		stores[i] = storev1.NewStoreServiceClient(cc)
	}
	if cfg.Load.Seed == 0 {
		cfg.Load.Seed = rand.Uint64()
	}
	if cfg.Scenario == "flood" {
		return runFlood(ctx, pool, cfg, stores)
	}

	var visit visitFunc
	primary := "IssueForm"
	switch cfg.Scenario {
	case "issue":
		visit = issueVisit(stores)
	case "desk":
		primary = "SettleRefund"
		visit, err = prepareDesk(ctx, pool, c, stores, cfg)
		if err != nil {
			return Result{}, err
		}
	case "immediate":
		primary = "PayImmediateRefund"
		visit, err = prepareImmediate(ctx, pool, c, stores)
		if err != nil {
			return Result{}, err
		}
	case "report":
		primary = "MonthlyReport"
		visit, err = prepareReport(c, cfg.Month)
		if err != nil {
			return Result{}, err
		}
	case "console":
		primary = ConsolePages[0]
		visit, err = prepareConsole(ctx, c, cfg.Month)
		if err != nil {
			return Result{}, err
		}
	default:
		return Result{}, fmt.Errorf("scenario %q: want issue, desk, immediate, report or console", cfg.Scenario)
	}
	existing, err := countForms(ctx, pool)
	if err != nil {
		return Result{}, err
	}
	tidied, err := tidy(ctx, pool, cfg.Log)
	if err != nil {
		return Result{}, err
	}
	var cm *costMeter
	if cfg.Cost {
		if cm, err = newCostMeter(ctx, pool, "forms", cfg.Log); err != nil {
			return Result{}, err
		}
	}
	m := newMeter(ctx, pool, cfg.ServerPID)
	started := nowStamp()
	fmt.Fprintf(cfg.Log, "loadgen: %s, %s loop, %d callers, %s warm-up + %s measured...\n",
		cfg.Scenario, cfg.Load.Mode, cfg.Load.Concurrency, cfg.Load.Warmup, cfg.Load.Duration)
	out, err := drive(ctx, cfg.Load, m, visit, nil)
	if err != nil {
		return Result{}, err
	}
	var cost *Cost
	if cm != nil {
		if cost, err = cm.end(ctx, cfg.Log); err != nil {
			return Result{}, err
		}
	}
	r := Result{
		Kind: "service", Scenario: cfg.Scenario, Label: cfg.Label, Mode: string(cfg.Load.Mode),
		Concurrency: cfg.Load.Concurrency, Seconds: out.window.Seconds(),
		Latency: out.stats.visits.Summary(), Errors: map[string]int64{},
		Late: out.late, Dropped: out.dropped, Offered: out.offered,
		CPU: out.cpu, ServerPeakRSSMiB: out.peakRSS, ServerRSSMiB: out.rssNow,
		ExistingForms: existing, Started: started, Notes: append(out.notes, tidied), Cost: cost,
	}
	if cfg.Load.Mode == Open {
		r.Rate = cfg.Load.Rate
	}
	for _, name := range append([]string{"IssueForm", "FindForms", "VerifyExport", "SettleRefund", "PayImmediateRefund", "MonthlyReport"}, ConsolePages...) {
		ms, ok := out.stats.methods[name]
		if !ok {
			continue
		}
		mr := MethodResult{Method: name, OK: ms.codes[codes.OK], Latency: ms.latency.Summary()}
		for _, code := range sortedCodes(ms.codes) {
			if code != codes.OK {
				mr.Failed += ms.codes[code]
				r.Errors[name+"/"+code.String()] = ms.codes[code]
			}
		}
		mr.OKPerSec = float64(mr.OK) / r.Seconds
		if n := mr.OK + mr.Failed; n > 0 {
			mr.ErrorRate = float64(mr.Failed) / float64(n)
		}
		r.Methods = append(r.Methods, mr)
		if name == primary {
			r.Ops, r.OpsPerSec = mr.OK, mr.OKPerSec
		}
	}
	return r, nil
}

// issueVisit issues one form from a random bench store for a Zipf-drawn traveller.
func issueVisit(stores []storev1.StoreServiceClient) visitFunc {
	return func(ctx context.Context, w *worker) error {
		store := stores[w.r.IntN(len(stores))]
		req := issueRequest(w.r, travellerOf("E", int(w.zipf.Uint64())), time.Now(), 0)
		_ = w.call(ctx, "IssueForm", func(ctx context.Context) error {
			_, err := store.IssueForm(ctx, req)
			return err
		})
		return nil
	}
}

// airportDesk is a desk at a port of exit, with the customs officer of that port.
type airportDesk struct {
	customs deskv1.DeskServiceClient
	cashier deskv1.DeskServiceClient
}

// prepareDesk issues the desk travellers' forms (not timed) and returns the visit of one
// traveller at the port: customs finds their forms by document and verifies each (fully,
// or one line short one time in ten), then a cashier pays them in one payout, by bank
// card mostly (cash one time in twenty, mobile payment one in twenty).
func prepareDesk(ctx context.Context, pool *pgxpool.Pool, c *conns, stores []storev1.StoreServiceClient, cfg RunConfig) (visitFunc, error) {
	rows, err := pool.Query(ctx, `SELECT code, port_code FROM desks WHERE kind = 'AIRPORT' ORDER BY code`)
	if err != nil {
		return nil, fmt.Errorf("list desks: %w", err)
	}
	var desks []airportDesk
	for rows.Next() {
		var code, port string
		if err := rows.Scan(&code, &port); err != nil {
			return nil, err
		}
		customs, err := c.get("customs-" + port)
		if err != nil {
			return nil, err
		}
		cashier, err := c.get("desk-" + code)
		if err != nil {
			return nil, err
		}
		desks = append(desks, airportDesk{customs: deskv1.NewDeskServiceClient(customs), cashier: deskv1.NewDeskServiceClient(cashier)})
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(desks) == 0 {
		return nil, errors.New("no airport desks: run `taxrefund seed`")
	}
	if cfg.Travellers < 1 {
		return nil, errors.New("-travellers must be at least 1")
	}

	// A population of this run's own, so that forms of earlier runs are not found.
	population := "D" + strconv.FormatUint(rand.Uint64()%(36*36*36), 36)
	ready := make([]traveller, 0, cfg.Travellers)
	var mu sync.Mutex
	var next, failed atomic.Int64
	start := time.Now()
	fmt.Fprintf(cfg.Log, "loadgen: desk: issuing the forms of %d travellers (not timed)...\n", cfg.Travellers)
	var wg sync.WaitGroup
	for i := range cfg.Load.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(start.UnixNano()), uint64(i)))
			for {
				k := int(next.Add(1) - 1)
				if k >= cfg.Travellers || ctx.Err() != nil {
					return
				}
				t := travellerOf(population, k)
				n := 1
				if r.IntN(5) == 0 {
					n = 2
				}
				issued := 0
				for range n {
					cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
					_, err := stores[r.IntN(len(stores))].IssueForm(cctx, issueRequest(r, t, time.Now(), 250))
					cancel()
					if err != nil {
						failed.Add(1)
						continue
					}
					issued++
				}
				if issued > 0 {
					mu.Lock()
					ready = append(ready, t)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fmt.Fprintf(cfg.Log, "loadgen: desk: %d travellers ready in %.1fs (%d IssueForm calls failed)\n",
		len(ready), time.Since(start).Seconds(), failed.Load())
	if len(ready) == 0 {
		return nil, errors.New("desk: no traveller got a form issued")
	}

	var taken atomic.Int64
	return func(ctx context.Context, w *worker) error {
		k := int(taken.Add(1) - 1)
		if k >= len(ready) {
			return errExhausted
		}
		t := ready[k]
		d := desks[w.r.IntN(len(desks))]
		var found *deskv1.FindFormsResponse
		err := w.call(ctx, "FindForms", func(ctx context.Context) error {
			var err error
			found, err = d.customs.FindForms(ctx, &deskv1.FindFormsRequest{Query: &deskv1.FindFormsRequest_Document{Document: t.doc}})
			return err
		})
		if err != nil {
			return nil
		}
		var verified []string
		for _, f := range found.GetForms() {
			if f.GetState() != formv1.FormState_FORM_STATE_ISSUED {
				continue
			}
			req := &deskv1.VerifyExportRequest{RequestId: newRequestID(w.r), FormNumber: f.GetNumber(), PresentedDocument: t.doc}
			short := w.r.IntN(10) == 0
			for _, l := range f.GetLines() {
				q := l.GetQuantity()
				if short && q > 1 {
					q--
					short = false
				}
				req.Lines = append(req.Lines, &deskv1.LineConfirmation{LineNo: l.GetLineNo(), ConfirmedQuantity: q})
			}
			var resp *deskv1.VerifyExportResponse
			err := w.call(ctx, "VerifyExport", func(ctx context.Context) error {
				var err error
				resp, err = d.customs.VerifyExport(ctx, req)
				return err
			})
			if err == nil && resp.GetForm().GetState() == formv1.FormState_FORM_STATE_VERIFIED {
				verified = append(verified, f.GetNumber())
			}
		}
		if len(verified) == 0 {
			return nil
		}
		settle := &deskv1.SettleRefundRequest{
			RequestId: newRequestID(w.r), FormNumbers: verified, PresentedDocument: t.doc,
			Method:           deskv1.PaymentMethod_PAYMENT_METHOD_BANK_CARD,
			AccountReference: fmt.Sprintf("6222%012d", w.r.Int64N(1e12)),
			ReceiptReference: fmt.Sprintf("RCPT-%012x", w.r.Int64N(1<<48)),
		}
		switch w.r.IntN(20) {
		case 0:
			settle.Method, settle.AccountReference = deskv1.PaymentMethod_PAYMENT_METHOD_CASH, ""
		case 1:
			settle.Method, settle.AccountReference = deskv1.PaymentMethod_PAYMENT_METHOD_MOBILE, fmt.Sprintf("wx%010d", w.r.Int64N(1e10))
		}
		_ = w.call(ctx, "SettleRefund", func(ctx context.Context) error {
			_, err := d.cashier.SettleRefund(ctx, settle)
			return err
		})
		return nil
	}, nil
}

func newRequestID(r *rand.Rand) string {
	var b [16]byte
	_, _ = randReader{r}.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// countForms is the number of forms in the database.
func countForms(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	var n int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM forms`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count forms: %w", err)
	}
	return n, nil
}

// benchStores is the number of active bench stores.
func benchStores(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM stores WHERE code LIKE 'BENCH-%' AND status = 'ACTIVE'`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count bench stores: %w", err)
	}
	return n, nil
}
