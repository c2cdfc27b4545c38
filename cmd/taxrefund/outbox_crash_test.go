package main_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	authorityv1 "taxrefund/api/taxrefund/authority/v1"
	deskv1 "taxrefund/api/taxrefund/desk/v1"
	formv1 "taxrefund/api/taxrefund/form/v1"
	storev1 "taxrefund/api/taxrefund/store/v1"
	"taxrefund/internal/db"
	"taxrefund/internal/dbtest"
	"taxrefund/internal/invariants"
	"taxrefund/internal/pki"
	"taxrefund/internal/refund"
)

// outboxForms is how many immediate refunds the outbox crash test completes.
const outboxForms = 40

// TestOutboxSurvivesKill runs the real binary with the dispatcher delivering every 50 ms
// to the development acquirer, completes outboxForms immediate refunds (prepaid at IFS-RP,
// verified at TFU the same day), so that as many RELEASE instructions are queued, and
// SIGKILLs the server while the dispatcher is delivering: the test holds the row locks of
// the instructions it has claimed, so that it is stopped between delivering one and
// recording it, and kills it there. After a restart the dispatcher delivers what is left
// once the lease of the dead one runs out. Every instruction must have reached the
// acquirer, under its key, exactly once in effect (one row per key; the instruction
// delivered but not recorded is delivered again), and the invariants must hold.
func TestOutboxSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := t.TempDir()

	bin := filepath.Join(dir, "taxrefund")
	build := exec.Command(goTool(t), "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	url := dbtest.NewURL(t)
	pool, err := db.Open(ctx, url, 6)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	dbtest.Registry(t, pool)

	env := append(append(os.Environ(), "DATABASE_URL="+url), journalEnv(dir)...)
	certDir, piiKeys := filepath.Join(dir, "certs"), filepath.Join(dir, "pii.keys")
	runBinary(t, env, bin, "certs", "-cert-dir", certDir, "-pii-keys", piiKeys)
	runBinary(t, env, bin, "keys")
	addr := freeAddr(t)
	serveArgs := []string{"serve", "-addr", addr, "-cert-dir", certDir, "-pii-keys", piiKeys,
		"-expiry-interval", "0", "-dispatch-interval", "50ms"}
	logPath := filepath.Join(dir, "serve.log")
	srv := startChild(t, env, logPath, bin, serveArgs...)
	cl := outboxDial(t, addr, certDir)
	waitServing(t, ctx, cl.health)
	defer func() {
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				t.Logf("server log:\n%s", b)
			}
		}
	}()

	// Issue and prepay one form per traveller.
	today := refund.LocalDate(time.Now())
	type prepaid struct {
		doc    *formv1.Document
		number string
	}
	all := make([]prepaid, outboxForms)
	for i := range all {
		doc := &formv1.Document{Type: formv1.DocumentType_DOCUMENT_TYPE_PASSPORT, Number: fmt.Sprintf("OB%07d", 2000000+i), IssuingCountry: "JP"}
		inv := fmt.Sprintf("OUTBOX-%03d", i)
		resp, err := cl.store.IssueForm(ctx, &storev1.IssueFormRequest{
			RequestId: uuid.NewString(),
			Traveller: &storev1.Traveller{Document: doc, DocumentExpiryDate: refund.FormatDate(refund.AddDays(today, 3650)),
				Nationality: "JP", LastEntryDate: refund.FormatDate(refund.AddDays(today, -5))},
			Invoices: []*formv1.Invoice{{Number: inv, Date: refund.FormatDate(today)}},
			Lines: []*storev1.LineInput{{Description: "Shu brocade", Category: formv1.GoodsCategory_GOODS_CATEGORY_GENERAL,
				VatRate: "0.13", Quantity: 1, Amount: fmt.Sprintf("%d.00", 1000+10*i), InvoiceNumber: inv}},
		})
		if err != nil {
			t.Fatalf("IssueForm %d: %v", i, err)
		}
		number := resp.GetForm().GetNumber()
		if _, err := cl.point.PayImmediateRefund(ctx, &deskv1.PayImmediateRefundRequest{
			RequestId: uuid.NewString(), FormNumber: number, PresentedDocument: doc, AgreementReference: "AGR-" + inv,
			PreAuthorization: &deskv1.PreAuthorization{AcquirerToken: fmt.Sprintf("tok_outbox_%03d", i), CardLast4: "1881",
				CardExpiry: refund.AddDays(today, 400).Format("2006-01"), AuthorizedAmount: "500.00"},
			DeparturePort: "TFU",
		}); err != nil {
			t.Fatalf("PayImmediateRefund %d: %v", i, err)
		}
		all[i] = prepaid{doc: doc, number: number}
	}

	// Hold back the instructions as the verifications queue them (row locks make the
	// dispatcher's claim skip them), so that the dispatcher then claims a large batch.
	hold, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stopHold := make(chan struct{})
	held := make(chan int, 1)
	go func() {
		locked := map[int64]bool{}
		for {
			rows, err := hold.Query(ctx, `SELECT id FROM acquirer_outbox WHERE delivered_at IS NULL AND attempts = 0 FOR UPDATE SKIP LOCKED`)
			if err == nil {
				ids, cerr := pgx.CollectRows(rows, pgx.RowTo[int64])
				err = cerr
				for _, id := range ids {
					locked[id] = true
				}
			}
			if err != nil {
				t.Errorf("hold instructions: %v", err)
				held <- len(locked)
				return
			}
			select {
			case <-stopHold:
				held <- len(locked)
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	nHeld := -1
	releaseHold := func(commit bool) {
		if nHeld >= 0 {
			return
		}
		close(stopHold)
		nHeld = <-held
		if commit {
			if err := hold.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer func() {
		releaseHold(false)
		_ = hold.Rollback(context.Background()) // a no-op after the commit; never leave the pool waiting on it
	}()

	// Verify every form at TFU on the same day: each completes and queues a RELEASE. A
	// call that fails with Internal ("retry with the same request_id") is retried so; see
	// TestConcurrentFirstCompletions in internal/immediate for why the first concurrent
	// completions of an agency fail.
	work := make(chan prepaid)
	var wg sync.WaitGroup
	var internalRetries atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				req := &deskv1.VerifyExportRequest{
					RequestId: uuid.NewString(), FormNumber: p.number, PresentedDocument: p.doc,
					Lines: []*deskv1.LineConfirmation{{LineNo: 1, ConfirmedQuantity: 1}},
				}
				for attempt := 1; ; attempt++ {
					resp, err := cl.customs.VerifyExport(ctx, req)
					if status.Code(err) == codes.Internal && attempt < 5 {
						internalRetries.Add(1)
						time.Sleep(10 * time.Millisecond)
						continue
					}
					if err != nil {
						t.Errorf("VerifyExport %s: %v", p.number, err)
					} else if st := resp.GetForm().GetState(); st != formv1.FormState_FORM_STATE_REFUNDED {
						t.Errorf("form %s verified at TFU in time is %v, want REFUNDED", p.number, st)
					}
					break
				}
			}
		}()
	}
	for _, p := range all {
		work <- p
	}
	close(work)
	wg.Wait()
	t.Logf("verifications: %d Internal answers retried with the same request_id", internalRetries.Load())
	if t.Failed() {
		t.FailNow()
	}
	// One last pass picks up the rows committed last, then release them all at once.
	time.Sleep(20 * time.Millisecond)
	releaseHold(true)

	// Catch the dispatcher working through its claim: lock the instructions it has
	// claimed and not yet recorded as delivered, so that it blocks recording the next one
	// it delivers.
	var block pgx.Tx
	var blockPID int32
	var blockedIDs []int64
	deadline := time.Now().Add(15 * time.Second)
	for block == nil {
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := tx.Query(ctx, `SELECT id FROM acquirer_outbox WHERE delivered_at IS NULL AND attempts > 0 ORDER BY id FOR UPDATE`)
		if err != nil {
			t.Fatal(err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) > 0 {
			block, blockedIDs = tx, ids
			defer func() { _ = block.Rollback(context.Background()) }()
			if err := tx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&blockPID); err != nil {
				t.Fatal(err)
			}
			break
		}
		_ = tx.Rollback(ctx)
		if time.Now().After(deadline) {
			t.Fatalf("the dispatcher was never caught between claim and delivery (held %d instructions)", nHeld)
		}
		time.Sleep(200 * time.Microsecond)
	}
	// Wait until the dispatcher has delivered one of them and waits to record it.
	var undeliveredReceived, waiting int
	for deadline := time.Now().Add(10 * time.Second); ; {
		if err := pool.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM dev_acquirer_received d JOIN acquirer_outbox o USING (idem_key) WHERE o.delivered_at IS NULL),
			(SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid)))`, blockPID).Scan(&undeliveredReceived, &waiting); err != nil {
			t.Fatal(err)
		}
		if undeliveredReceived > 0 && waiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dispatcher did not block recording a delivery (received-not-recorded %d, waiting %d)", undeliveredReceived, waiting)
		}
		time.Sleep(time.Millisecond)
	}
	var receivedAtKill, outboxRows, deliveredAtKill int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM dev_acquirer_received), (SELECT count(*) FROM acquirer_outbox),
		(SELECT count(*) FROM acquirer_outbox WHERE delivered_at IS NOT NULL)`).Scan(&receivedAtKill, &outboxRows, &deliveredAtKill); err != nil {
		t.Fatal(err)
	}
	if err := srv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL: %v", err)
	}
	<-srv.done
	// The dead server's statement waiting on the lock must not run when the lock goes:
	// end its session, as the crash would have, then release.
	var terminated int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))) x`, blockPID).
		Scan(&terminated); err != nil {
		t.Fatal(err)
	}
	if err := block.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("held back %d of %d instructions; killed with %d received by the acquirer, %d recorded delivered, %d claimed and not recorded "+
		"(%d delivered but not recorded); %d waiting session(s) ended", nHeld, outboxRows, receivedAtKill, deliveredAtKill,
		len(blockedIDs), undeliveredReceived, terminated)
	if outboxRows != outboxForms || receivedAtKill == 0 || receivedAtKill >= outboxForms {
		t.Errorf("at the kill: %d instructions, %d received; want %d instructions, some but not all received", outboxRows, receivedAtKill, outboxForms)
	}

	// Restart; the dead dispatcher's claims are leased for 30 s, then delivered again.
	cl.close()
	restart := time.Now()
	srv = startChild(t, env, logPath, bin, serveArgs...)
	cl = outboxDial(t, addr, certDir)
	defer cl.close()
	waitServing(t, ctx, cl.health)
	list, err := cl.authority.ListAcquirerInstructions(ctx, &authorityv1.ListAcquirerInstructionsRequest{})
	if err != nil {
		t.Fatalf("ListAcquirerInstructions: %v", err)
	}
	t.Logf("after the restart, officials see %d undelivered instructions", len(list.GetInstructions()))
	for _, in := range list.GetInstructions() {
		if in.GetKind() != "RELEASE" || in.GetStuck() {
			t.Errorf("listed instruction %v", in)
		}
	}
	for {
		var left int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM acquirer_outbox WHERE delivered_at IS NULL`).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			break
		}
		if time.Since(restart) > 90*time.Second {
			t.Fatalf("%d instructions still undelivered 90 s after the restart", left)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("every instruction delivered %v after the restart", time.Since(restart).Round(100*time.Millisecond))

	outboxCheckDelivered(t, ctx, pool)
}

// outboxCheckDelivered checks that every RELEASE instruction of the completed
// prepayments was received once per key, as queued, and that the invariants hold.
func outboxCheckDelivered(t *testing.T, ctx context.Context, pool *pgxpool.Pool) {
	t.Helper()
	var prepayments, completed, instructions, releases, perPrepayment, received, missing, extra, mismatched, redelivered, maxDeliveries int
	if err := pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM prepayments),
		(SELECT count(*) FROM prepayments WHERE state = 'COMPLETED'),
		(SELECT count(*) FROM acquirer_outbox),
		(SELECT count(*) FROM acquirer_outbox WHERE kind = 'RELEASE'),
		(SELECT count(DISTINCT prepayment_id) FROM acquirer_outbox),
		(SELECT count(*) FROM dev_acquirer_received),
		(SELECT count(*) FROM acquirer_outbox o WHERE NOT EXISTS (SELECT 1 FROM dev_acquirer_received d WHERE d.idem_key = o.idem_key)),
		(SELECT count(*) FROM dev_acquirer_received d WHERE NOT EXISTS (SELECT 1 FROM acquirer_outbox o WHERE o.idem_key = d.idem_key)),
		(SELECT count(*) FROM acquirer_outbox o JOIN dev_acquirer_received d USING (idem_key)
		  WHERE d.kind <> o.kind OR d.card_token <> o.card_token OR d.amount <> o.amount),
		(SELECT count(*) FROM dev_acquirer_received WHERE deliveries > 1),
		(SELECT coalesce(max(deliveries), 0) FROM dev_acquirer_received)`).
		Scan(&prepayments, &completed, &instructions, &releases, &perPrepayment, &received, &missing, &extra, &mismatched, &redelivered, &maxDeliveries); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d instructions, %d keys received by the acquirer, %d redelivered (max deliveries of one key %d)",
		instructions, received, redelivered, maxDeliveries)
	if prepayments != outboxForms || completed != outboxForms || instructions != outboxForms || releases != outboxForms ||
		perPrepayment != outboxForms || received != outboxForms || missing != 0 || extra != 0 || mismatched != 0 {
		t.Errorf("prepayments %d (COMPLETED %d), instructions %d (RELEASE %d, prepayments with one %d), received keys %d, "+
			"missing %d, unknown %d, differing %d; want %d×7, 0, 0, 0",
			prepayments, completed, instructions, releases, perPrepayment, received, missing, extra, mismatched, outboxForms)
	}
	if redelivered < 1 {
		t.Errorf("no instruction was delivered twice: the kill did not land between a delivery and its record")
	}
	var payouts, prepaymentPayouts int
	if err := pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE method = 'PREPAYMENT') FROM payouts`).Scan(&payouts, &prepaymentPayouts); err != nil {
		t.Fatal(err)
	}
	if payouts != outboxForms || prepaymentPayouts != outboxForms {
		t.Errorf("%d payouts (%d PREPAYMENT), want %d PREPAYMENT payouts", payouts, prepaymentPayouts, outboxForms)
	}
	found, err := invariants.Check(ctx, pool)
	if err != nil {
		t.Fatalf("invariants: %v", err)
	}
	for _, v := range found {
		t.Errorf("invariant %s: %s", v.Invariant, v.Detail)
	}
}

// outboxClients are the parties of the outbox crash test.
type outboxClients struct {
	conns     []*grpc.ClientConn
	store     storev1.StoreServiceClient
	point     deskv1.DeskServiceClient
	customs   deskv1.DeskServiceClient
	authority authorityv1.AuthorityServiceClient
	health    healthpb.HealthClient
}

func outboxDial(t *testing.T, addr, certDir string) *outboxClients {
	t.Helper()
	c := &outboxClients{}
	dial := func(name string) *grpc.ClientConn {
		cfg, err := pki.ClientTLSConfig(filepath.Join(certDir, pki.CACertFile),
			filepath.Join(certDir, name+".pem"), filepath.Join(certDir, name+"-key.pem"), "localhost")
		if err != nil {
			t.Fatal(err)
		}
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			t.Fatal(err)
		}
		c.conns = append(c.conns, conn)
		return conn
	}
	c.store = storev1.NewStoreServiceClient(dial("store-S-CXL-1"))
	c.point = deskv1.NewDeskServiceClient(dial("desk-IFS-RP"))
	c.customs = deskv1.NewDeskServiceClient(dial("customs-TFU"))
	auth := dial("authority")
	c.authority = authorityv1.NewAuthorityServiceClient(auth)
	c.health = healthpb.NewHealthClient(auth)
	return c
}

func (c *outboxClients) close() {
	for _, conn := range c.conns {
		_ = conn.Close()
	}
}
