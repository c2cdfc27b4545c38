package hacluster_test

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	authorityv1 "taxrefund/api/taxrefund/authority/v1"
	"taxrefund/internal/dial"
	"taxrefund/internal/hacluster"
	"taxrefund/internal/pki"
)

// stuckSQL counts what a write cut off half-way would leave, whatever the state machine
// allows at rest: each transition is one transaction, so none may be seen on the primary
// after a failover.
const stuckSQL = `SELECT
	-- a form marked paid without the payout row that pays it
	(SELECT count(*) FROM forms f WHERE f.payout_id IS NOT NULL
	    AND NOT EXISTS (SELECT 1 FROM payout_forms pf WHERE pf.form_id = f.id AND pf.payout_id = f.payout_id)),
	-- a payout that pays no form, or a payout row whose form is not marked paid by it
	(SELECT count(*) FROM payouts p WHERE NOT EXISTS (SELECT 1 FROM payout_forms pf WHERE pf.payout_id = p.id))
	  + (SELECT count(*) FROM payout_forms pf JOIN forms f ON f.id = pf.form_id WHERE f.payout_id IS DISTINCT FROM pf.payout_id),
	-- a prepayment resolved without its journal transaction, or handed back or captured
	-- without the instruction to the acquirer that releases or captures the card
	(SELECT count(*) FROM prepayments p WHERE p.state <> 'PREPAID' AND (p.resolved_txn_id IS NULL OR p.resolved_at IS NULL))
	  + (SELECT count(*) FROM prepayments p WHERE p.state IN ('RETURNED', 'CAPTURED')
	    AND NOT EXISTS (SELECT 1 FROM acquirer_outbox o WHERE o.prepayment_id = p.id
	      AND o.kind = CASE p.state WHEN 'RETURNED' THEN 'RELEASE' ELSE 'CAPTURE' END)),
	-- an acquirer instruction marked delivered that the (development) acquirer never got
	(SELECT count(*) FROM acquirer_outbox o WHERE o.delivered_at IS NOT NULL
	    AND NOT EXISTS (SELECT 1 FROM dev_acquirer_received r WHERE r.idem_key = o.idem_key))`

// checkSettled asserts, on the primary, that nothing is stuck in a transitional state
// after a fault: no form, payout or prepayment half-way (stuckSQL), and the outbox of
// acquirer instructions drains: every instruction queued before the check is delivered
// (by whichever server's dispatcher, every 2 s) within a minute.
func checkSettled(t *haT, ctx context.Context, c *hacluster.Cluster, when string) {
	t.Helper()
	var formsPaid, payouts, prepayments, outbox int
	var since time.Time
	err := withPrimary(ctx, c, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT now(), s.* FROM (`+stuckSQL+`) s`).Scan(&since, &formsPaid, &payouts, &prepayments, &outbox)
	})
	if err != nil {
		t.Fatalf("%s: stuck-state check: %v", when, err)
	}
	if formsPaid+payouts+prepayments+outbox > 0 {
		t.Errorf("%s: stuck half-way: %d forms marked paid without their payout row, %d payouts without their forms, %d prepayments resolved without their transaction or acquirer instruction, %d acquirer instructions marked delivered that the acquirer never got",
			when, formsPaid, payouts, prepayments, outbox)
	}
	var pending, queued int
	deadline := time.Now().Add(time.Minute)
	for {
		err := withPrimary(ctx, c, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, `SELECT count(*) FILTER (WHERE delivered_at IS NULL), count(*) FROM acquirer_outbox WHERE created_at <= $1`, since).
				Scan(&pending, &queued)
		})
		if err != nil {
			t.Fatalf("%s: outbox: %v", when, err)
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: %d of %d acquirer instructions queued before the check still undelivered a minute later", when, pending, queued)
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("%s: nothing stuck half-way; %d acquirer instructions, all delivered", when, queued)
}

// checkLaggingReads: the servers run with -read-database-url on the cluster's standbys
// (prefer-standby). Through each server, the monthly report comes from a replica and says
// so, with its lag; with the load stopped the replica catches up with the primary, so the
// store's count of forms issued this month reaches the primary's (and never passes it).
// Reconcile and the CSV export say where they read too.
func checkLaggingReads(t *haT, ctx context.Context, c *hacluster.Cluster, l *load) {
	t.Helper()
	month := time.Now().In(time.FixedZone("Asia/Shanghai", 8*3600)).Format("2006-01")
	var onPrimary int64
	err := withPrimary(ctx, c, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*) FROM forms WHERE store_code = $1
			AND (issued_at AT TIME ZONE 'Asia/Shanghai')::date >= ($2 || '-01')::date
			AND (issued_at AT TIME ZONE 'Asia/Shanghai')::date < ($2 || '-01')::date + interval '1 month'`, loadStore, month).Scan(&onPrimary)
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := c.CertDir()
	tlsConf, err := pki.ClientTLSConfig(filepath.Join(dir, pki.CACertFile), filepath.Join(dir, "authority.pem"), filepath.Join(dir, "authority-key.pem"), "localhost")
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range strings.Split(c.ServerAddrs(), ",") {
		cc, err := dial.NewClient(addr, tlsConf)
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		a := authorityv1.NewAuthorityServiceClient(cc)
		var issued int64
		var src *authorityv1.ReadSource
		deadline := time.Now().Add(30 * time.Second)
		for {
			var r *authorityv1.MonthlyReportResponse
			if !l.call(ctx, "MonthlyReport", func(ctx context.Context) (err error) {
				r, err = a.MonthlyReport(ctx, &authorityv1.MonthlyReportRequest{Month: month})
				return err
			}) {
				t.Fatalf("MonthlyReport through %s failed", addr)
			}
			src, issued = r.GetReadSource(), 0
			for _, row := range r.GetRows() {
				if row.GetDimension() == "store" && row.GetKey() == loadStore {
					issued = row.GetFormsIssued()
				}
			}
			if src == nil {
				t.Fatalf("MonthlyReport through %s: no read_source (-read-database-url prefer-standby)", addr)
			}
			if lag := src.GetLag().AsDuration(); lag < 0 || src.GetAsOf().AsTime().After(time.Now().Add(time.Second)) {
				t.Errorf("MonthlyReport through %s: lag %v, as of %v", addr, lag, src.GetAsOf().AsTime())
			}
			if issued > onPrimary {
				t.Fatalf("MonthlyReport through %s: %d forms of %s issued in %s on the replica, more than the primary's %d", addr, issued, loadStore, month, onPrimary)
			}
			// A read pool that reached the primary during a fault says so (replica
			// false) and looks for a standby again.
			if (issued == onPrimary && src.GetReplica()) || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if !src.GetReplica() {
			t.Errorf("MonthlyReport through %s: read_source %v 30 s after the load stopped, want a replica (-read-database-url prefer-standby)", addr, src)
		}
		if issued != onPrimary {
			t.Errorf("MonthlyReport through %s: the replica shows %d forms of %s issued in %s, the primary %d, 30 s after the load stopped", addr, issued, loadStore, month, onPrimary)
		}
		t.Logf("MonthlyReport through %s: read from a replica, lag %v, %d forms of %s (the primary's count)", addr, src.GetLag().AsDuration(), issued, loadStore)
	}

	cc, err := dial.NewClient(c.ServerAddrs(), tlsConf)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	a := authorityv1.NewAuthorityServiceClient(cc)
	rec, err := a.Reconcile(ctx, &authorityv1.ReconcileRequest{Month: month})
	if err != nil {
		t.Fatal(err)
	}
	if !rec.GetReadSource().GetReplica() {
		t.Errorf("Reconcile: read_source %v, want a replica", rec.GetReadSource())
	}
	stream, err := a.ExportReport(ctx, &authorityv1.ExportReportRequest{Month: month, Format: authorityv1.ExportFormat_EXPORT_FORMAT_CSV})
	if err != nil {
		t.Fatal(err)
	}
	var header *authorityv1.ExportHeader
	var csv []byte
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h := m.GetHeader(); h != nil {
			header = h
		}
		csv = append(csv, m.GetChunk()...)
	}
	if !header.GetReadSource().GetReplica() || !strings.Contains(string(csv), "read from replica, lag ") {
		t.Errorf("CSV export: read_source %v; its last line %q; want a replica, and the file saying so", header.GetReadSource(),
			csv[strings.LastIndexByte(strings.TrimRight(string(csv), "\n"), '\n')+1:])
	}
}
