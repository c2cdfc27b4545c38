// Command pgenv runs a command against a PostgreSQL database, finding or
// starting a server first:
//
//	go run ./cmd/pgenv [-db NAME] -- COMMAND ARGS...
//
// The server is, in order: DATABASE_URL if set; PostgreSQL on 127.0.0.1:5432
// (user postgres, trust auth) if it answers; otherwise a private cluster in
// .data/pg, created and started with the local PostgreSQL binaries and
// stopped again afterwards if this invocation started it. The database (from
// DATABASE_URL, else NAME) is created if missing. COMMAND runs with
// DATABASE_URL and, unless already set, TEST_DATABASE_URL pointing at it; its
// exit code becomes pgenv's.
//
// PGENV_SKIP_PROBE=1 skips 127.0.0.1:5432. `pgenv -stop` stops the private
// cluster if it is running.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"taxrefund/internal/pgenv"
)

func main() {
	err := run(context.Background(), os.Args, os.Getenv, os.Stderr)
	var code exitCode
	switch {
	case err == nil:
	case errors.As(err, &code):
		os.Exit(int(code))
	default:
		fmt.Fprintf(os.Stderr, "pgenv: %v\n", err)
		os.Exit(1)
	}
}

// exitCode is returned by run to make pgenv exit with that code silently.
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit code %d", int(c)) }

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fset := flag.NewFlagSet("pgenv", flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.Usage = func() {
		fmt.Fprintln(stderr, "usage: pgenv [-db NAME] -- COMMAND ARGS...\n       pgenv -stop\n       pgenv -clean NAME...")
		fset.PrintDefaults()
	}
	db := fset.String("db", "taxrefund", "database to use when DATABASE_URL names none; created if missing")
	stop := fset.Bool("stop", false, "stop the private cluster in .data/pg if it is running, and exit")
	clean := fset.Bool("clean", false, "before .data/ is deleted: on a server other than the private cluster, drop the named databases pgenv created, and refuse if one it did not create holds forms; stop the private cluster")
	if err := fset.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return exitCode(2)
	}
	command := fset.Args()
	if !*stop && !*clean && len(command) == 0 {
		fset.Usage()
		return exitCode(2)
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "pgenv: "+format+"\n", a...) }

	root, err := moduleRoot()
	if err != nil {
		return err
	}
	private := privateCluster{dataDir: filepath.Join(root, ".data"), logf: logf}
	if *stop {
		return private.stop(ctx)
	}
	if *clean {
		return cleanDatabases(ctx, getenv, private, command, logf)
	}

	dbURL, release, err := server(ctx, getenv, private, *db, logf)
	if err != nil {
		return err
	}
	defer release()
	created, err := pgenv.EnsureDatabase(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("ensure database: %w", err)
	}
	if created != "" {
		logf("created database %s", created)
		if err := pgenv.RecordCreated(filepath.Join(private.dataDir, pgenv.CreatedFile), dbURL); err != nil {
			return fmt.Errorf("record created database: %w", err)
		}
	}

	env := []string{"DATABASE_URL=" + dbURL}
	if getenv("TEST_DATABASE_URL") == "" {
		env = append(env, "TEST_DATABASE_URL="+dbURL)
	}
	return runCommand(command, env, stderr)
}

// cleanDatabases is `pgenv -clean`: the databases a server other than the private
// cluster keeps after .data/ (and with it the PII key file) is deleted must not hold forms
// sealed with the deleted keys. The ones pgenv created are dropped; one it did not create
// that holds forms stops the cleaning. The private cluster is stopped: it goes with .data/.
func cleanDatabases(ctx context.Context, getenv func(string) string, private privateCluster, names []string, logf func(string, ...any)) error {
	shared := getenv("DATABASE_URL") != ""
	if !shared && getenv("PGENV_SKIP_PROBE") != "1" {
		shared = pgenv.Probe(ctx, pgenv.URL(pgenv.LocalPort, "postgres")) == nil
	}
	if shared {
		for _, name := range names {
			dbURL, release, err := server(ctx, getenv, private, name, logf)
			if err != nil {
				return err
			}
			release()
			dropped, err := pgenv.Clean(ctx, dbURL, filepath.Join(private.dataDir, pgenv.CreatedFile))
			if errors.Is(err, pgenv.ErrHoldsData) {
				return fmt.Errorf("%w: deleting .data/ would delete the PII keys its document numbers need; back up .data/pii.keys, or drop the database yourself", err)
			}
			if err != nil {
				return err
			}
			if dropped {
				logf("dropped database %s, which pgenv had created", name)
			}
		}
	}
	return private.stop(ctx)
}

// server picks the PostgreSQL server and returns the URL of database db on
// it, and a function to call when done with it.
func server(ctx context.Context, getenv func(string) string, private privateCluster, db string, logf func(string, ...any)) (string, func(), error) {
	if u := getenv("DATABASE_URL"); u != "" {
		dbURL, err := pgenv.WithDatabase(u, db)
		if err != nil {
			return "", nil, fmt.Errorf("DATABASE_URL: %w", err)
		}
		logf("using DATABASE_URL: %s", redact(dbURL))
		return dbURL, func() {}, nil
	}
	if getenv("PGENV_SKIP_PROBE") != "1" {
		err := pgenv.Probe(ctx, pgenv.URL(pgenv.LocalPort, "postgres"))
		if err == nil {
			logf("using PostgreSQL at 127.0.0.1:%d", pgenv.LocalPort)
			return pgenv.URL(pgenv.LocalPort, db), func() {}, nil
		}
		logf("no usable PostgreSQL at 127.0.0.1:%d (%v)", pgenv.LocalPort, err)
	}
	return private.start(ctx, db)
}

// privateCluster manages the cluster in .data/pg that pgenv starts when no
// other server is available.
type privateCluster struct {
	dataDir string // the repository's .data
	logf    func(string, ...any)
}

// open takes the setup lock and describes the cluster.
func (p privateCluster) open(ctx context.Context) (*pgenv.Cluster, *pgenv.Sharing, error) {
	if err := os.MkdirAll(p.dataDir, 0o755); err != nil {
		return nil, nil, err
	}
	sharing, err := pgenv.OpenSharing(p.dataDir)
	if err != nil {
		return nil, nil, err
	}
	if err := sharing.Lock(); err != nil {
		sharing.Close()
		return nil, nil, err
	}
	c := &pgenv.Cluster{Dir: filepath.Join(p.dataDir, "pg")}
	c.BinDir, err = pgenv.FindBinDir(ctx)
	if err == nil {
		c.As, c.User, err = pgenv.RunAs()
	}
	if err != nil {
		sharing.Close()
		return nil, nil, err
	}
	return c, sharing, nil
}

// start reuses the private cluster if it is already running, else creates
// and starts it. The release function stops it again if this invocation
// started it and no other pgenv is using it.
func (p privateCluster) start(ctx context.Context, db string) (string, func(), error) {
	c, sharing, err := p.open(ctx)
	if errors.Is(err, pgenv.ErrNoBinaries) {
		return "", nil, fmt.Errorf("%w: set DATABASE_URL, run PostgreSQL on 127.0.0.1:5432, or install the PostgreSQL server", err)
	}
	if err != nil {
		return "", nil, err
	}
	port, started, err := p.ensureRunning(ctx, c)
	release := func() {
		defer sharing.Close()
		if !started {
			return
		}
		if alone, err := sharing.Alone(); err != nil || !alone {
			p.logf("leaving private cluster running: another pgenv is using it")
			return
		}
		if err := c.Stop(context.WithoutCancel(ctx)); err != nil {
			p.logf("stop private cluster: %v", err)
			return
		}
		p.logf("stopped private cluster in .data/pg")
	}
	if err == nil {
		err = sharing.Join()
	}
	if err != nil {
		release()
		return "", nil, fmt.Errorf("private cluster in .data/pg: %w", err)
	}
	return pgenv.URL(port, db), release, nil
}

// ensureRunning returns the port of the cluster, creating and starting it
// if needed, and whether it started it.
func (p privateCluster) ensureRunning(ctx context.Context, c *pgenv.Cluster) (port int, started bool, err error) {
	port, running, err := c.Status(ctx)
	if err != nil {
		return 0, false, err
	}
	if running {
		p.logf("reusing private cluster already running in .data/pg (127.0.0.1:%d)", port)
		return port, false, pgenv.Probe(ctx, pgenv.URL(port, "postgres"))
	}
	created, err := c.Init(ctx)
	if err != nil {
		return 0, false, err
	}
	if created {
		p.logf("created private cluster in .data/pg with %s", c.BinDir)
	}
	if port, err = c.Start(ctx); err != nil {
		return 0, false, err
	}
	as := ""
	if c.User != "" {
		as = ", as user " + c.User
	}
	p.logf("started private cluster in .data/pg (127.0.0.1:%d%s)", port, as)
	return port, true, pgenv.Probe(ctx, pgenv.URL(port, "postgres"))
}

// stop stops the private cluster if it is running, whoever started it.
func (p privateCluster) stop(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(p.dataDir, "pg")); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	c, sharing, err := p.open(ctx)
	if err != nil {
		return err
	}
	defer sharing.Close()
	_, running, err := c.Status(ctx)
	if err != nil || !running {
		return err
	}
	if err := c.Stop(ctx); err != nil {
		return err
	}
	p.logf("stopped private cluster in .data/pg")
	return nil
}

// runCommand runs argv with env added to pgenv's environment, forwarding
// SIGINT and SIGTERM to it, and returns its exit status as an exitCode.
func runCommand(argv, env []string, stderr io.Writer) error {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(cmd.Environ(), env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, stderr

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case s := <-sigs:
				_ = cmd.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()

	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return err
	}
	if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return exitCode(128 + int(ws.Signal()))
	}
	return exitCode(exit.ExitCode())
}

// moduleRoot returns the directory holding go.mod, at or above the working
// directory, so .data/ is the repository's wherever pgenv is started.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return dir, nil
		}
	}
}

// redact hides the password in a connection URL for logging.
func redact(connString string) string {
	u, err := url.Parse(connString)
	if err != nil || u.Scheme == "" {
		return "(keyword/value connection string)"
	}
	return u.Redacted()
}
