package server_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	storev1 "taxrefund/api/taxrefund/store/v1"
	"taxrefund/internal/dbtest"
	"taxrefund/internal/server"
)

// callRecord is one call of the partition test's load.
type callRecord struct {
	method   string
	start    time.Time
	elapsed  time.Duration
	deadline time.Duration // the shorter of the client's and the server's
	code     codes.Code
	message  string
}

// healthFlip is when the health poller first saw a status after a change.
type healthFlip struct {
	at      time.Time
	service string
	status  healthpb.HealthCheckResponse_ServingStatus
}

// TestDatabasePartition partitions the database under load, through a TCP proxy between
// the services' pool and PostgreSQL: 30 s black-holed (nothing passes, connections stay
// open), then 5 s of reset connections. No call outlives its deadline by more than 1 s;
// every failing call is UNAVAILABLE or DEADLINE_EXCEEDED; health (overall and per
// service) turns NOT_SERVING within 2 s of each loss and SERVING within 2 s of each
// return; afterwards every acknowledged form is in the database and the ledger's
// invariants hold.
func TestDatabasePartition(t *testing.T) {
	const serverDeadline = 2 * time.Second
	const clientDeadline = 700 * time.Millisecond
	var px *dbtest.Proxy
	env := newSecEnv(t, secOptions{
		limits: &server.Limits{Deadline: serverDeadline},
		appURL: func(url string) string { px = dbtest.NewProxy(t, url); return px.URL(url) },
	})
	ctx, stop := context.WithCancel(context.Background())
	defer stop()

	// Health follows the database over its own connection, through the same proxy.
	watch := &server.DatabaseWatch{URL: px.URL(env.url), Health: env.health, Server: env.srv}
	go watch.Run(ctx)

	// The health poller, through gRPC as a load balancer asks.
	services := []string{"", "taxrefund.store.v1.StoreService", "taxrefund.desk.v1.DeskService"}
	var hmu sync.Mutex
	var flips []healthFlip
	var pollErrs []error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		hc := healthpb.NewHealthClient(env.conn(t, sat))
		last := map[string]healthpb.HealthCheckResponse_ServingStatus{}
		for ctx.Err() == nil {
			for _, svc := range services {
				cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
				resp, err := hc.Check(cctx, &healthpb.HealthCheckRequest{Service: svc})
				cancel()
				hmu.Lock()
				switch {
				case err != nil && ctx.Err() == nil:
					pollErrs = append(pollErrs, fmt.Errorf("health %q: %w", svc, err))
				case err == nil && resp.GetStatus() != last[svc]:
					last[svc] = resp.GetStatus()
					flips = append(flips, healthFlip{time.Now(), svc, resp.GetStatus()})
				}
				hmu.Unlock()
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()

	// The load: 8 workers issue forms and read them back, a third of the calls with a
	// deadline of the client's, shorter than the server's.
	var mu sync.Mutex
	var calls []callRecord
	var acked []string
	loadCtx, stopLoad := context.WithCancel(ctx)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := storeJFB1
			if w%2 == 1 {
				name = storeJFB2
			}
			sc := env.store(t, name)
			var mine []string
			for i := 0; loadCtx.Err() == nil; i++ {
				deadline := serverDeadline
				cctx, cancel := context.WithCancel(context.Background())
				if i%3 == 0 {
					deadline = clientDeadline
					cancel()
					cctx, cancel = context.WithTimeout(context.Background(), clientDeadline)
				}
				rec := callRecord{start: time.Now(), deadline: deadline}
				if i%2 == 0 || len(mine) == 0 {
					rec.method = "IssueForm"
					req := domainExample(env.tr.secret(fmt.Sprintf("E%d%07d", w, i%8)), "INV-"+uuid.NewString()[:8])
					resp, err := sc.IssueForm(cctx, req)
					rec.code, rec.message = status.Code(err), status.Convert(err).Message()
					if err == nil {
						mine = append(mine, resp.GetForm().GetNumber())
						mu.Lock()
						acked = append(acked, resp.GetForm().GetNumber())
						mu.Unlock()
					}
				} else {
					rec.method = "GetForm"
					_, err := sc.GetForm(cctx, &storev1.GetFormRequest{FormNumber: mine[i%len(mine)]})
					rec.code, rec.message = status.Code(err), status.Convert(err).Message()
				}
				rec.elapsed = time.Since(rec.start)
				cancel()
				mu.Lock()
				calls = append(calls, rec)
				mu.Unlock()
				if rec.code != codes.OK {
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}

	phase := func(what string, d time.Duration) (time.Time, time.Time) {
		start := time.Now()
		t.Logf("%s for %v", what, d)
		time.Sleep(d)
		return start, time.Now()
	}
	phase("warm-up", 3*time.Second)
	px.BlackHole()
	bhStart, bhEnd := phase("black hole", 30*time.Second)
	px.Heal()
	phase("healed", 5*time.Second)
	px.Reset()
	rsStart, rsEnd := phase("reset", 5*time.Second)
	px.Heal()
	_, end := phase("healed", 5*time.Second)
	stopLoad()
	stop()
	wg.Wait()

	// Every call ended by its deadline plus 1 s, and every failure is one of the two codes.
	codesSeen := map[string]map[codes.Code]int{}
	var okAfterHeal int
	for _, c := range calls {
		if codesSeen[c.method] == nil {
			codesSeen[c.method] = map[codes.Code]int{}
		}
		codesSeen[c.method][c.code]++
		if c.elapsed > c.deadline+time.Second {
			t.Errorf("%s started %v into the run took %v, deadline %v", c.method, c.start.Sub(bhStart), c.elapsed, c.deadline)
		}
		switch c.code {
		case codes.OK, codes.Unavailable, codes.DeadlineExceeded:
		default:
			t.Errorf("%s at %v: %v %q, want UNAVAILABLE or DEADLINE_EXCEEDED", c.method, c.start.Sub(bhStart), c.code, c.message)
		}
		if c.code == codes.OK && c.start.After(rsEnd.Add(2*time.Second)) {
			okAfterHeal++
		}
	}
	t.Logf("%d calls: %v", len(calls), codesSeen)
	if codesSeen["IssueForm"][codes.DeadlineExceeded]+codesSeen["IssueForm"][codes.Unavailable] == 0 {
		t.Error("no IssueForm failed while the database was away: the partition did not take")
	}
	if okAfterHeal == 0 {
		t.Error("no call succeeded after the database came back")
	}

	// Health flipped both ways within 2 s, for each service name.
	hmu.Lock()
	for _, err := range pollErrs {
		t.Errorf("health check while the database was away: %v", err)
	}
	firstAfter := func(svc string, st healthpb.HealthCheckResponse_ServingStatus, from time.Time) (time.Duration, bool) {
		for _, f := range flips {
			if f.service == svc && f.status == st && !f.at.Before(from) {
				return f.at.Sub(from), true
			}
		}
		return 0, false
	}
	for _, svc := range services {
		for _, step := range []struct {
			what string
			st   healthpb.HealthCheckResponse_ServingStatus
			from time.Time
		}{
			{"black hole", healthpb.HealthCheckResponse_NOT_SERVING, bhStart},
			{"healed after black hole", healthpb.HealthCheckResponse_SERVING, bhEnd},
			{"reset", healthpb.HealthCheckResponse_NOT_SERVING, rsStart},
			{"healed after reset", healthpb.HealthCheckResponse_SERVING, rsEnd},
		} {
			d, ok := firstAfter(svc, step.st, step.from)
			switch {
			case !ok:
				t.Errorf("health %q: never %v after %s", svc, step.st, step.what)
			case d > 2*time.Second:
				t.Errorf("health %q: %v %v after %s, want within 2 s", svc, step.st, d, step.what)
			default:
				t.Logf("health %q: %v %v after %s", svc, step.st, d.Round(time.Millisecond), step.what)
			}
		}
	}
	_ = end
	hmu.Unlock()

	// Every acknowledged form is there, and the ledger is consistent (read directly, not
	// through the proxy).
	check := context.Background()
	var found int
	if err := env.pool.QueryRow(check, `SELECT count(*) FROM forms WHERE number = ANY($1)`, acked).Scan(&found); err != nil {
		t.Fatal(err)
	}
	if found != len(acked) {
		t.Errorf("%d of %d acknowledged forms are in the database", found, len(acked))
	}
	t.Logf("%d forms acknowledged, all found", len(acked))
	dbtest.CheckInvariants(t, check, env.pool)
}
