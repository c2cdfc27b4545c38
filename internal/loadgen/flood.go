package loadgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	storev1 "taxrefund/api/taxrefund/store/v1"
)

// The flood scenario: 63 stores issue forms (the others), measured in the same run
// without and with one more store flooding the server with cheap calls (GetForm) and
// expensive ones (ListForms, IssueForm) from FloodCallers concurrent callers that never
// wait, alternately (FloodSlices slices of each, pooled). The result is the others'
// IssueForm latency with the flood, and its notes the same without it and the ratio of
// the two p99s (the server's admission by cost and fair share should keep it under 2).

// FloodCallers is how many concurrent callers the flooding store runs.
const FloodCallers = 256

// FloodSlices is how many times each phase, without and with the flood, is measured.
const FloodSlices = 2

// floodOthers is how many stores issue while one floods.
const floodOthers = 63

func runFlood(ctx context.Context, pool *pgxpool.Pool, cfg RunConfig, stores []storev1.StoreServiceClient) (Result, error) {
	if len(stores) < floodOthers+1 {
		return Result{}, fmt.Errorf("flood: -stores %d: want at least %d (one floods, %d issue)", len(stores), floodOthers+1, floodOthers)
	}
	flooder, others := stores[0], stores[1:floodOthers+1]
	visit := issueVisit(others)
	existing, err := countForms(ctx, pool)
	if err != nil {
		return Result{}, err
	}
	started := nowStamp()

	// Numbers of the flooder's own forms to read back.
	var numbers []string
	for i := range 20 {
		resp, err := flooder.IssueForm(ctx, issueRequest(rand.New(rand.NewPCG(uint64(i), 7)), travellerOf("F", i), time.Now(), 0))
		if err == nil {
			numbers = append(numbers, resp.GetForm().GetNumber())
		}
	}
	if len(numbers) == 0 {
		return Result{}, fmt.Errorf("flood: the flooding store could not issue a form")
	}
	var fmu sync.Mutex
	floodCodes := map[string]int64{}
	var floodTime time.Duration
	// flood starts the flooding store's callers; the function it returns stops them.
	flood := func() (stop func()) {
		floodCtx, stopFlood := context.WithCancel(ctx)
		started := time.Now()
		var wg sync.WaitGroup
		for i := range FloodCallers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(i), uint64(started.UnixNano())))
				local := map[string]int64{}
				for n := 0; floodCtx.Err() == nil; n++ {
					cctx, cancel := context.WithTimeout(floodCtx, cfg.Load.Timeout)
					var method string
					var err error
					switch n % 4 {
					case 0:
						method = "ListForms"
						_, err = flooder.ListForms(cctx, &storev1.ListFormsRequest{})
					case 1:
						method = "IssueForm"
						_, err = flooder.IssueForm(cctx, issueRequest(r, travellerOf("F", r.IntN(1000)), time.Now(), 0))
					default:
						method = "GetForm"
						_, err = flooder.GetForm(cctx, &storev1.GetFormRequest{FormNumber: numbers[r.IntN(len(numbers))]})
					}
					cancel()
					if floodCtx.Err() == nil {
						local[method+"/"+status.Code(err).String()]++
					}
				}
				fmu.Lock()
				for k, v := range local {
					floodCodes[k] += v
				}
				fmu.Unlock()
			}()
		}
		return func() {
			stopFlood()
			wg.Wait()
			floodTime += time.Since(started)
		}
	}

	// The phases alternate, without and with the flood, FloodSlices times each, and each
	// side's slices are pooled: on a machine shared with other work, the load of the
	// machine drifts during a run, and alternating spreads that drift over both sides
	// instead of charging it to one.
	slice := cfg.Load
	slice.Duration = max(time.Second, cfg.Load.Duration/FloodSlices)
	fmt.Fprintf(cfg.Log, "loadgen: flood: %d stores issue, %d callers, %d × (%s warm-up + %s measured) without the flood and as many with store 1 flooding from %d callers, alternately...\n",
		floodOthers, cfg.Load.Concurrency, FloodSlices, slice.Warmup, slice.Duration, FloodCallers)
	var quiet, flooded outcome
	for i := range 2 * FloodSlices {
		var stop func()
		if i%2 == 1 {
			stop = flood()
		}
		o, err := drive(ctx, slice, newMeter(ctx, pool, cfg.ServerPID), visit, nil)
		if stop != nil {
			stop()
		}
		if err != nil {
			return Result{}, err
		}
		if i%2 == 1 {
			flooded = pool2(flooded, o)
		} else {
			quiet = pool2(quiet, o)
		}
	}

	r := Result{
		Kind: "service", Scenario: "flood", Label: cfg.Label, Mode: string(cfg.Load.Mode),
		Concurrency: cfg.Load.Concurrency, Seconds: flooded.window.Seconds(),
		Latency: flooded.stats.visits.Summary(), Errors: map[string]int64{},
		Late: flooded.late, Dropped: flooded.dropped, Offered: flooded.offered,
		CPU: flooded.cpu, ServerPeakRSSMiB: flooded.peakRSS, ServerRSSMiB: flooded.rssNow,
		ExistingForms: existing, Started: started, Notes: flooded.notes,
	}
	var quietP99 float64
	if ms, ok := quiet.stats.methods["IssueForm"]; ok {
		quietP99 = ms.latency.Summary().P99
	}
	if ms, ok := flooded.stats.methods["IssueForm"]; ok {
		mr := MethodResult{Method: "IssueForm", OK: ms.codes[codes.OK], Latency: ms.latency.Summary()}
		for _, code := range sortedCodes(ms.codes) {
			if code != codes.OK {
				mr.Failed += ms.codes[code]
				r.Errors["IssueForm/"+code.String()] = ms.codes[code]
			}
		}
		mr.OKPerSec = float64(mr.OK) / r.Seconds
		if n := mr.OK + mr.Failed; n > 0 {
			mr.ErrorRate = float64(mr.Failed) / float64(n)
		}
		r.Methods = append(r.Methods, mr)
		r.Ops, r.OpsPerSec = mr.OK, mr.OKPerSec
		ratio := 0.0
		if quietP99 > 0 {
			ratio = mr.Latency.P99 / quietP99
		}
		r.Notes = append(r.Notes, fmt.Sprintf("others' IssueForm p99: %.1f ms without the flood, %.1f ms with it: %.2fx", quietP99, mr.Latency.P99, ratio))
		// What the machine gave each phase: on a shared machine a ratio moves with the
		// other work as much as with the flood.
		var quietOK int64
		if ms, ok := quiet.stats.methods["IssueForm"]; ok {
			quietOK = ms.codes[codes.OK]
		}
		r.Notes = append(r.Notes, fmt.Sprintf("others' IssueForm OK/s: %.1f without the flood, %.1f with it; CPU outside server, PostgreSQL and loadgen: %.0f%% and %.0f%% of the cores",
			float64(quietOK)/quiet.window.Seconds(), mr.OKPerSec, otherShare(quiet.cpu), otherShare(flooded.cpu)))
	}
	var keys []string
	for k := range floodCodes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var total int64
	desc := ""
	for _, k := range keys {
		total += floodCodes[k]
		desc += fmt.Sprintf(" %s=%d", k, floodCodes[k])
	}
	r.Notes = append(r.Notes, fmt.Sprintf("the flooding store's calls while it flooded: %d (%.0f/s):%s", total, float64(total)/floodTime.Seconds(), desc))
	return r, nil
}

// otherShare is the per cent of the cores' time that went to other processes.
func otherShare(c CPUSplit) float64 {
	if c.Seconds <= 0 || c.Cores <= 0 {
		return 0
	}
	return 100 * c.Other / (c.Seconds * float64(c.Cores))
}

// pool2 adds o's counts to a: the outcome of two slices of one phase.
func pool2(a, o outcome) outcome {
	if a.stats == nil {
		return o
	}
	a.stats.merge(o.stats)
	a.window += o.window
	a.late += o.late
	a.dropped += o.dropped
	a.offered += o.offered
	a.cpu.Seconds += o.cpu.Seconds
	a.cpu.Busy += o.cpu.Busy
	a.cpu.Server += o.cpu.Server
	a.cpu.Postgres += o.cpu.Postgres
	a.cpu.PostgresBackground += o.cpu.PostgresBackground
	a.cpu.Client += o.cpu.Client
	a.cpu.Other += o.cpu.Other
	a.peakRSS = max(a.peakRSS, o.peakRSS)
	a.rssNow = o.rssNow
	return a
}
