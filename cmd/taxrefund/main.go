// Command taxrefund is the departure tax refund service.
//
//	taxrefund migrate   apply database migrations
//	taxrefund seed      load the demo data (idempotent)
//	taxrefund certs     create a development CA, server and party certificates, and a PII key file
//	taxrefund certs issue|rotate|revoke|suspend|reinstate
//	                    change the identity register: one person's or point's certificate
//	taxrefund keys      create (or -rotate) the key that signs the hash chains' checkpoints
//	taxrefund serve     serve gRPC
//	taxrefund expire    expire overdue forms once, now
//	taxrefund rekey     re-encrypt document numbers with the current PII key
//	taxrefund verify    verify the journal's and the audit log's hash chains against the checkpoints
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"taxrefund/internal/tracing"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "taxrefund:", err)
		os.Exit(1)
	}
}

const usage = `usage: taxrefund <command> [flags]

commands:
  migrate   apply database migrations
  seed      load the demo data (idempotent)
  certs     create a development CA, server and party certificates and a PII key file
  certs issue|rotate|revoke|suspend|reinstate
            register an official, officer, cashier or refund point and issue its
            certificate; give it a new one; revoke a certificate or a person;
            suspend or reinstate a person
  keys      create (or -rotate) the key that signs the hash chains' checkpoints
  serve     serve gRPC
  expire    expire overdue forms once, now
  rekey     re-encrypt document numbers with the current PII key (after adding a key)
  verify    verify the journal's and the audit log's hash chains and their signed checkpoints

Run "taxrefund <command> -h" for the flags.`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		return fmt.Errorf("no command\n%s", usage)
	}
	// Every line logged with a call's context names the call's trace (trace_id).
	log := slog.New(tracing.LogHandler(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))
	cmd, rest := args[1], args[2:]
	switch cmd {
	case "migrate", "seed", "certs", "keys", "serve", "expire", "rekey", "verify":
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return nil
	default:
		return fmt.Errorf("unknown command %q\n%s", cmd, usage)
	}
	name := cmd
	if cmd == "certs" && len(rest) > 0 && slices.Contains(certsSubcommands, rest[0]) {
		name, rest = "certs "+rest[0], rest[1:]
	}
	cfg, err := parseConfig(name, rest, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	switch cmd {
	case "migrate":
		return migrate(ctx, cfg, log)
	case "seed":
		return seed(ctx, cfg, log)
	case "certs":
		return certs(ctx, cfg, log, stdout)
	case "keys":
		return journalKeys(cfg, log, stdout)
	case "expire":
		return expireOnce(ctx, cfg, log, stdout)
	case "rekey":
		return rekey(ctx, cfg, log, stdout)
	case "verify":
		return verifyChains(ctx, cfg, stdout, stderr)
	default:
		return serve(ctx, cfg, log)
	}
}
