// Command loadgen benchmarks the taxrefund service against PostgreSQL's own ceiling on
// the same machine (see BENCH.md; `make bench` runs it all).
//
//	loadgen setup      register the bench stores, ledger accounts and client certificates
//	loadgen baseline   pgbench: one round trip writing what the service writes
//	loadgen run        load the service over mTLS gRPC (closed or open loop)
//	loadgen fill       COPY existing forms for the growth measurement
//	loadgen check      the ledger invariants and double payouts
//	loadgen report     one table from the -json results
//	loadgen reset-db   drop and recreate a taxrefund_bench* database
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}
