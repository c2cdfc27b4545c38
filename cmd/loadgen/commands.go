package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"taxrefund/internal/loadgen"
	"taxrefund/internal/pii"
)

const usage = `usage: loadgen <command> [flags]

commands:
  setup      register bench stores, ledger accounts and client certificates (idempotent)
  baseline   measure with pgbench the one-round-trip SQL that writes what the service writes
  run        load the service over mutual TLS gRPC and measure it
  fill       COPY existing forms (the growth measurement), up to -total
  check      run the ledger invariants and count double payouts; non-zero exit on any
  report     print one table from result files written with -json
  reset-db   drop and recreate the database of DATABASE_URL (taxrefund_bench* only)

Every command but report reads DATABASE_URL. Run "loadgen <command> -h" for the flags.`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	err := dispatch(ctx, args, getenv, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) { // -h, --help: the flags are printed, not an error
		return nil
	}
	return err
}

func dispatch(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		return fmt.Errorf("no command\n%s", usage)
	}
	cmd, rest := args[1], args[2:]
	fs := flag.NewFlagSet("loadgen "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	databaseURL := fs.String("database-url", getenv("DATABASE_URL"), "PostgreSQL URL (env DATABASE_URL)")
	open := func() (*pgxpool.Pool, error) {
		if *databaseURL == "" {
			return nil, errors.New("DATABASE_URL is not set (or pass -database-url)")
		}
		pool, err := pgxpool.New(ctx, *databaseURL)
		if err != nil {
			return nil, fmt.Errorf("open database: %w", err)
		}
		if err := pool.Ping(ctx); err != nil {
			pool.Close()
			return nil, fmt.Errorf("connect to the database: %w", err)
		}
		return pool, nil
	}
	certDir := func() *string {
		return fs.String("cert-dir", ".data/bench/certs", "directory of the CA and client certificates")
	}
	stores := func() *int { return fs.Int("stores", 500, "number of bench stores") }

	switch cmd {
	case "setup":
		dir, n := certDir(), stores()
		if err := fs.Parse(rest); err != nil {
			return err
		}
		pool, err := open()
		if err != nil {
			return err
		}
		defer pool.Close()
		return loadgen.Setup(ctx, pool, loadgen.SetupConfig{Stores: *n, CertDir: *dir, Log: stdout})

	case "baseline":
		var c loadgen.BaselineConfig
		fs.StringVar(&c.Scenario, "scenario", "issue", "issue, floor (the minimal write of a form's facts, on a database of its own: <database>_floor), desk (a whole desk visit: find, verify, settle) or settle (a settlement alone)")
		fs.BoolVar(&c.Cost, "cost", false, "issue and floor: also count what PostgreSQL writes per form (rows, index entries, FK checks, trigger calls, WAL); waits 11s before and after for its statistics")
		fs.StringVar(&c.Label, "label", "", "label of this measurement in the report (e.g. the growth step)")
		fs.IntVar(&c.Concurrency, "concurrency", 64, "pgbench clients")
		fs.IntVar(&c.Threads, "threads", 2, "pgbench threads")
		fs.DurationVar(&c.Warmup, "warmup", 5*time.Second, "warm-up, not measured (whole seconds)")
		fs.DurationVar(&c.Duration, "duration", 20*time.Second, "measured time (whole seconds)")
		fs.Float64Var(&c.RateHint, "rate-hint", 1000, "desk and settle: expected tx/s, to size the run (pgbench -t) and the forms prepared for it")
		hint := fs.String("hint", "", "desk and settle: an issue baseline result (-json), from which the -rate-hint is estimated")
		fs.StringVar(&c.WorkDir, "work-dir", ".data/bench", "directory for the pgbench script and logs")
		fs.IntVar(&c.Stores, "stores", 500, "bench stores (issue)")
		jsonPath := fs.String("json", "", "also write the result as JSON to this file")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		c.DatabaseURL, c.Log = *databaseURL, stderr
		if *hint != "" {
			h, err := loadgen.ReadResult(*hint)
			if err != nil {
				return err
			}
			c.RateHint = loadgen.RateHint(c.Scenario, h.OpsPerSec)
		}
		pool, err := open()
		if err != nil {
			return err
		}
		defer pool.Close()
		r, err := loadgen.Baseline(ctx, pool, c)
		if err != nil {
			return err
		}
		return r.Write(stdout, *jsonPath)

	case "run":
		var c loadgen.RunConfig
		var mode string
		fs.StringVar(&c.Scenario, "scenario", "issue", "issue, desk (find, verify, settle), immediate (issue, then pay at the block's refund point), report (the authority's MonthlyReport), console (an official renders each console page over HTTPS; the server needs -console-addr) or flood (63 stores issue, without and then with one more store flooding)")
		fs.StringVar(&c.Label, "label", "", "label of this measurement in the report (e.g. the growth step)")
		fs.StringVar(&mode, "mode", "closed", "closed (N concurrent callers) or open (fixed arrival rate)")
		fs.IntVar(&c.Load.Concurrency, "concurrency", 64, "concurrent callers (open loop: the most in flight)")
		fs.Float64Var(&c.Load.Rate, "rate", 0, "open loop: arrivals per second")
		fs.IntVar(&c.Load.Queue, "queue", 0, "open loop: arrivals that may wait for a caller before more are dropped (0: -concurrency)")
		fs.DurationVar(&c.Load.Warmup, "warmup", 5*time.Second, "warm-up, not measured")
		fs.DurationVar(&c.Load.Duration, "duration", 20*time.Second, "measured time")
		fs.DurationVar(&c.Load.Timeout, "timeout", 10*time.Second, "deadline of each call")
		fs.StringVar(&c.Addr, "addr", "127.0.0.1:50051", "server address, or several comma-separated (calls spread over them, retried on UNAVAILABLE)")
		dir := certDir()
		fs.IntVar(&c.ServerPID, "server-pid", 0, "the server's process id, to read its CPU time and peak RSS from /proc (0: not measured)")
		fs.IntVar(&c.Stores, "stores", 500, "bench stores that issue forms")
		fs.IntVar(&c.Travellers, "travellers", 20000, "desk: travellers whose forms are issued before the run (a visit each)")
		hint := fs.String("hint", "", "desk: an issue run's result (-json); -travellers becomes enough for half its forms/s")
		seed := fs.Uint64("seed", 0, "random seed (0: random)")
		fs.BoolVar(&c.Cost, "cost", false, "issue: also count what PostgreSQL writes per form (rows, index entries, FK checks, trigger calls, WAL); waits 11s before and after for its statistics")
		month := fs.String("month", "", "report: the month asked for, YYYY-MM (default: the current month, Asia/Shanghai)")
		jsonPath := fs.String("json", "", "also write the result as JSON to this file")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		c.Load.Mode, c.Load.Seed, c.CertDir, c.Log = loadgen.Mode(mode), *seed, *dir, stderr
		if *month != "" {
			m, err := time.Parse("2006-01", *month)
			if err != nil {
				return fmt.Errorf("-month %q: want YYYY-MM", *month)
			}
			c.Month = m
		}
		if *hint != "" {
			h, err := loadgen.ReadResult(*hint)
			if err != nil {
				return err
			}
			c.Travellers = int(0.5*h.OpsPerSec*(c.Load.Warmup+c.Load.Duration).Seconds()) + c.Load.Concurrency
		}
		pool, err := open()
		if err != nil {
			return err
		}
		defer pool.Close()
		r, err := loadgen.Run(ctx, pool, c)
		if err != nil {
			return err
		}
		return r.Write(stdout, *jsonPath)

	case "fill":
		var c loadgen.FillConfig
		fs.Int64Var(&c.Total, "total", 1_000_000, "forms the database should hold when done")
		fs.IntVar(&c.Batch, "batch", 10_000, "forms per COPY batch (one transaction)")
		fs.IntVar(&c.Workers, "workers", 2, "batches written at a time")
		fs.IntVar(&c.Stores, "stores", 500, "bench stores the forms belong to")
		keys := fs.String("pii-keys", ".data/bench/pii.keys", "the server's PII key file (blind indexes and sealed numbers)")
		months := fs.String("month", "", "purchase months of the forms added, YYYY-MM[,YYYY-MM...], shared out in order (default: the last 89 days)")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if *months != "" {
			for _, m := range strings.Split(*months, ",") {
				t, err := time.Parse("2006-01", strings.TrimSpace(m))
				if err != nil {
					return fmt.Errorf("-month %q: want YYYY-MM[,YYYY-MM...]", *months)
				}
				c.Months = append(c.Months, t)
			}
		}
		kr, err := pii.LoadKeyring(*keys)
		if err != nil {
			return err
		}
		c.Keys, c.Log = kr, stdout
		pool, err := open()
		if err != nil {
			return err
		}
		defer pool.Close()
		return loadgen.Fill(ctx, pool, c)

	case "check":
		if err := fs.Parse(rest); err != nil {
			return err
		}
		pool, err := open()
		if err != nil {
			return err
		}
		defer pool.Close()
		return loadgen.Check(ctx, pool, stdout)

	case "report":
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			return errors.New("report: name the result files (written with -json)")
		}
		return loadgen.Report(stdout, fs.Args())

	case "reset-db":
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if *databaseURL == "" {
			return errors.New("DATABASE_URL is not set (or pass -database-url)")
		}
		return loadgen.ResetDatabase(ctx, *databaseURL, stdout)

	case "-h", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q\n%s", cmd, usage)
}
