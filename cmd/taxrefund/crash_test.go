package main_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	deskv1 "taxrefund/api/taxrefund/desk/v1"
	formv1 "taxrefund/api/taxrefund/form/v1"
	storev1 "taxrefund/api/taxrefund/store/v1"
	"taxrefund/internal/db"
	"taxrefund/internal/dbtest"
	"taxrefund/internal/invariants"
	"taxrefund/internal/pki"
	"taxrefund/internal/refund"
)

// Sizes of the crash test: forms, and goroutines sending settlements.
const (
	crashForms   = 60
	crashWorkers = 24
	// The server is killed when this many settlement calls of the burst have returned.
	killAfter = 40
)

// TestSettlementSurvivesKill runs the real binary (migrate, certs, serve), issues and
// verifies crashForms forms of distinct travellers, then launches a burst of SettleRefund
// calls: each form by both CKG desks at once with their own request_ids, each request
// sent twice. The server gets SIGKILL while the burst is in flight; after a restart every
// request is retried with its original request_id until it answers OK or
// FORM_ALREADY_PAID. Each form must be paid exactly once, a request answered before the
// crash must get the same answer again, and the ledger invariants must hold.
func TestSettlementSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()

	bin := filepath.Join(dir, "taxrefund")
	build := exec.Command(goTool(t), "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	url := dbtest.NewURL(t)
	pool, err := db.Open(ctx, url, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	dbtest.Registry(t, pool)

	env := append(append(os.Environ(), "DATABASE_URL="+url), journalEnv(dir)...)
	certDir, piiKeys := filepath.Join(dir, "certs"), filepath.Join(dir, "pii.keys")
	runBinary(t, env, bin, "migrate") // the database is migrated already: a no-op that must succeed
	runBinary(t, env, bin, "certs", "-cert-dir", certDir, "-pii-keys", piiKeys)
	runBinary(t, env, bin, "keys")
	for _, name := range []string{"server", "store-S-JFB-1", "customs-CKG", "desk-CKG-01", "desk-CKG-02", "authority"} {
		if _, err := os.Stat(filepath.Join(certDir, name+".pem")); err != nil {
			t.Fatalf("taxrefund certs did not write %s.pem: %v", name, err)
		}
	}

	addr := freeAddr(t)
	serveArgs := []string{"serve", "-addr", addr, "-cert-dir", certDir, "-pii-keys", piiKeys, "-expiry-interval", "0"}
	logPath := filepath.Join(dir, "serve.log")
	srv := startChild(t, env, logPath, bin, serveArgs...)
	clients := dialAll(t, addr, certDir)
	waitServing(t, ctx, clients.health)

	// Issue and verify one form per traveller.
	today := refund.LocalDate(time.Now())
	type travel struct {
		doc    *formv1.Document
		number string
	}
	travellers := make([]travel, crashForms)
	for i := range travellers {
		doc := &formv1.Document{Type: formv1.DocumentType_DOCUMENT_TYPE_PASSPORT, Number: fmt.Sprintf("CR%07d", 1000000+i), IssuingCountry: "DE"}
		inv := fmt.Sprintf("CRASH-%03d", i)
		resp, err := clients.store.IssueForm(ctx, &storev1.IssueFormRequest{
			RequestId: uuid.NewString(),
			Traveller: &storev1.Traveller{Document: doc, DocumentExpiryDate: refund.FormatDate(refund.AddDays(today, 3650)),
				Nationality: "DE", LastEntryDate: refund.FormatDate(refund.AddDays(today, -10))},
			Invoices: []*formv1.Invoice{{Number: inv, Date: refund.FormatDate(refund.AddDays(today, -1))}},
			Lines: []*storev1.LineInput{{Description: "Porcelain", Category: formv1.GoodsCategory_GOODS_CATEGORY_GENERAL,
				VatRate: "0.13", Quantity: 1, Amount: fmt.Sprintf("%d.%02d", 1000+i, i), InvoiceNumber: inv}},
		})
		if err != nil {
			t.Fatalf("IssueForm %d: %v", i, err)
		}
		number := resp.GetForm().GetNumber()
		if _, err := clients.customs.VerifyExport(ctx, &deskv1.VerifyExportRequest{
			RequestId: uuid.NewString(), FormNumber: number, PresentedDocument: doc,
			Lines: []*deskv1.LineConfirmation{{LineNo: 1, ConfirmedQuantity: 1}},
		}); err != nil {
			t.Fatalf("VerifyExport %d: %v", i, err)
		}
		travellers[i] = travel{doc: doc, number: number}
	}

	// Two settlement requests per form, one per desk; each is sent twice in the burst.
	type settlement struct {
		form int
		desk int // index into clients.desks
		req  *deskv1.SettleRefundRequest

		mu     sync.Mutex
		before *deskv1.Payout // the OK answer the burst received, if any (before or around the kill)
	}
	var reqs []*settlement
	for i, tr := range travellers {
		for d := range 2 {
			reqs = append(reqs, &settlement{form: i, desk: d, req: &deskv1.SettleRefundRequest{
				RequestId: uuid.NewString(), FormNumbers: []string{tr.number}, PresentedDocument: tr.doc,
				Method: deskv1.PaymentMethod_PAYMENT_METHOD_CASH, ReceiptReference: fmt.Sprintf("RCPT-%03d-%d", i, d),
			}})
		}
	}
	sends := make([]*settlement, 0, 2*len(reqs))
	for _, r := range reqs {
		sends = append(sends, r, r)
	}
	rand.Shuffle(len(sends), func(i, j int) { sends[i], sends[j] = sends[j], sends[i] })

	var started, completed, okBeforeKill atomic.Int64
	var inFlightAtKill, completedAtKill int64
	var killOnce sync.Once
	var killedAt time.Time
	kill := func() {
		killOnce.Do(func() {
			inFlightAtKill = started.Load() - completed.Load()
			completedAtKill = completed.Load()
			killedAt = time.Now()
			if err := srv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Errorf("SIGKILL: %v", err)
			}
		})
	}
	var killed atomic.Bool
	var tallyMu sync.Mutex
	tally := map[string]int{} // refusals and failures by "before|after code reason"
	queue := make(chan *settlement, len(sends))
	for _, s := range sends {
		queue <- s
	}
	close(queue)
	startGate := make(chan struct{})
	var wg sync.WaitGroup
	for range crashWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-startGate
			for s := range queue {
				started.Add(1)
				cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				resp, err := clients.desks[s.desk].SettleRefund(cctx, proto.Clone(s.req).(*deskv1.SettleRefundRequest))
				cancel()
				if err == nil {
					if !killed.Load() {
						okBeforeKill.Add(1)
					}
					s.mu.Lock()
					if s.before != nil && !proto.Equal(s.before, resp.GetPayout()) {
						t.Errorf("form %d desk %d: two different OK answers to one request_id:\n%s\n%s", s.form, s.desk,
							prototext.Format(s.before), prototext.Format(resp.GetPayout()))
					}
					if s.before == nil {
						s.before = resp.GetPayout()
					}
					s.mu.Unlock()
				} else {
					st := status.Convert(err)
					reason := ""
					if info := errorInfo(st); info != nil {
						reason = info.GetReason()
					}
					pre := !killed.Load()
					tallyMu.Lock()
					when := "after"
					if pre {
						when = "before"
					}
					tally[strings.TrimSpace(fmt.Sprintf("%s %v %s", when, st.Code(), reason))]++
					tallyMu.Unlock()
					// An answer that came before the kill is a real one: the only refusal is
					// the form having been paid by the other desk.
					if pre && (st.Code() != codes.FailedPrecondition || reason != "FORM_ALREADY_PAID") {
						t.Errorf("form %d desk %d before the kill: %v %s %s", s.form, s.desk, st.Code(), reason, st.Message())
					}
				}
				if completed.Add(1) == killAfter {
					killed.Store(true)
					kill()
				}
			}
		}()
	}
	burstStart := time.Now()
	close(startGate)
	wg.Wait()
	kill() // a no-op: the killAfter-th return has killed it already
	<-srv.done
	for i := range travellers {
		a, b := reqs[2*i], reqs[2*i+1]
		if a.before != nil && b.before != nil {
			t.Errorf("form %d: both desks got an OK answer in the burst (payouts %s and %s)", i,
				a.before.GetPayoutId(), b.before.GetPayoutId())
		}
	}
	answered := 0
	for _, r := range reqs {
		if r.before != nil {
			answered++
		}
	}
	var committed int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM payouts`).Scan(&committed); err != nil {
		t.Fatal(err)
	}
	t.Logf("burst: %d sends of %d requests by %d workers; at the kill, %v into the burst, %d sends had returned and %d were in flight",
		len(sends), len(reqs), crashWorkers, killedAt.Sub(burstStart).Round(time.Millisecond), completedAtKill, inFlightAtKill)
	t.Logf("%d OK answers before the kill; %d distinct requests answered OK in the burst; %d payouts committed (%d without the client seeing the answer)",
		okBeforeKill.Load(), answered, committed, committed-int64(answered))
	t.Logf("errors in the burst, before or after the kill: %v", tally)

	// Restart with the same flags and retry every request with its request_id.
	clients.close()
	srv = startChild(t, env, logPath, bin, serveArgs...)
	clients = dialAll(t, addr, certDir)
	defer clients.close()
	waitServing(t, ctx, clients.health)

	final := make([]*deskv1.Payout, len(reqs))
	paidBy := make([]string, len(reqs)) // FORM_ALREADY_PAID: the payout named
	retries := 0
	for k, r := range reqs {
		for attempt := 1; ; attempt++ {
			if attempt > 50 {
				t.Fatalf("form %d desk %d: no final answer after 50 attempts", r.form, r.desk)
			}
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			// WaitForReady: right after the restart a client connection may still be in
			// its reconnect back-off; a retrying POS waits for it rather than failing fast.
			resp, err := clients.desks[r.desk].SettleRefund(cctx, proto.Clone(r.req).(*deskv1.SettleRefundRequest), grpc.WaitForReady(true))
			cancel()
			retries++
			if err == nil {
				final[k] = resp.GetPayout()
				break
			}
			st := status.Convert(err)
			if st.Code() == codes.FailedPrecondition {
				info := errorInfo(st)
				if info.GetReason() != "FORM_ALREADY_PAID" {
					t.Fatalf("form %d desk %d: FAILED_PRECONDITION %s: %s", r.form, r.desk, info.GetReason(), st.Message())
				}
				paidBy[k] = info.GetMetadata()["payout_id"]
				break
			}
			if st.Code() != codes.Unavailable && st.Code() != codes.Aborted && st.Code() != codes.DeadlineExceeded {
				t.Fatalf("form %d desk %d: %v %s", r.form, r.desk, st.Code(), st.Message())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("after the restart: %d retry calls for %d requests", retries, len(reqs))

	winners := map[string]bool{}
	for i, tr := range travellers {
		a, b := 2*i, 2*i+1
		var win, lose int
		switch {
		case final[a] != nil && final[b] == nil:
			win, lose = a, b
		case final[b] != nil && final[a] == nil:
			win, lose = b, a
		default:
			t.Errorf("form %d: desk answers OK=%v/%v, want exactly one OK", i, final[a] != nil, final[b] != nil)
			continue
		}
		p := final[win]
		winners[p.GetPayoutId()] = true
		if len(p.GetForms()) != 1 || p.GetForms()[0].GetFormNumber() != tr.number {
			t.Errorf("form %d: the payout covers %v", i, p.GetForms())
		}
		if paidBy[lose] != p.GetPayoutId() {
			t.Errorf("form %d: FORM_ALREADY_PAID names payout %q, the winner is %s", i, paidBy[lose], p.GetPayoutId())
		}
		for _, k := range []int{a, b} {
			if r := reqs[k]; r.before != nil && !proto.Equal(r.before, final[k]) {
				t.Errorf("form %d desk %d: the retry after the crash answers\n%s\nnot the first answer\n%s", i, r.desk,
					prototext.Format(final[k]), prototext.Format(r.before))
			}
		}
	}

	// The database: one payout per form, every form REFUNDED by the payout that won.
	var forms, refunded, payouts, payoutForms, paidTxns, twice, mismatched int
	if err := pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM forms),
		(SELECT count(*) FROM forms WHERE state = 'REFUNDED'),
		(SELECT count(*) FROM payouts),
		(SELECT count(*) FROM payout_forms),
		(SELECT count(*) FROM journal_txns WHERE kind = 'REFUND_PAID'),
		(SELECT count(*) FROM (SELECT form_id FROM payout_forms GROUP BY form_id HAVING count(*) > 1) x),
		(SELECT count(*) FROM forms f LEFT JOIN payout_forms pf ON pf.form_id = f.id WHERE pf.payout_id IS DISTINCT FROM f.payout_id)`).
		Scan(&forms, &refunded, &payouts, &payoutForms, &paidTxns, &twice, &mismatched); err != nil {
		t.Fatal(err)
	}
	if forms != crashForms || refunded != crashForms || payouts != crashForms || payoutForms != crashForms ||
		paidTxns != crashForms || twice != 0 || mismatched != 0 {
		t.Errorf("forms %d, REFUNDED %d, payouts %d, payout_forms %d, REFUND_PAID txns %d, forms paid twice %d, "+
			"forms whose payout_id is not their payout row %d; want %d×5, 0, 0",
			forms, refunded, payouts, payoutForms, paidTxns, twice, mismatched, crashForms)
	}
	rows, err := pool.Query(ctx, `SELECT id::text FROM payouts`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		if !winners[id] {
			t.Errorf("payout %s is in the database but no request answers with it", id)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	found, err := invariants.Check(ctx, pool)
	if err != nil {
		t.Fatalf("invariants: %v", err)
	}
	for _, v := range found {
		t.Errorf("invariant %s: %s", v.Invariant, v.Detail)
	}
	if t.Failed() {
		if b, err := os.ReadFile(logPath); err == nil {
			t.Logf("server log:\n%s", b)
		}
	}
}

// goTool returns the go command that runs this test.
func goTool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no go command: %v", err)
	}
	return p
}

// runBinary runs a taxrefund command to completion and fails the test if it fails.
// journalEnv points the journal key, its public keys and the checkpoint file into dir,
// as the environment of every command that reads them.
func journalEnv(dir string) []string {
	return []string{"TAXREFUND_JOURNAL_KEY=" + filepath.Join(dir, "journal.key"),
		"TAXREFUND_JOURNAL_PUBKEYS=" + filepath.Join(dir, "journal.pub"),
		"TAXREFUND_CHECKPOINTS=" + filepath.Join(dir, "checkpoints.log")}
}

func runBinary(t *testing.T, env []string, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("taxrefund %v: %v\n%s", args, err, out)
	}
}

// freeAddr returns a loopback address with a port nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	if err := lis.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// child is a running `taxrefund serve`.
type child struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

// startChild starts the binary, appending its output to logPath; the test's cleanup
// kills it if it still runs.
func startChild(t *testing.T, env []string, logPath, bin string, args ...string) *child {
	t.Helper()
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		t.Fatalf("start taxrefund serve: %v", err)
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		_ = logFile.Close()
		close(c.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // an error only says it has exited already
		<-c.done
	})
	return c
}

// crashClients are the parties' connections to the child.
type crashClients struct {
	conns   []*grpc.ClientConn
	store   storev1.StoreServiceClient
	customs deskv1.DeskServiceClient
	desks   [2]deskv1.DeskServiceClient
	health  healthpb.HealthClient
}

func dialAll(t *testing.T, addr, certDir string) *crashClients {
	t.Helper()
	c := &crashClients{}
	dial := func(name string) *grpc.ClientConn {
		cfg, err := pki.ClientTLSConfig(filepath.Join(certDir, pki.CACertFile),
			filepath.Join(certDir, name+".pem"), filepath.Join(certDir, name+"-key.pem"), "localhost")
		if err != nil {
			t.Fatal(err)
		}
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)),
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           backoff.Config{BaseDelay: 20 * time.Millisecond, Multiplier: 1.5, Jitter: 0.2, MaxDelay: 500 * time.Millisecond},
				MinConnectTimeout: 2 * time.Second,
			}))
		if err != nil {
			t.Fatal(err)
		}
		c.conns = append(c.conns, conn)
		return conn
	}
	c.store = storev1.NewStoreServiceClient(dial("store-S-JFB-1"))
	c.customs = deskv1.NewDeskServiceClient(dial("customs-CKG"))
	c.desks[0] = deskv1.NewDeskServiceClient(dial("desk-CKG-01"))
	c.desks[1] = deskv1.NewDeskServiceClient(dial("desk-CKG-02"))
	c.health = healthpb.NewHealthClient(dial("authority"))
	return c
}

func (c *crashClients) close() {
	for _, conn := range c.conns {
		_ = conn.Close()
	}
}

// waitServing waits until the server's health service says SERVING.
func waitServing(t *testing.T, ctx context.Context, h healthpb.HealthClient) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		resp, err := h.Check(cctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not SERVING after 30s: %v %v", resp.GetStatus(), err)
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatal("test deadline")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// errorInfo returns the ErrorInfo detail of st, or nil.
func errorInfo(st *status.Status) *errdetails.ErrorInfo {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info
		}
	}
	return nil
}
