// Command hacluster starts, on this machine, the high-availability layout of
// OPERATIONS.md ("High availability"): etcd, three PostgreSQL nodes under Patroni with a
// synchronous standby, and two taxrefund servers whose pools follow the primary.
//
//	hacluster start [-dir .data/ha] [-base-port 52110] [-taxrefund .data/bin/taxrefund]
//	hacluster stop  [-dir .data/ha]
//	hacluster url   [-base-port 52110]   the multi-host database URL
//
// `make ha` and `make ha-stop` wrap it. start leaves everything running and returns;
// stop stops exactly what start started (its pid files under -dir/pids, and the
// postmasters of the data directories under -dir).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"taxrefund/internal/hacluster"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "hacluster:", err)
		os.Exit(1)
	}
}

const usage = `usage: hacluster start|stop|url [flags]`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		return errors.New(usage)
	}
	fs := flag.NewFlagSet("hacluster "+args[1], flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", ".data/ha", "where the nodes' data, configuration, logs and pid files live")
	base := fs.Int("base-port", 52110, "PostgreSQL on base..base+2, Patroni REST base+3..+5, etcd base+10/+11, taxrefund base+20/+21, metrics base+30/+31")
	bin := fs.String("taxrefund", ".data/bin/taxrefund", "the taxrefund binary")
	templates := fs.String("templates", "deploy", "the folder holding patroni/node.yml.tmpl and etcd/etcd.yml.tmpl")
	servers := fs.Int("servers", 2, "taxrefund servers to start")
	serveArgs := fs.String("serve-args", "", "more flags for every taxrefund serve, space-separated")
	fsync := fs.Bool("fsync", true, "PostgreSQL's fsync (off: faster, survives process kills but not a machine crash)")
	if err := fs.Parse(args[2:]); err != nil {
		return err
	}
	switch args[1] {
	case "stop":
		hacluster.StopDir(*dir, stdout)
		return nil
	case "url":
		c, err := hacluster.New(ctx, hacluster.Config{Dir: *dir, Templates: *templates, BasePort: *base})
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, c.DatabaseURL(hacluster.Database))
		return nil
	case "start":
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, usage)
		fs.PrintDefaults()
		return nil
	default:
		return fmt.Errorf("unknown command %q\n%s", args[1], usage)
	}
	if _, err := os.Stat(*dir + "/pids"); err == nil {
		if entries, _ := os.ReadDir(*dir + "/pids"); len(entries) > 0 {
			return fmt.Errorf("%s/pids holds pid files: a cluster may be running (make ha-stop first)", *dir)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	c, err := hacluster.New(ctx, hacluster.Config{Dir: *dir, Templates: *templates, BasePort: *base,
		Taxrefund: *bin, Servers: *servers, ServeArgs: strings.Fields(*serveArgs), Fsync: *fsync, Log: stdout})
	if err != nil {
		return err
	}
	if err := c.Start(ctx); err != nil {
		return err
	}
	roles, err := c.WaitHealthy(ctx, 30*time.Second)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, `
HA cluster running under %[1]s: leader %[2]s, synchronous standby %[3]s.
  database (multi-host):  %[4]s
  reads that may lag:     %[9]s
  taxrefund servers:      %[5]s (-read-database-url: the reads above)
  Patroni:                patronictl -c %[6]s list
  switch over:            patronictl -c %[6]s switchover --leader %[2]s --candidate %[3]s --force
  call either server:     grpcurl -cacert %[7]s/ca.pem -cert %[7]s/authority.pem -key %[7]s/authority-key.pem %[8]s grpc.health.v1.Health/Check
  refundctl (both):       TAXREFUND_CERT_DIR=%[7]s refundctl report -addr %[5]s
  stop:                   make ha-stop
`, *dir, roles.Leader, roles.Sync, c.DatabaseURL(hacluster.Database), c.ServerAddrs(), c.Nodes[0].ConfigFile(), c.CertDir(), c.ServerAddr(0), c.ReadDatabaseURL(hacluster.Database))
	return nil
}
