// Command refundctl is the tax officials' client: monthly exports with a progress bar,
// the monthly report and the reconciliation.
//
//	refundctl export [-month 2026-10] [-format xlsx] [-o file or directory]
//	refundctl report [-month 2026-10] [-max-age 60s]
//	refundctl reconcile [-month 2026-10]
//	refundctl risk [-month 2026-10]
//	refundctl console [-cert customs-CKG.pem -key customs-CKG-key.pem]
//
// The month defaults to the previous calendar month in Asia/Shanghai. Exports go to the
// current directory unless -o says otherwise; the progress bar is drawn only when stderr
// is a terminal.
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
	"time"

	"golang.org/x/term"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"

	authorityv1 "taxrefund/api/taxrefund/authority/v1"
	consolev1 "taxrefund/api/taxrefund/console/v1"
	"taxrefund/internal/dial"
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
  export      write the monthly report as CSV or XLSX (progress on a terminal)
  report      print the monthly report and the journal's hash chain head
  reconcile   print the three-way reconciliation of a month
  risk        print a month's risk flags per store and rule, with their inspections
  console     print a one-time link (valid one minute) that signs the certificate's
              party into the browser console (customs, cashiers, officials)

The month defaults to the previous calendar month in Asia/Shanghai.

Run "refundctl <command> -h" for the flags.`

type options struct {
	addr, ca, cert, key string
	month, format, out  string
	unpaidDays          int
	// maxAge: the report may come from the server's cache, this old at most.
	maxAge time.Duration
	// progress: draw the export's progress bar (stderr is a terminal).
	progress bool
}

// shanghai is China Standard Time, which has had no daylight saving time since 1991.
var shanghai = time.FixedZone("Asia/Shanghai", 8*60*60)

// previousMonth is the calendar month before now's, in Asia/Shanghai, "YYYY-MM".
func previousMonth(now time.Time) string {
	t := now.In(shanghai)
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, shanghai).AddDate(0, -1, 0).Format("2006-01")
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		return errors.New(usage)
	}
	cmd := args[1]
	switch cmd {
	case "export", "report", "reconcile", "risk", "console":
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return nil
	default:
		return fmt.Errorf("unknown command %q\n%s", cmd, usage)
	}
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
	fs.StringVar(&o.addr, "addr", addr, "server address, or several comma-separated (calls spread over them, retried on UNAVAILABLE) (env TAXREFUND_ADDR)")
	fs.StringVar(&o.ca, "ca", filepath.Join(certDir, pki.CACertFile), "CA certificate")
	fs.StringVar(&o.cert, "cert", filepath.Join(certDir, "authority.pem"), "the official's client certificate")
	fs.StringVar(&o.key, "key", filepath.Join(certDir, "authority-key.pem"), "its private key")
	fs.StringVar(&o.month, "month", previousMonth(time.Now()), "month, YYYY-MM (default: the previous calendar month in Asia/Shanghai)")
	switch cmd {
	case "export":
		fs.StringVar(&o.format, "format", "xlsx", "csv or xlsx")
		fs.StringVar(&o.out, "o", ".", "output file, or a directory for the server's file name (taxrefund-report-YYYY-MM.xlsx)")
	case "report":
		fs.DurationVar(&o.maxAge, "max-age", 0, "accept figures up to this old (at most 1h) from the server's report cache, which then says so and as of when; 0: computed now")
	case "reconcile":
		fs.IntVar(&o.unpaidDays, "unpaid-days", 30, "a confirmed form unpaid this many days is an exception")
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: refundctl %s [flags]\n\nflags:\n", cmd)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags come before arguments: refundctl %s -h)", fs.Arg(0), cmd)
	}
	if _, err := time.Parse("2006-01", o.month); err != nil && cmd != "console" {
		return fmt.Errorf("-month %q: want YYYY-MM", o.month)
	}
	if o.maxAge < 0 || o.maxAge > time.Hour {
		return fmt.Errorf("-max-age %v: want 0 (computed now) to 1h", o.maxAge)
	}
	o.progress = isTerminal(stderr)
	addrs, err := dial.Addresses(o.addr)
	if err != nil {
		return fmt.Errorf("-addr %q: %w", o.addr, err)
	}
	host, _ := dial.Host(o.addr)
	first, _, _ := net.SplitHostPort(addrs[0])
	tlsConf, err := pki.ClientTLSConfig(o.ca, o.cert, o.key, first)
	if err != nil {
		return err
	}
	if host == "" {
		tlsConf.ServerName = "" // servers on several hosts: each is checked against its own name
	}
	// The call's trace starts here and continues in the server (exported when the OTEL_*
	// environment asks for it).
	tp, err := tracing.New(ctx, getenv, "refundctl")
	if err != nil {
		return err
	}
	defer func() { _ = tp.Shutdown(context.WithoutCancel(ctx)) }()
	conn, err := dial.NewClient(o.addr, tlsConf,
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(tp), otelgrpc.WithPropagators(tracing.Propagator))))
	if err != nil {
		return err
	}
	defer conn.Close()
	if cmd == "console" {
		return signInLink(ctx, consolev1.NewConsoleServiceClient(conn), stdout)
	}
	client := authorityv1.NewAuthorityServiceClient(conn)
	switch cmd {
	case "export":
		return export(ctx, client, o, stdout, stderr)
	case "report":
		return printReport(ctx, client, o, stdout)
	case "risk":
		return printRisk(ctx, client, o, stdout)
	default:
		return printReconciliation(ctx, client, o, stdout)
	}
}
