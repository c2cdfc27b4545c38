// Command refundctl is the tax officials' client: monthly exports with a progress bar,
// the monthly report and the reconciliation.
//
//	refundctl export -month 2026-10 -format xlsx [-o file]
//	refundctl report -month 2026-10
//	refundctl reconcile -month 2026-10
//
// It authenticates with the official's client certificate (-cert, -key) issued by the
// authority's CA (-ca); defaults are the development certificates of `make run`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	authorityv1 "taxrefund/api/taxrefund/authority/v1"
	"taxrefund/internal/pki"
	"taxrefund/internal/tracing"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "refundctl:", err)
		os.Exit(1)
	}
}

const usage = `usage: refundctl <command> [flags]

commands:
  export      write the monthly report as CSV or XLSX, with progress
  report      print the monthly report
  reconcile   print the three-way reconciliation of a month

Run "refundctl <command> -h" for the flags.`

type options struct {
	addr, ca, cert, key string
	month, format, out  string
	unpaidDays          int
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		return errors.New(usage)
	}
	cmd := args[1]
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	certDir := getenv("TAXREFUND_CERT_DIR")
	if certDir == "" {
		certDir = ".data/certs"
	}
	addr := getenv("TAXREFUND_ADDR")
	if addr == "" {
		addr = "localhost:50051"
	}
	var o options
	fs.StringVar(&o.addr, "addr", addr, "server address (env TAXREFUND_ADDR)")
	fs.StringVar(&o.ca, "ca", filepath.Join(certDir, pki.CACertFile), "CA certificate")
	fs.StringVar(&o.cert, "cert", filepath.Join(certDir, "authority.pem"), "the official's client certificate")
	fs.StringVar(&o.key, "key", filepath.Join(certDir, "authority-key.pem"), "its private key")
	fs.StringVar(&o.month, "month", "", "month, YYYY-MM")
	switch cmd {
	case "export":
		fs.StringVar(&o.format, "format", "xlsx", "csv or xlsx")
		fs.StringVar(&o.out, "o", "", "output file (default: the server's file name, in the current directory)")
	case "reconcile":
		fs.IntVar(&o.unpaidDays, "unpaid-days", 30, "a confirmed form unpaid this many days is an exception")
	case "report":
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return nil
	default:
		return fmt.Errorf("unknown command %q\n%s", cmd, usage)
	}
	if err := fs.Parse(args[2:]); err != nil {
		return err
	}
	if o.month == "" {
		return errors.New("-month is required (YYYY-MM)")
	}
	host, _, err := net.SplitHostPort(o.addr)
	if err != nil {
		return fmt.Errorf("-addr %q: %w", o.addr, err)
	}
	tlsConf, err := pki.ClientTLSConfig(o.ca, o.cert, o.key, host)
	if err != nil {
		return err
	}
	// The call's trace starts here and continues in the server (exported when the OTEL_*
	// environment asks for it).
	tp, err := tracing.New(ctx, getenv, "refundctl")
	if err != nil {
		return err
	}
	defer func() { _ = tp.Shutdown(context.WithoutCancel(ctx)) }()
	conn, err := grpc.NewClient(o.addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsConf)),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(tp), otelgrpc.WithPropagators(tracing.Propagator))))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := authorityv1.NewAuthorityServiceClient(conn)
	switch cmd {
	case "export":
		return export(ctx, client, o, stdout, stderr)
	case "report":
		return printReport(ctx, client, o, stdout)
	default:
		return printReconciliation(ctx, client, o, stdout)
	}
}
