package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"

	"taxrefund/internal/acquirer"
	"taxrefund/internal/anchor"
	"taxrefund/internal/console"
	"taxrefund/internal/db"
	"taxrefund/internal/demo"
	"taxrefund/internal/metrics"
	"taxrefund/internal/pdf"
	"taxrefund/internal/pii"
	"taxrefund/internal/pki"
	"taxrefund/internal/printing"
	"taxrefund/internal/schedule"
	"taxrefund/internal/seal"
	"taxrefund/internal/server"
	"taxrefund/internal/store"
	"taxrefund/internal/tracing"
	"taxrefund/internal/traveller"
)

func migrate(ctx context.Context, cfg config, log *slog.Logger) error {
	pool, err := db.Open(ctx, cfg.databaseURL, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	return db.Migrate(ctx, pool, log)
}

func seed(ctx context.Context, cfg config, log *slog.Logger) error {
	pool, err := db.Open(ctx, cfg.databaseURL, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	if cfg.riskRules {
		if err := db.SeedRisk(ctx, pool); err != nil {
			return err
		}
		log.Info("seeded the risk rules' suggested thresholds")
		if !cfg.demoForms {
			return nil
		}
	}
	if !cfg.demoForms {
		if err := db.Seed(ctx, pool); err != nil {
			return err
		}
		log.Info("seeded demo data")
		return nil
	}
	keys, err := pii.LoadKeyring(cfg.piiKeys)
	if err != nil {
		return fmt.Errorf("PII keys (run `taxrefund certs` first): %w", err)
	}
	numbers, err := demo.Forms(ctx, pool, keys, log, time.Now())
	if err != nil {
		return err
	}
	log.Info("demo forms ready (issued, verified and paid last month and this month)", "forms", len(numbers))
	return nil
}

func expireOnce(ctx context.Context, cfg config, log *slog.Logger, stdout io.Writer) error {
	a, err := newApp(ctx, cfg, log, []db.Service{db.JobsService})
	if err != nil {
		return err
	}
	defer a.close()
	n, err := a.stacks[db.JobsService].forms.Expire(db.WithParty(ctx, "system", "expire"), "taxrefund expire")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "expired %d forms\n", n)
	return nil
}

func serve(ctx context.Context, cfg config, log *slog.Logger) error {
	tp, err := tracing.New(ctx, cfg.getenv, "taxrefund")
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = tp.Shutdown(sctx)
	}()
	if tracing.Exporting(cfg.getenv) {
		log.Info("exporting traces", "exporter", cfg.getenv("OTEL_TRACES_EXPORTER"), "endpoint", cfg.getenv("OTEL_EXPORTER_OTLP_ENDPOINT"))
	}
	a, err := newApp(ctx, cfg, log, cfg.services, db.WithTracer(otelpgx.NewTracer(otelpgx.WithTracerProvider(tp))), db.WithTuning(cfg.tuning))
	if err != nil {
		return err
	}
	defer a.close()
	anyPool := a.pools.Any()
	// Dead rows and stale statistics are autovacuum's to clear; without it the forms' and
	// ledger's plans and tables degrade as they grow (BENCH.md, "Autovacuum").
	var autovacuum string
	if err := anyPool.QueryRow(ctx, `SELECT current_setting('autovacuum')`).Scan(&autovacuum); err == nil && autovacuum != "on" {
		log.Warn("autovacuum is off on this PostgreSQL: turn it on, or vacuum and analyze on a schedule (OPERATIONS.md)")
	}
	var jobs *pgxpool.Pool
	if a.has(db.JobsService) {
		jobs = a.stacks[db.JobsService].pool
	}
	// Checkpoints (internal/anchor): the chain heads signed outside the database.
	anch, err := newAnchor(cfg, a, log)
	if err != nil {
		return err
	}
	tlsConf, err := pki.ServerTLSConfig(filepath.Join(cfg.certDir, pki.CACertFile),
		filepath.Join(cfg.certDir, "server.pem"), filepath.Join(cfg.certDir, "server-key.pem"))
	if err != nil {
		return fmt.Errorf("TLS (run `taxrefund certs` for development certificates): %w", err)
	}
	reg := server.NewRegistry(anyPool, cfg.registryTTL)
	limits := server.DefaultLimits()
	limits.Deadline = cfg.callTimeout
	limits.MaxInFlight, limits.PartyInFlight, limits.PartyWait = cfg.maxInFlight, cfg.partyInFlight, cfg.partyWait
	// The fair share and the busy mark follow the pool: a quarter of it per caller, and a
	// pool's worth in flight before a caller may no longer borrow beyond its share.
	limits = limits.ForPool(cfg.maxConns)
	if cfg.partyShare > 0 {
		limits.PartyShare = cfg.partyShare
	}
	met := metrics.NewFor(a.pools.List(), jobs, 0)
	services := a.grpcServices()
	if st := a.stacks[db.StoreService]; st != nil && cfg.chromium != "" {
		// The browser starts at the first print, not here: a server that never prints
		// never runs one.
		renderer := pdf.New(pdf.Options{Chromium: cfg.chromium})
		defer renderer.Close()
		services.Store = store.New(st.forms).WithPrinter(printing.New(st.pool, st.forms, renderer, log))
	}
	// The console calls the same handlers as the gRPC API, through local: the same
	// authorization, registry check, rate budget and admission (server.Local).
	local := &server.Local{}
	var con *console.Console
	if cfg.consoleAddr != "" {
		if services.Desk == nil || services.Authority == nil {
			return errors.New("-console-addr: the console needs the desk and authority services in this process (-services)")
		}
		var monthPDF console.PDF
		if cfg.chromium != "" {
			// The officials' month for signature; the browser starts at the first PDF.
			r := pdf.New(pdf.Options{Chromium: cfg.chromium})
			defer r.Close()
			monthPDF = r
		}
		con, err = console.New(console.Deps{Local: local, Desk: services.Desk, Authority: services.Authority, Desks: a.stacks[db.DeskService].payouts, Captures: a.stacks[db.DeskService].immediate,
			BaseURL: cfg.consoleURL, IdleTimeout: cfg.consoleIdle, Log: log, PDF: monthPDF,
			ReportMaxAge: cfg.consoleReportMaxAge})
		if err != nil {
			return err
		}
		services.Console = con
	}
	srv, hs, err := server.New(server.Options{TLS: tlsConf, Log: log, Active: reg.Active, Limits: &limits, Local: local,
		Unary: []grpc.UnaryServerInterceptor{met.GRPC.UnaryServerInterceptor()}, Stream: []grpc.StreamServerInterceptor{met.GRPC.StreamServerInterceptor()},
		ServerOptions: []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(
			otelgrpc.WithTracerProvider(tp), otelgrpc.WithPropagators(tracing.Propagator)))},
	}, services)
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	lis = server.LimitListener(lis, cfg.connsPerAddr)
	met.GRPC.InitializeMetrics(srv)
	log.Info("serving", "addr", lis.Addr().String(), "cert_dir", cfg.certDir, "journal_key", anch.KeyID(), "checkpoints", cfg.checkpoints)
	if cfg.metricsAddr != "" {
		// A metrics port taken by another process costs the scrape, not the service: the
		// error is logged and Prometheus reports the target down.
		if ml, err := net.Listen("tcp", cfg.metricsAddr); err != nil {
			log.Error("metrics listener: not serving /metrics", "addr", cfg.metricsAddr, "error", err)
		} else {
			ms := &http.Server{Handler: met.Handler(), ReadHeaderTimeout: 5 * time.Second}
			log.Info("metrics listener", "addr", ml.Addr().String(), "path", "/metrics")
			go func() { _ = ms.Serve(ml) }()
			defer ms.Close()
		}
	}
	if cfg.debugAddr != "" {
		dbg := &http.Server{Addr: cfg.debugAddr, Handler: server.DebugHandler(a.pools.List()...), ReadHeaderTimeout: 5 * time.Second}
		dl, err := net.Listen("tcp", cfg.debugAddr)
		if err != nil {
			return fmt.Errorf("debug listener: %w", err)
		}
		log.Info("debug listener", "addr", dl.Addr().String(), "paths", "/debug/pprof/ /debug/pool")
		go func() { _ = dbg.Serve(dl) }()
		defer dbg.Close()
	}

	if con != nil {
		// The console's HTTPS: the server certificate, and no client certificate asked for
		// (a browser signs in with a link minted by a certificate-authenticated call).
		ctls := tlsConf.Clone()
		ctls.ClientAuth, ctls.VerifyConnection, ctls.NextProtos = tls.NoClientCert, nil, []string{"h2", "http/1.1"}
		cl, err := net.Listen("tcp", cfg.consoleAddr)
		if err != nil {
			return fmt.Errorf("console listener: %w", err)
		}
		cs := &http.Server{Handler: con.Handler(), TLSConfig: ctls, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
			WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
		log.Info("console listener", "addr", cl.Addr().String(), "url", cfg.consoleURL)
		go func() { _ = cs.ServeTLS(cl, "", "") }()
		defer cs.Close()
	}

	jobCtx, stopJobs := context.WithCancel(ctx)
	defer stopJobs()
	travellerDone := make(chan error, 1)
	if cfg.travellerAddr != "" {
		// The look-up reads as the system (party system/traveller), as the jobs do.
		if jobs == nil {
			return errors.New("-traveller-addr needs the jobs service in this process (-services ...,jobs)")
		}
		certFile, keyFile := cfg.travellerCert, cfg.travellerKey
		if certFile == "" {
			certFile, keyFile = filepath.Join(cfg.certDir, "server.pem"), filepath.Join(cfg.certDir, "server-key.pem")
		}
		tconf, err := traveller.TLSConfig(certFile, keyFile)
		if err != nil {
			return err
		}
		tl, err := net.Listen("tcp", cfg.travellerAddr)
		if err != nil {
			return fmt.Errorf("traveller listener: %w", err)
		}
		tl = server.LimitListener(tl, cfg.connsPerAddr)
		tsvc := traveller.New(jobs, traveller.DefaultLimits(), met.Registry, log)
		ths, _ := traveller.NewServer(tsvc, traveller.ServerOptions{TLS: tconf, Log: log,
			Unary: []grpc.UnaryServerInterceptor{met.GRPC.UnaryServerInterceptor()}})
		log.Info("traveller listener", "addr", tl.Addr().String(), "page", "https://"+tl.Addr().String()+"/")
		go func() { travellerDone <- traveller.Serve(jobCtx, ths, tl) }()
	} else {
		travellerDone <- nil
	}
	// Health follows the database.
	watch := &server.DatabaseWatch{URL: cfg.databaseURL, Health: hs, Server: srv, Log: log, OnChange: func(up bool) {
		if up {
			met.DatabaseUp.Set(1)
		} else {
			met.DatabaseUp.Set(0)
			// The primary is gone (crashed, demoted, unreachable): every pooled
			// connection to it is dead or read-only. Dropping them all now spares each
			// call one failure on a stale connection after a failover.
			for _, p := range a.pools {
				p.Reset()
			}
		}
	}}
	met.Checks.FullEvery = cfg.checkFullInterval
	if jobs != nil && cfg.checkInterval > 0 {
		// The first check waits a minute, off the start-up's way (it reads every
		// sealed row and the whole ledger).
		go func() {
			select {
			case <-jobCtx.Done():
				return
			case <-time.After(min(time.Minute, cfg.checkInterval)):
			}
			// Paced: the check reads all history, so at a few million forms a round takes
			// minutes (BENCH.md, "The periodic check as history grows"); it keeps a tenth
			// of the time, however long its rounds grow.
			schedule.Paced(jobCtx, cfg.checkInterval, checkShare, log, "chain and invariant check", func(ctx context.Context) (int, error) {
				return met.Checks.Run(ctx, jobs)
			})
		}()
	}
	watchDone := make(chan struct{})
	go func() { watch.Run(jobCtx); close(watchDone) }()
	if jobs != nil && cfg.expiryInterval > 0 {
		st := a.stacks[db.JobsService]
		go schedule.Every(jobCtx, cfg.expiryInterval, log, "expiry", func(ctx context.Context) (int, error) {
			return st.forms.Expire(db.WithParty(ctx, "system", "expiry"), "expiry job")
		})
		go schedule.Every(jobCtx, cfg.expiryInterval, log, "captures", func(ctx context.Context) (int, error) {
			return st.immediate.Captures(db.WithParty(ctx, "system", "captures"), "capture job")
		})
	}
	if jobs != nil && cfg.sealInterval > 0 {
		sealer := &seal.Sealer{Pool: jobs, Log: log}
		go schedule.Every(db.WithParty(jobCtx, "system", "sealer"), cfg.sealInterval, log, "sealer", sealer.SealAll)
	}
	if jobs != nil {
		go schedule.Every(db.WithParty(jobCtx, "system", "checkpoint"), cfg.checkpointInterval, log, "checkpoint", anch.Round)
	}
	if jobs != nil && cfg.dispatchInterval > 0 {
		// The development acquirer: no card network is reachable from here.
		d := &acquirer.Dispatcher{Pool: jobs, Acquirer: acquirer.DevAcquirer{Pool: jobs}, Log: log}
		go schedule.Every(db.WithParty(jobCtx, "system", "dispatcher"), cfg.dispatchInterval, log, "acquirer dispatcher", d.RunOnce)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	stopJobs()
	<-watchDone
	if err := <-travellerDone; err != nil {
		log.Error("traveller listener", "error", err)
	}
	hs.Shutdown() // every service NOT_SERVING, for good
	stopped := make(chan struct{})
	go func() { srv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		srv.Stop()
	}
	if err := <-done; err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// rekey re-encrypts document numbers sealed with an older PII key.
func rekey(ctx context.Context, cfg config, log *slog.Logger, stdout io.Writer) error {
	a, err := newApp(ctx, cfg, log, []db.Service{db.JobsService})
	if err != nil {
		return err
	}
	defer a.close()
	n, err := a.stacks[db.JobsService].forms.Rekey(db.WithParty(ctx, "system", "rekey"), func(done int) { fmt.Fprintf(stdout, "\rre-encrypted %d", done) })
	if n > 0 {
		fmt.Fprintln(stdout)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d document numbers re-encrypted with the current key\n", n)
	return nil
}

// newAnchor makes the process's anchor. The jobs service signs the chain heads at start
// and every -checkpoint-interval, the authority at every month close: a process running
// either needs the journal key (the jobs' pool also seals what is queued first; the
// authority's waits for the jobs to). Every service's declarations carry the month's
// checkpoints, read from the checkpoint file.
func newAnchor(cfg config, a *app, log *slog.Logger) (*anchor.Anchor, error) {
	signs := a.has(db.JobsService) || a.has(db.AuthorityService)
	pubKeys, err := anchor.LoadPublicKeys(cfg.journalPubKeys)
	if err != nil && (signs || !errors.Is(err, fs.ErrNotExist)) {
		return nil, fmt.Errorf("journal public keys (run `taxrefund keys`): %w", err)
	}
	anch := &anchor.Anchor{Keys: pubKeys, File: cfg.checkpoints, Log: log}
	if signs {
		signer, err := anchor.LoadSigner(cfg.journalKey)
		if err != nil {
			return nil, fmt.Errorf("journal key (run `taxrefund keys` to create it): %w", err)
		}
		if _, ok := pubKeys[signer.ID]; !ok {
			return nil, fmt.Errorf("journal key %s of %s is not in %s: its checkpoints could not be verified (run `taxrefund keys`)", signer.ID, cfg.journalKey, cfg.journalPubKeys)
		}
		anch.Signer = signer
		if st := a.stacks[db.JobsService]; st != nil {
			anch.Pool, anch.Sealer = st.pool, &seal.Sealer{Pool: st.pool, Log: log}
		} else {
			anch.Pool = a.stacks[db.AuthorityService].pool
		}
	}
	for _, st := range a.stacks {
		st.settlement.SetAnchor(anch)
	}
	return anch, nil
}

// verifyChains recomputes the hash chains, checks them against the signed checkpoints
// and exits non-zero on a broken link, a chain that no longer matches a checkpoint
// (re-sealed, changed or truncated since) or a checkpoint line that is not validly signed.
//
// On a terminal, stderr shows the seals checked so far, of how many, and the rate, every
// second; piped or redirected, nothing but the result is written.
func verifyChains(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	lines, err := anchor.ReadFile(cfg.checkpoints)
	if err != nil {
		return err
	}
	keys, err := anchor.LoadPublicKeys(cfg.journalPubKeys)
	if err != nil && (len(lines) > 0 || !errors.Is(err, fs.ErrNotExist)) {
		return fmt.Errorf("journal public keys (-journal-pubkeys): %w", err)
	}
	pool, err := db.Open(ctx, cfg.databaseURL, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	var total int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM seals`).Scan(&total); err != nil {
		return fmt.Errorf("count seals: %w", err)
	}
	// anchor.Check reads every chain twice: once to verify it, once against the checkpoints.
	prog := startProgress(stderr, isTerminal(stderr), "verify: seals checked", 2*total, time.Second)
	r, err := anchor.Check(seal.WithProgress(ctx, prog.add), pool, lines, keys)
	prog.end()
	if err != nil {
		return err
	}
	for _, c := range r.Chains {
		v := c.Verify
		if b := v.Broken; b != nil {
			fmt.Fprintf(stdout, "%s: BROKEN at seal %d (row %s): %s; %d seals verified before it\n", c.Chain, b.Seq, b.RowID, b.Reason, v.Verified)
		} else {
			fmt.Fprintf(stdout, "%s: %d seals verified, head %d %s\n", c.Chain, v.Verified, v.Seq, v.Head)
		}
		switch {
		case c.Checkpoints == 0:
			fmt.Fprintf(stdout, "%s: no signed checkpoint in %s: checked against itself only\n", c.Chain, cfg.checkpoints)
		case c.Last != nil:
			fmt.Fprintf(stdout, "%s: %d of %d signed checkpoints match; the last matching: seal %d, %s, key %s\n",
				c.Chain, c.Matched, c.Checkpoints, c.Last.Seq, c.Last.Time.Format(time.RFC3339), c.Last.KeyID)
		default:
			fmt.Fprintf(stdout, "%s: none of %d signed checkpoints match\n", c.Chain, c.Checkpoints)
		}
	}
	for _, f := range r.Findings {
		fmt.Fprintf(stdout, "%s: %s\n", strings.ToUpper(f.Kind), f.Message)
	}
	if !r.OK() {
		return errors.New("the hash chains do not verify against themselves or their signed checkpoints")
	}
	return nil
}

// journalKeys creates the journal key that signs the checkpoints if it is missing (like certs,
// it keeps what exists), or with -rotate replaces it.
func journalKeys(cfg config, log *slog.Logger, stdout io.Writer) error {
	if cfg.rotate {
		old, id, err := anchor.RotateKey(cfg.journalKey, cfg.journalPubKeys)
		if err != nil {
			return err
		}
		log.Info("journal key rotated", "old_key", old, "key", id, "file", cfg.journalKey, "public_keys", cfg.journalPubKeys)
		fmt.Fprintf(stdout, "journal key %s replaces %s in %s; %s keeps both public keys; restart serve to sign with the new key\n",
			id, old, cfg.journalKey, cfg.journalPubKeys)
		return nil
	}
	id, created, err := anchor.EnsureKey(cfg.journalKey, cfg.journalPubKeys)
	if err != nil {
		return err
	}
	state := "kept"
	if created {
		state = "created"
	}
	log.Info("journal key ready", "key", id, "state", state, "file", cfg.journalKey, "public_keys", cfg.journalPubKeys)
	fmt.Fprintf(stdout, "journal key %s (%s) in %s, public keys in %s\n", id, state, cfg.journalKey, cfg.journalPubKeys)
	return nil
}
