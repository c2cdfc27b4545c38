package loadgen

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed issue.pgbench
var issueScript string

//go:embed immediate.pgbench
var immediateScript string

//go:embed desk.pgbench
var deskScript string

//go:embed settle.pgbench
var settleScript string

// respPerLine is about what the service stores per form line in an IssueForm's
// idempotency record: the JSON of the form is ~540 bytes plus ~190 per line (1,112 bytes
// on average, measured on the service). The issue baseline stores as much.
const respPerLine = 190

// prepaymentResp is about the size of PayImmediateRefund's stored answer (the JSON of the
// prepayment: 788 bytes on average, measured on the service); the immediate baseline
// stores as much.
const prepaymentResp = 800

// BaselineConfig is a pgbench baseline measurement.
type BaselineConfig struct {
	// Scenario: "issue", "floor" (the minimal write of a form's facts, on a database of its
	// own: floor.sql), "desk" (a whole desk visit) or "settle" (a settlement alone).
	Scenario    string
	Label       string
	DatabaseURL string
	Concurrency int
	Threads     int
	Warmup      time.Duration
	Duration    time.Duration
	Stores      int
	// RateHint is a desk baseline's expected transactions per second. Each client runs a
	// fixed number of transactions (pgbench -t) on forms prepared for them, enough for
	// Duration at that rate: the run is longer or shorter if the hint is off, never short
	// of forms.
	RateHint float64 // throughput metric (calls/s), not money
	// WorkDir holds the scripts and pgbench's transaction logs.
	WorkDir string
	// Cost: also measure what PostgreSQL writes per form (Result.Cost; issue and floor).
	Cost bool
	Log  io.Writer
}

// Baseline measures with pgbench a one-round-trip SQL transaction that writes what the
// scenario's service call writes (see issue.pgbench and desk.pgbench), at the same
// concurrency, against the same database: PostgreSQL's own ceiling for that work.
func Baseline(ctx context.Context, pool *pgxpool.Pool, cfg BaselineConfig) (Result, error) {
	bin, err := findPgbench()
	if err != nil {
		return Result{}, err
	}
	if cfg.Concurrency < 1 || cfg.Threads < 1 {
		return Result{}, errors.New("-concurrency and -threads must be at least 1")
	}
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return Result{}, err
	}
	var script string
	var perWarm, perRun int // desk and settle: transactions per client
	vars := []string{}
	dbURL, counted := cfg.DatabaseURL, "forms"
	switch cfg.Scenario {
	case "floor":
		have, err := benchStores(ctx, pool)
		if err != nil {
			return Result{}, err
		}
		if cfg.Stores < 1 || have < cfg.Stores {
			return Result{}, fmt.Errorf("%d bench stores are set up, %d wanted: run `loadgen setup`", have, cfg.Stores)
		}
		if dbURL, err = floorDatabase(ctx, cfg.DatabaseURL, cfg.Log); err != nil {
			return Result{}, err
		}
		floor, err := openFloor(ctx, dbURL)
		if err != nil {
			return Result{}, fmt.Errorf("floor database: %w", err)
		}
		defer floor.Close()
		pool, counted = floor, "floor_forms"
		script = floorScript
		vars = append(vars, "stores="+strconv.Itoa(cfg.Stores), "resp="+strconv.Itoa(respPerLine))
	case "issue":
		have, err := benchStores(ctx, pool)
		if err != nil {
			return Result{}, err
		}
		if have < cfg.Stores || cfg.Stores < 1 {
			return Result{}, fmt.Errorf("%d bench stores are set up, %d wanted: run `loadgen setup`", have, cfg.Stores)
		}
		script = issueScript
		vars = append(vars, "stores="+strconv.Itoa(cfg.Stores), "resp="+strconv.Itoa(respPerLine))
	case "immediate":
		have, err := benchStores(ctx, pool)
		if err != nil {
			return Result{}, err
		}
		if have < cfg.Stores || cfg.Stores < 1 {
			return Result{}, fmt.Errorf("%d bench stores are set up, %d wanted: run `loadgen setup`", have, cfg.Stores)
		}
		script = immediateScript
		vars = append(vars, "stores="+strconv.Itoa(cfg.Stores), "resp="+strconv.Itoa(respPerLine),
			"presp="+strconv.Itoa(prepaymentResp))
	case "desk", "settle":
		script = deskScript
		forms := issuedForms
		if cfg.Scenario == "settle" {
			script, forms = settleScript, verifiedForms
		}
		if cfg.RateHint <= 0 {
			return Result{}, fmt.Errorf("%s baseline: -rate-hint must be positive", cfg.Scenario)
		}
		if cfg.Concurrency > 100 {
			return Result{}, fmt.Errorf("%s baseline: at most 100 clients (form numbers hold two digits of client)", cfg.Scenario)
		}
		if cfg.Warmup > 0 {
			perWarm = perClient(cfg.RateHint, cfg.Warmup, cfg.Concurrency)
		}
		perRun = perClient(cfg.RateHint, cfg.Duration, cfg.Concurrency)
		if perRun >= 500_000 {
			return Result{}, fmt.Errorf("%s baseline: -rate-hint × -duration too large", cfg.Scenario)
		}
		// Forms of this run's own: a baseline run again on the same database finds the
		// forms of the last one paid.
		epoch := time.Now().Unix() % 10_000_000
		vars = append(vars, "epoch="+strconv.FormatInt(epoch, 10))
		start := time.Now()
		n, err := prepareForms(ctx, pool, deskKeys(epoch, cfg.Concurrency, perWarm, perRun), forms)
		if err != nil {
			return Result{}, err
		}
		fmt.Fprintf(cfg.Log, "loadgen: %s baseline: %d forms prepared in %.1fs\n", cfg.Scenario, n, time.Since(start).Seconds())
	default:
		return Result{}, fmt.Errorf("scenario %q: want issue, floor, immediate, desk or settle", cfg.Scenario)
	}
	path := filepath.Join(cfg.WorkDir, cfg.Scenario+".pgbench")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		return Result{}, err
	}
	var existing int64
	if counted == "forms" {
		if existing, err = countForms(ctx, pool); err != nil {
			return Result{}, err
		}
	}
	// The issue baseline runs for a time (-T); the desk baseline pays a number of forms
	// per client (-t), as many as were prepared.
	args := func(d time.Duration, perClient, base int, extra ...string) []string {
		a := []string{"-n", "-M", "prepared", "-c", strconv.Itoa(cfg.Concurrency), "-j", strconv.Itoa(cfg.Threads), "-f", path}
		if perClient > 0 {
			a = append(a, "-t", strconv.Itoa(perClient))
		} else {
			a = append(a, "-T", strconv.Itoa(int(math.Ceil(d.Seconds()))))
		}
		for _, v := range append(vars, "base="+strconv.Itoa(base), "i=0") {
			a = append(a, "-D", v)
		}
		return append(append(a, extra...), dbURL)
	}
	if err := awaitConnections(ctx, pool, cfg.Concurrency+2, cfg.Log); err != nil {
		return Result{}, err
	}
	tidied, err := tidy(ctx, pool, cfg.Log)
	if err != nil {
		return Result{}, err
	}
	if cfg.Warmup > 0 {
		fmt.Fprintf(cfg.Log, "loadgen: pgbench %s baseline: %s warm-up...\n", cfg.Scenario, cfg.Warmup)
		if _, err := pgbench(ctx, bin, args(cfg.Warmup, perWarm, 0)); err != nil {
			return Result{}, fmt.Errorf("warm-up: %w", err)
		}
	}
	prefix := filepath.Join(cfg.WorkDir, "pgbench-"+cfg.Scenario)
	removeLogs(prefix)
	defer removeLogs(prefix)
	var cm *costMeter
	if cfg.Cost {
		if cm, err = newCostMeter(ctx, pool, counted, cfg.Log); err != nil {
			return Result{}, err
		}
	}
	fmt.Fprintf(cfg.Log, "loadgen: pgbench %s baseline: %d clients, %s...\n", cfg.Scenario, cfg.Concurrency, cfg.Duration)
	m := newMeter(ctx, pool, 0)
	started := nowStamp()
	m.begin()
	t0 := time.Now()
	run, err := pgbench(ctx, bin, args(cfg.Duration, perRun, 500_000, "-l", "--log-prefix="+prefix))
	if err != nil {
		return Result{}, err
	}
	elapsed := time.Since(t0)
	cpu := m.end(run.cpu)
	hist, err := readPgbenchLogs(prefix)
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
		Kind: "baseline", Scenario: cfg.Scenario, Label: cfg.Label, Mode: "pgbench", Concurrency: cfg.Concurrency,
		Seconds: elapsed.Seconds(), Ops: run.transactions, OpsPerSec: run.tps, Latency: hist.Summary(),
		CPU: cpu, ExistingForms: existing, Started: started, Notes: append(m.notes, tidied), Cost: cost,
	}
	if run.failed > 0 {
		r.Errors = map[string]int64{"pgbench/failed": run.failed}
	}
	return r, nil
}

// RateHint estimates a desk baseline's tx/s from the issue baseline's (issueTPS) on the
// same machine, to size its run. Measured: a settlement alone runs at 0.85–0.95× the
// issue baseline, a whole visit (a find, 1.2 verifications and a settlement) at about
// 0.4×. Erring high makes the run longer, never short of forms.
func RateHint(scenario string, issueTPS float64) float64 { // throughput metric (tx/s), not money
	if scenario == "settle" {
		return 1.5 * issueTPS
	}
	return 0.5 * issueTPS
}

// perClient is how many forms each desk baseline client pays to last d at rate in total.
func perClient(rate float64, d time.Duration, clients int) int {
	return max(1, int(math.Ceil(rate*d.Seconds()/float64(clients))))
}

// ReadResult reads a result written with -json.
func ReadResult(path string) (Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Result{}, err
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return Result{}, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

type pgbenchRun struct {
	tps          float64 // throughput metric, not money
	transactions int64
	failed       int64
	cpu          time.Duration
}

var (
	tpsLine    = regexp.MustCompile(`(?m)^tps = ([0-9.]+) \(without initial connection time\)`)
	txLine     = regexp.MustCompile(`(?m)^number of transactions actually processed: ([0-9]+)`)
	failedLine = regexp.MustCompile(`(?m)^number of failed transactions: ([0-9]+)`)
)

// pgbench runs pgbench and parses its summary. A client that aborted (an error in the
// script, or a desk client that found a form already paid) fails the run.
//
// The sessions use generic plans: with the default plan_cache_mode PostgreSQL replans
// the scripts' many-CTE statement on every execution (its custom plans look cheaper than
// the generic one), which cost it a fifth to a third of its throughput, measured. The
// baseline is PostgreSQL's ceiling for the work, so it gets the cheaper way.
func pgbench(ctx context.Context, bin string, args []string) (pgbenchRun, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "PGOPTIONS="+strings.TrimSpace(os.Getenv("PGOPTIONS")+" -c plan_cache_mode=force_generic_plan"))
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var run pgbenchRun
	if cmd.ProcessState != nil {
		run.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	out := stdout.String()
	if strings.Contains(stderr.String(), "division by zero") {
		return run, errors.New("pgbench: a desk baseline found its forms missing or not in the state it expects (ISSUED for desk, VERIFIED for settle)")
	}
	if err != nil || strings.Contains(stderr.String(), "aborted") {
		return run, fmt.Errorf("pgbench %s: %v\n%s", strings.Join(args[:len(args)-1], " "), err, lastLines(stderr.String(), 8))
	}
	return parsePgbench(out, run)
}

func parsePgbench(out string, run pgbenchRun) (pgbenchRun, error) {
	m := tpsLine.FindStringSubmatch(out)
	if m == nil {
		return run, fmt.Errorf("pgbench printed no tps line:\n%s", lastLines(out, 12))
	}
	run.tps, _ = strconv.ParseFloat(m[1], 64)
	if m := txLine.FindStringSubmatch(out); m != nil {
		run.transactions, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := failedLine.FindStringSubmatch(out); m != nil {
		run.failed, _ = strconv.ParseInt(m[1], 10, 64)
	}
	return run, nil
}

// readPgbenchLogs reads the per-transaction logs of -l (one file per thread, "client
// transaction latency_us script epoch us ...") into a histogram.
func readPgbenchLogs(prefix string) (*Histogram, error) {
	files, err := filepath.Glob(prefix + ".*")
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("pgbench wrote no transaction log %s.*", prefix)
	}
	h := &Histogram{}
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 3 {
				continue
			}
			us, err := strconv.ParseInt(fields[2], 10, 64)
			if err != nil {
				continue // "failed" or "skipped" transactions have no latency
			}
			h.Record(time.Duration(us) * time.Microsecond)
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	return h, nil
}

func removeLogs(prefix string) {
	files, _ := filepath.Glob(prefix + ".*")
	for _, f := range files {
		_ = os.Remove(f)
	}
}

// findPgbench looks in PATH, then in the newest /usr/lib/postgresql/*/bin.
func findPgbench() (string, error) {
	if p, err := exec.LookPath("pgbench"); err == nil {
		return p, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pgbench")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	if len(dirs) > 0 {
		return dirs[0], nil
	}
	return "", errors.New("pgbench not found in PATH or /usr/lib/postgresql/*/bin (Debian: apt-get install postgresql-contrib or postgresql-client)")
}

func versionOf(path string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return v
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// awaitConnections waits until the server has room for n more connections: on a server
// shared with other people's tests, pgbench's clients would otherwise be refused ("too
// many clients already") half-way through connecting.
func awaitConnections(ctx context.Context, pool *pgxpool.Pool, n int, log io.Writer) error {
	const patience = 2 * time.Minute
	deadline := time.Now().Add(patience)
	for said := false; ; said = true {
		var free int
		err := pool.QueryRow(ctx, `
			SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int
			       - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')`).Scan(&free)
		if err != nil {
			return fmt.Errorf("count connections: %w", err)
		}
		if free >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the database server has room for %d more connections, %d needed, after waiting %s: "+
				"use a private server (PGENV_SKIP_PROBE=1 make bench) or fewer callers (BENCH_CONCURRENCY)", free, n, patience)
		}
		if !said {
			fmt.Fprintf(log, "loadgen: the database server has room for %d more connections, %d needed: waiting...\n", free, n)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
