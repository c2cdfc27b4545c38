package hacluster_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	deskv1 "taxrefund/api/taxrefund/desk/v1"
	storev1 "taxrefund/api/taxrefund/store/v1"
	"taxrefund/internal/db"
	"taxrefund/internal/hacluster"
	"taxrefund/internal/invariants"
	"taxrefund/internal/seal"
)

// testBasePort keeps the test's cluster off `make ha`'s ports (52110 on), and below
// Linux's ephemeral range (32768–60999 by default), from which the listeners other
// test packages open on port 0 take their ports while this test runs beside them.
const testBasePort = 28150

// standbyStop is how long the synchronous standby is stopped (SIGSTOP), the issue's
// figure: longer than Patroni's ttl (10 s), so that it may name the other replica
// synchronous meanwhile; writes wait until it does (synchronous_mode_strict).
const standbyStop = 20 * time.Second

// checkpointStall is how long the primary's checkpointer is stopped while Patroni
// demotes it for a switchover: longer than the 20 s Patroni's REST API waits before it
// answers "Switchover status unknown".
const checkpointStall = 25 * time.Second

type logWriter struct{ t *haT }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startCluster builds taxrefund and starts etcd, three Patroni nodes and two servers in
// a directory of the test's own; everything stops when the test ends, passed or not.
func startCluster(t *haT, ctx context.Context) *hacluster.Cluster {
	t.Helper()
	for _, bin := range []string{"patroni", "patronictl", "etcd"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is not installed: the HA test needs the Debian packages patroni, python3-etcd and etcd-server (`make deps`)", bin)
		}
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "taxrefund")
	goCmd := "go"
	if p, err := exec.LookPath("go"); err == nil {
		goCmd = p
	} else {
		goCmd = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	if out, err := exec.CommandContext(ctx, goCmd, "build", "-o", bin, "taxrefund/cmd/taxrefund").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	c, err := hacluster.New(ctx, hacluster.Config{
		Dir: filepath.Join(dir, "ha"), Templates: "../../deploy", BasePort: testBasePort, Taxrefund: bin,
		Servers: 2, ServeArgs: []string{"-check-interval", "0"}, Log: logWriter{t},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			for _, f := range []string{"taxrefund1.log", "taxrefund2.log"} {
				if b, err := os.ReadFile(filepath.Join(dir, "ha", f)); err == nil {
					t.Logf("%s (last 4 kB):\n%s", f, b[max(0, len(b)-4096):])
				}
			}
		}
	})
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestFailoverLosesNoAcknowledgedWrite runs the HA cluster under continuous writes through
// both servers (IssueForm; desk visits: verify and settle; refund point visits: an
// immediate refund, every other one handed back) and a third client that knows both
// servers, and drives faults into it one after the other:
//
//  0. a COMMIT whose wait for the synchronous standby is cancelled (pg_cancel_backend,
//     standby stopped), in the db package and through a server: never acknowledged;
//  1. kill -9 of the primary's postmaster (Patroni promotes the synchronous standby);
//  2. a planned switchover (Patroni's REST API, what patronictl switchover sends);
//  3. a planned switchover whose primary is slow to stop (its checkpointer stopped for
//     checkpointStall): Patroni answers "status unknown", the switchover completes;
//  4. SIGSTOP of the synchronous standby for standbyStop, then SIGCONT;
//  5. kill -9 of one taxrefund server (then started again).
//
// After each: every acknowledged form, payout, immediate refund and hand-back is on the
// new primary, no request made two forms or two prepayments, no form was paid twice, a
// sample of acknowledged requests sent again with their request_id get the very same
// answer, the ledger invariants and the hash chains hold, nothing is stuck half-way and
// the acquirer outbox drains (checkSettled); no call got an answer a failover must never
// produce (INTERNAL, a refusal). At the end the reports that may lag come from a replica
// and say so (checkLaggingReads). The
// unavailability window of each client group is logged (BENCH.md).
func TestFailoverLosesNoAcknowledgedWrite(tt *testing.T) {
	t := recordFailures(tt)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	c := startCluster(t, ctx)
	s1 := dialClients(t, c, "server1", c.ServerAddr(0))
	s2 := dialClients(t, c, "server2", c.ServerAddr(1))
	both := dialClients(t, c, "both", c.ServerAddrs())

	// Without gRPC's own retries, to see the server's first answer.
	cancelledSyncRep(t, ctx, c, dialClients(t, c, "direct", c.ServerAddr(0), grpc.WithDisableRetry()))

	l := newLoad(t, "HA", s1, s2, both)
	l.start(ctx, 2, 1, 1)
	defer l.halt()
	if _, ok := l.firstSuccessAfter(ctx, "server2", time.Now(), 30*time.Second); !ok {
		t.Fatal("no write succeeded through server2 under load")
	}
	time.Sleep(2 * time.Second)

	type result struct {
		fault   string
		windows map[string]time.Duration
		acked   int
		note    string
	}
	var results []result
	// phase injects a fault (inject returns when it struck, and the leader it meant to
	// replace, if any), waits until every group has written again, steadily, the leader
	// changed and all nodes stream again, then checks what was acknowledged.
	phase := func(fault string, groups []string, inject func() (note string, at time.Time, oldLeader string)) {
		t.Helper()
		before, _ := l.snapshot()
		note, at, oldLeader := inject()
		r := result{fault: fault, windows: map[string]time.Duration{}, note: note}
		for _, g := range groups {
			if !l.waitSuccesses(ctx, g, at, 10, 90*time.Second) {
				t.Fatalf("%s: writes through %s did not resume within 90 s", fault, g)
			}
		}
		for oldLeader != "" {
			roles, err := c.WaitHealthy(ctx, 2*time.Minute)
			if err != nil {
				t.Fatalf("%s: the cluster did not heal: %v", fault, err)
			}
			if roles.Leader != oldLeader {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		time.Sleep(time.Second)
		if _, err := c.WaitHealthy(ctx, 2*time.Minute); err != nil {
			t.Fatalf("%s: the cluster did not heal: %v", fault, err)
		}
		end := time.Now()
		for _, g := range groups {
			gap, ended := l.maxGap(g, at, end)
			r.windows[g] = gap
			// Where the window went: when it opened and closed, beside the steps Patroni
			// logged (BENCH.md, "High availability").
			t.Logf("%s: through %s no OK IssueForm from +%.3fs to +%.3fs", fault, g, ended.Add(-gap).Sub(at).Seconds(), ended.Sub(at).Seconds())
		}
		after, _ := l.snapshot()
		r.acked = len(after) - len(before)
		for _, e := range c.Events(at) {
			t.Logf("%s: patroni %s", fault, e)
		}
		checkAcknowledged(t, ctx, c, l, fault, groups, 40)
		checkSettled(t, ctx, c, fault)
		results = append(results, r)
		t.Logf("%s: windows %v; %d forms acknowledged in the phase (%s); %s", fault, r.windows, r.acked, end.Sub(at).Round(time.Second), note)
	}
	all := []string{"server1", "server2", "both"}

	phase("kill -9 primary postmaster", all, func() (string, time.Time, string) {
		roles, err := c.WaitHealthy(ctx, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := c.Node(roles.Leader)
		pid, err := c.PostmasterPID(n)
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("killed %s (postmaster %d); synchronous standby was %s", roles.Leader, pid, roles.Sync), time.Now(), roles.Leader
	})
	phase("switchover", all, func() (string, time.Time, string) {
		// Patroni may refuse a switchover (412: the synchronous standby changed since we
		// looked) or abandon it (503 "Switchover failed"); an operator asks again, and
		// so does the test, at most three times. The window counts from the first ask.
		var at time.Time
		var err error
		for attempt := 1; attempt <= 3; attempt++ {
			var roles hacluster.Roles
			if roles, err = c.WaitHealthy(ctx, time.Minute); err != nil {
				t.Fatal(err)
			}
			if at.IsZero() {
				at = time.Now() // Switchover returns once another node leads
			}
			if err = c.Switchover(ctx, roles.Leader, roles.Sync); err == nil {
				return fmt.Sprintf("switched %s -> %s (attempt %d)", roles.Leader, roles.Sync, attempt), at, roles.Leader
			}
			t.Logf("switchover, attempt %d: %v", attempt, err)
		}
		t.Fatal(err)
		return "", at, ""
	})
	// A planned switchover whose primary is slow to stop: its graceful demote ends with
	// a shutdown checkpoint, here held up for checkpointStall by stopping the
	// checkpointer (what a slow disk does). Patroni answers the request after 20 s with
	// 503 "Switchover status unknown" while it goes on; the switchover then completes,
	// and nothing acknowledged may be lost.
	phase(fmt.Sprintf("switchover, shutdown checkpoint held %s", checkpointStall), all, func() (string, time.Time, string) {
		roles, err := c.WaitHealthy(ctx, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := c.Node(roles.Leader)
		pid, err := c.PostgresProcess(n, "checkpointer")
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		resume := time.AfterFunc(checkpointStall, func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
		t.Cleanup(func() {
			if resume.Stop() {
				_ = syscall.Kill(pid, syscall.SIGCONT)
			}
		})
		at := time.Now()
		if err := c.Switchover(ctx, roles.Leader, roles.Sync); err != nil {
			t.Fatal(err)
		}
		took := time.Since(at)
		if took < checkpointStall {
			t.Errorf("the switchover returned after %s, before the checkpointer resumed (%s): was the shutdown checkpoint held?", took.Round(time.Millisecond), checkpointStall)
		}
		return fmt.Sprintf("switched %s -> %s, checkpointer %d stopped for %s; the switchover returned after %s", roles.Leader, roles.Sync, pid, checkpointStall, took.Round(time.Millisecond)), at, roles.Leader
	})
	phase(fmt.Sprintf("SIGSTOP synchronous standby %s", standbyStop), all, func() (string, time.Time, string) {
		roles, err := c.WaitHealthy(ctx, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := c.Node(roles.Sync)
		at := time.Now()
		if err := c.SignalPostgres(n, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(standbyStop)
		if err := c.SignalPostgres(n, syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("stopped %s for %s", roles.Sync, standbyStop), at, ""
	})
	phase("kill -9 taxrefund server1", []string{"server2", "both"}, func() (string, time.Time, string) {
		if err := c.KillServer(0); err != nil {
			t.Fatal(err)
		}
		return "server1 killed; started again after the others wrote", time.Now(), ""
	})
	// server1 comes back; its terminals, which kept retrying, write again.
	restart := time.Now()
	if err := c.StartServer(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.firstSuccessAfter(ctx, "server1", restart, 60*time.Second); !ok {
		t.Fatal("no write through server1 after its restart")
	}

	l.halt()
	checkAcknowledged(t, ctx, c, l, "end", all, 300)
	checkSettled(t, ctx, c, "end")
	checkLaggingReads(t, ctx, c, l)
	forms, payouts := l.snapshot()
	l.mu.Lock()
	t.Logf("acknowledged: %d forms, %d payouts, %d immediate refunds; non-OK answers retried: %v", len(forms), len(payouts), len(l.prepaid), l.codes)
	for _, u := range l.unwanted {
		t.Errorf("an answer a failover must not produce: %s", u)
	}
	l.mu.Unlock()
	t.Log("fault | unavailability window per client group (longest time without an OK IssueForm) | forms acknowledged in the phase")
	for _, r := range results {
		t.Logf("%s | %v | %d | %s", r.fault, r.windows, r.acked, r.note)
	}
}

// cancelledSyncRep stops both replicas, so that COMMITs wait for a standby, and cancels
// the backends waiting (pg_cancel_backend: what a cancel request, a
// statement_timeout or an operator does). PostgreSQL commits locally and says so only in
// a WARNING; db.InTx must return ErrCommitUnknown and a server UNAVAILABLE, never
// success. A retry of the IssueForm finds its stored answer but gets no OK while no
// standby has it; once they are back, the retry gets the one form.
func cancelledSyncRep(t *haT, ctx context.Context, c *hacluster.Cluster, s *clients) {
	roles, err := c.WaitHealthy(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	leader, _ := c.Node(roles.Leader)
	// Both replicas stop: with the synchronous standby alone stopped, Patroni names the
	// other one synchronous within seconds, and commits go on.
	var replicas []hacluster.Node
	for _, n := range c.Nodes {
		if n.Name != roles.Leader {
			replicas = append(replicas, n)
		}
	}
	admin, err := pgx.Connect(ctx, c.NodeURL(leader, hacluster.Database))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.WithoutCancel(ctx))
	if _, err := admin.Exec(ctx, `CREATE TABLE syncrep_probe (id int)`); err != nil {
		t.Fatal(err)
	}
	pool, err := db.Open(ctx, c.DatabaseURL(hacluster.Database)+" application_name=syncrep_probe", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	for _, n := range replicas {
		if err := c.SignalPostgres(n, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			for _, n := range replicas {
				if err := c.SignalPostgres(n, syscall.SIGCONT); err != nil {
					t.Error(err)
				}
			}
		}
	}
	defer resume()

	// cancelWaiter cancels the backends waiting for the standby whose application is app
	// or whose statement is like query, once one does. (The servers' own jobs, the
	// sealer for one, wait too; they are left alone.)
	cancelWaiter := func(app, query string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			var n int
			err := admin.QueryRow(ctx, `SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity
				WHERE wait_event = 'SyncRep' AND (application_name = $1 OR query LIKE $2)`, app, query).Scan(&n)
			if err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no backend of %q or running %q waited for the synchronous standby", app, query)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// The db package.
	done := make(chan error, 1)
	go func() {
		done <- db.InTx(ctx, pool, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO syncrep_probe VALUES (1)`)
			return err
		})
	}()
	cancelWaiter("syncrep_probe", "")
	if err := <-done; !errors.Is(err, db.ErrCommitUnknown) {
		t.Errorf("db.InTx whose wait for the synchronous standby was cancelled returned %v, want ErrCommitUnknown", err)
	}
	var local int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM syncrep_probe`).Scan(&local); err != nil {
		t.Fatal(err)
	}
	if local != 1 {
		t.Errorf("the primary holds %d probe rows, want 1: the cancel did not hit a commit waiting for the standby", local)
	}

	// A server (IssueForm: one batch on the pool, committed implicitly).
	req := newLoad(t, "SR").newIssue()
	answer := make(chan error, 1)
	go func() {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_, err := s.store.IssueForm(cctx, req)
		answer <- err
	}()
	// The batch's last statement (pg_stat_activity's query) writes the audit event.
	cancelWaiter("-", "%'FORM_ISSUED'%")
	err = <-answer
	if status.Code(err) != codes.Unavailable {
		t.Errorf("IssueForm whose commit's wait for the synchronous standby was cancelled answered %v, want UNAVAILABLE", err)
	}
	// Its retry finds the stored answer, committed on the primary alone: no answer while
	// no standby has it.
	cctx, cancelRetry := context.WithTimeout(ctx, 3*time.Second)
	_, early := s.store.IssueForm(cctx, req)
	cancelRetry()
	if early == nil {
		t.Error("the retry of the cancelled IssueForm answered OK while no standby held its form")
	}
	resume()

	// The retry with the same request_id gets one form, committed before the cancel.
	var first *storev1.IssueFormResponse
	for attempt := 0; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := s.store.IssueForm(cctx, req)
		cancel()
		if err == nil {
			first = resp
			break
		}
		if !retryable(status.Code(err)) || attempt > 100 {
			t.Fatalf("retry of the cancelled IssueForm: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var forms int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE action = 'FORM_ISSUED' AND request_id = $1`, req.RequestId).Scan(&forms); err != nil {
		t.Fatal(err)
	}
	if forms != 1 {
		t.Errorf("the cancelled and retried IssueForm made %d forms, want 1", forms)
	}
	t.Logf("cancelled wait for the synchronous standby: db.InTx -> ErrCommitUnknown, IssueForm -> %v, its retry with the standbys stopped -> %v; after they resumed, form %s",
		status.Code(err), status.Code(early), first.GetForm().GetNumber())
}

// checkAcknowledged checks, on the current primary, what the acknowledgements so far
// promise: every form and payout there, no request made twice, no form paid twice; the
// invariants and hash chains hold; and sample (every one when < 0) acknowledged
// IssueForms sent again, through the client groups named in through, get the same answer.
func checkAcknowledged(t *haT, ctx context.Context, c *hacluster.Cluster, l *load, when string, through []string, sample int) {
	t.Helper()
	forms, payouts := l.snapshot()
	numbers := make([]string, len(forms))
	for i, f := range forms {
		numbers[i] = f.resp.GetForm().GetNumber()
	}
	payoutIDs := make([]string, len(payouts))
	for i, p := range payouts {
		payoutIDs[i] = p.resp.GetPayout().GetPayoutId()
	}
	prepaids := l.prepayments()
	var prepaidIDs, returnedIDs []string
	for _, p := range prepaids {
		prepaidIDs = append(prepaidIDs, p.resp.GetPrepayment().GetPrepaymentId())
		if p.returned != nil {
			returnedIDs = append(returnedIDs, p.returned.GetPrepayment().GetPrepaymentId())
		}
	}
	var lost []string
	err := withPrimary(ctx, c, func(tx pgx.Tx) error {
		lost = lost[:0]
		rows, err := tx.Query(ctx, `SELECT n FROM unnest($1::text[]) n WHERE NOT EXISTS (SELECT 1 FROM forms WHERE number = n)`, numbers)
		if err != nil {
			return err
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		lost = append(lost, got...)
		rows, err = tx.Query(ctx, `SELECT 'payout ' || p FROM unnest($1::text[]) p WHERE NOT EXISTS (SELECT 1 FROM payouts WHERE id::text = p)`, payoutIDs)
		if err != nil {
			return err
		}
		got, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		lost = append(lost, got...)
		// Every acknowledged immediate refund is there, for its form; every acknowledged
		// hand-back left it RETURNED.
		rows, err = tx.Query(ctx, `SELECT 'prepayment ' || p FROM unnest($1::text[]) p WHERE NOT EXISTS (SELECT 1 FROM prepayments WHERE id::text = p)
			UNION ALL
			SELECT 'return of prepayment ' || p FROM unnest($2::text[]) p WHERE NOT EXISTS (SELECT 1 FROM prepayments WHERE id::text = p AND state = 'RETURNED')`,
			prepaidIDs, returnedIDs)
		if err != nil {
			return err
		}
		got, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		lost = append(lost, got...)
		var dupPrepaid, dupReturned int
		if err := tx.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM (SELECT request_id FROM audit_events WHERE action = 'IMMEDIATE_REFUND_PAID' GROUP BY request_id HAVING count(*) > 1) x)
			  + (SELECT count(*) FROM (SELECT object FROM audit_events WHERE action = 'IMMEDIATE_REFUND_PAID' GROUP BY object HAVING count(*) > 1) x),
			(SELECT count(*) FROM (SELECT object FROM audit_events WHERE action = 'PREPAYMENT_RETURNED' GROUP BY object HAVING count(*) > 1) x)`).
			Scan(&dupPrepaid, &dupReturned); err != nil {
			return err
		}
		if dupPrepaid+dupReturned > 0 {
			t.Errorf("%s: %d immediate refunds paid twice (a request or a form), %d prepayments handed back twice", when, dupPrepaid, dupReturned)
		}
		var dupRequests, dupInvoices, paidTwice, payoutsUnacked int
		if err := tx.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM (SELECT request_id FROM audit_events WHERE action = 'FORM_ISSUED' GROUP BY request_id HAVING count(*) > 1) x),
			(SELECT count(*) FROM (SELECT store_code, invoice_number FROM form_invoices GROUP BY 1, 2 HAVING count(*) > 1) x),
			(SELECT count(*) FROM (SELECT form_id FROM payout_forms GROUP BY form_id HAVING count(*) > 1) x),
			(SELECT count(*) FROM payout_forms pf JOIN forms f ON f.id = pf.form_id WHERE f.payout_id IS DISTINCT FROM pf.payout_id)`).
			Scan(&dupRequests, &dupInvoices, &paidTwice, &payoutsUnacked); err != nil {
			return err
		}
		if dupRequests+dupInvoices+paidTwice+payoutsUnacked > 0 {
			t.Errorf("%s: %d requests with two forms, %d invoices on two forms, %d forms paid twice, %d payout rows not the form's payout",
				when, dupRequests, dupInvoices, paidTwice, payoutsUnacked)
		}
		found, err := invariants.Check(ctx, tx)
		if err != nil {
			return err
		}
		for _, v := range found {
			t.Errorf("%s: invariant %s: %s", when, v.Invariant, v.Detail)
		}
		for _, chain := range seal.Chains {
			r, err := seal.Verify(ctx, tx, chain)
			if err != nil {
				return err
			}
			if r.Broken != nil {
				t.Errorf("%s: hash chain %s broken at seal %d: %s", when, chain, r.Broken.Seq, r.Broken.Reason)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: check on the primary: %v", when, err)
	}
	for _, n := range lost {
		t.Errorf("%s: acknowledged %s is not on the primary", when, n)
	}

	// The same request_id gets the same answer, through either server.
	picks := forms
	if sample >= 0 && len(picks) > sample {
		picks = make([]issued, sample)
		for i := range picks {
			picks[i] = forms[rand.IntN(len(forms))]
		}
	}
	var via []*clients
	for _, g := range l.groups {
		if slices.Contains(through, g.name) {
			via = append(via, g)
		}
	}
	for i, f := range picks {
		g := via[i%len(via)]
		var resp *storev1.IssueFormResponse
		if !l.call(ctx, "replay IssueForm", func(ctx context.Context) (err error) {
			resp, err = g.store.IssueForm(ctx, f.req)
			return err
		}) {
			t.Errorf("%s: replay of IssueForm %s failed", when, f.req.RequestId)
			continue
		}
		if !proto.Equal(resp, f.resp) {
			t.Errorf("%s: IssueForm %s sent again answers\n%s\nnot the acknowledged\n%s", when, f.req.RequestId,
				prototext.Format(resp), prototext.Format(f.resp))
		}
	}
	// An acknowledged immediate refund sent again gets the same answer.
	for i := range min(len(prepaids), max(sample/4, 1)) {
		p := prepaids[rand.IntN(len(prepaids))]
		g := via[i%len(via)]
		var resp *deskv1.PayImmediateRefundResponse
		if !l.call(ctx, "replay PayImmediateRefund", func(ctx context.Context) (err error) {
			resp, err = g.point.PayImmediateRefund(ctx, p.req)
			return err
		}) {
			t.Errorf("%s: replay of PayImmediateRefund %s failed", when, p.req.RequestId)
			continue
		}
		if !proto.Equal(resp, p.resp) {
			t.Errorf("%s: PayImmediateRefund %s sent again answers\n%s\nnot the acknowledged\n%s", when, p.req.RequestId,
				prototext.Format(resp), prototext.Format(p.resp))
		}
	}
	t.Logf("%s: %d forms, %d payouts and %d immediate refunds (%d handed back) acknowledged, %d lost; %d replays identical",
		when, len(forms), len(payouts), len(prepaids), len(returnedIDs), len(lost), len(picks))
}

// withPrimary runs fn in a read-only repeatable-read transaction on the current primary
// (one snapshot for every check while writes go on), retrying while a failover settles.
func withPrimary(ctx context.Context, c *hacluster.Cluster, fn func(pgx.Tx) error) error {
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		err = func() error {
			conn, err := pgx.Connect(ctx, c.DatabaseURL(hacluster.Database))
			if err != nil {
				return err
			}
			defer conn.Close(context.WithoutCancel(ctx))
			return pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
		}()
		if err == nil || !db.IsUnavailable(err) {
			return err
		}
		time.Sleep(500 * time.Millisecond)
	}
	return err
}
