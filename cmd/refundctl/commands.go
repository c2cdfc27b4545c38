package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	authorityv1 "taxrefund/api/taxrefund/authority/v1"
	consolev1 "taxrefund/api/taxrefund/console/v1"
	settlementv1 "taxrefund/api/taxrefund/settlement/v1"
)

// export streams the report into a file (written to a temporary name, renamed when
// complete): o.out, or the server's file name in the directory o.out. It draws a
// progress bar on stderr when stderr is a terminal.
func export(ctx context.Context, c authorityv1.AuthorityServiceClient, o options, stdout, stderr io.Writer) error {
	format := map[string]authorityv1.ExportFormat{"csv": authorityv1.ExportFormat_EXPORT_FORMAT_CSV, "xlsx": authorityv1.ExportFormat_EXPORT_FORMAT_XLSX}[strings.ToLower(o.format)]
	if format == authorityv1.ExportFormat_EXPORT_FORMAT_UNSPECIFIED {
		return fmt.Errorf("-format %q: csv or xlsx", o.format)
	}
	stream, err := c.ExportReport(ctx, &authorityv1.ExportReportRequest{Month: o.month, Format: format})
	if err != nil {
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	header := first.GetHeader()
	if header == nil {
		return errors.New("the server sent no export header")
	}
	// The server names the file; only its base name is used, in the directory the user gave.
	name := filepath.Base(header.GetFileName())
	if name == "." || name == "/" || name == ".." {
		return fmt.Errorf("the server sent an unusable file name %q", header.GetFileName())
	}
	path := o.out
	if path == "" {
		path = "."
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, name)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".refundctl-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	w := io.Discard
	if o.progress {
		w = stderr
	}
	bar := progress{w: w, total: header.GetSize(), started: time.Now()}
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			tmp.Close()
			return err
		}
		n, err := tmp.Write(msg.GetChunk())
		if err != nil {
			tmp.Close()
			return err
		}
		bar.add(int64(n))
	}
	bar.done()
	if err := tmp.Close(); err != nil {
		return err
	}
	if bar.got != header.GetSize() {
		return fmt.Errorf("export incomplete: %d of %d bytes", bar.got, header.GetSize())
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%d rows, %d bytes)\n", path, header.GetRows(), header.GetSize())
	printReadSource(stdout, header.GetReadSource())
	return nil
}

// progress draws "[#####     ]  50%  1.2 MB of 2.4 MB" on one line.
type progress struct {
	w       io.Writer
	total   int64
	got     int64
	started time.Time
	drawn   time.Time
}

func (p *progress) add(n int64) {
	p.got += n
	if time.Since(p.drawn) > 100*time.Millisecond {
		p.draw()
	}
}

func (p *progress) draw() {
	p.drawn = time.Now()
	pct := 100
	if p.total > 0 {
		pct = int(p.got * 100 / p.total)
	}
	const width = 30
	filled := pct * width / 100
	fmt.Fprintf(p.w, "\r[%s%s] %3d%%  %s of %s", strings.Repeat("#", filled), strings.Repeat(" ", width-filled), pct, size(p.got), size(p.total))
}

func (p *progress) done() {
	p.draw()
	fmt.Fprintf(p.w, "  %.1fs\n", time.Since(p.started).Seconds())
}

func size(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func printReport(ctx context.Context, c authorityv1.AuthorityServiceClient, o options, stdout io.Writer) error {
	req := &authorityv1.MonthlyReportRequest{Month: o.month}
	if o.maxAge > 0 {
		req.MaxAge = durationpb.New(o.maxAge)
	}
	r, err := c.MonthlyReport(ctx, req)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Report of %s\n", r.GetMonth())
	printReadSource(stdout, r.GetReadSource())
	fmt.Fprintln(stdout)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "dimension\tkey\tissued\teligible\tgross\tvoided\texpired\tpaid\tpaid gross\tfee\tnet\toutstanding\toutstanding gross\t")
	for _, x := range r.GetRows() {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%d\t%s\t\n", x.GetDimension(), x.GetKey(), x.GetFormsIssued(),
			x.GetEligibleAmount(), x.GetGrossRefund(), x.GetFormsVoided(), x.GetFormsExpired(), x.GetFormsPaid(), x.GetPaidGross(),
			x.GetPaidFee(), x.GetPaidNet(), x.GetFormsOutstanding(), x.GetOutstandingGross())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if h := r.GetJournalHead(); h != nil {
		fmt.Fprintf(stdout, "\njournal chain head: seal %d %s\n", h.GetSeq(), h.GetHash())
	} else {
		fmt.Fprintln(stdout, "\njournal chain head: none (nothing sealed yet)")
	}
	printCheckpoints(stdout, r.GetMonth(), r.GetCheckpoints())
	return nil
}

// printRisk prints the month's risk flags per store and rule.
func printRisk(ctx context.Context, c authorityv1.AuthorityServiceClient, o options, stdout io.Writer) error {
	r, err := c.RiskReport(ctx, &authorityv1.RiskReportRequest{Month: o.month})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Risk flags of %s\n\n", r.GetMonth())
	if len(r.GetRows()) == 0 {
		fmt.Fprintln(stdout, "no form was flagged")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "store\trule\tforms flagged\tinspections\tfailed")
	for _, x := range r.GetRows() {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\n", x.GetStoreCode(), x.GetRule(), x.GetFormsFlagged(), x.GetInspections(), x.GetFailed())
	}
	return tw.Flush()
}

// printReadSource says when a report was read from a replica, and its lag, or came from
// the server's cache (-max-age), and as of when (nothing when it was computed now from
// the primary).
func printReadSource(w io.Writer, rs *authorityv1.ReadSource) {
	if rs == nil {
		return
	}
	asOf := rs.GetAsOf().AsTime().UTC().Format(time.RFC3339)
	lag := rs.GetLag().AsDuration().Seconds()
	var where string
	switch {
	case rs.GetReplica():
		where = fmt.Sprintf("read from replica, lag %.1f s", lag)
	case rs.GetLag() != nil:
		where = fmt.Sprintf("read through the read pool from the primary, lag %.1f s", lag)
	default:
		where = "read from the primary"
	}
	if rs.GetCached() {
		fmt.Fprintf(w, "cached, as of %s (%s)\n", asOf, where)
		return
	}
	fmt.Fprintf(w, "%s (as of %s)\n", where, asOf)
}

// printCheckpoints prints a month's latest signed checkpoints (`taxrefund verify` checks
// the chains against them).
func printCheckpoints(w io.Writer, month string, cps []*settlementv1.Checkpoint) {
	if len(cps) == 0 {
		fmt.Fprintf(w, "checkpoints of %s: none signed\n", month)
		return
	}
	fmt.Fprintf(w, "checkpoints of %s (signed outside the database):\n", month)
	for _, c := range cps {
		fmt.Fprintf(w, "  %-8s seal %d %s  %s %s  key %s\n  %8s signature %s\n", c.GetChain(), c.GetSeq(), c.GetHead(), c.GetReason(),
			c.GetSignedAt().AsTime().UTC().Format(time.RFC3339), c.GetKeyId(), "", c.GetSignature())
	}
}

func printReconciliation(ctx context.Context, c authorityv1.AuthorityServiceClient, o options, stdout io.Writer) error {
	r, err := c.Reconcile(ctx, &authorityv1.ReconcileRequest{Month: o.month, UnpaidAfterDays: int32(o.unpaidDays)})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Reconciliation of %s\n", r.GetMonth())
	printReadSource(stdout, r.GetReadSource())
	fmt.Fprintln(stdout)
	for _, s := range r.GetSummary() {
		fmt.Fprintf(stdout, "  %-10s %8d forms  %14s\n", s.GetSide(), s.GetForms(), s.GetAmount())
	}
	fmt.Fprintf(stdout, "\nExceptions: %d\n", len(r.GetExceptions()))
	for _, e := range r.GetExceptions() {
		fmt.Fprintf(stdout, "  %-26s %s: %s\n", e.GetKind(), e.GetSubject(), e.GetReason())
	}
	fmt.Fprintln(stdout, "\nTrial balance (posted, at the end of the month):")
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "account\tdebits\tcredits\tbalance\t")
	for _, b := range r.GetTrialBalance() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", b.GetAccount(), b.GetDebits(), b.GetCredits(), b.GetBalance())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if v := r.GetInvariantViolations(); len(v) > 0 {
		fmt.Fprintf(stdout, "\nInvariant violations: %d\n", len(v))
		for _, x := range v {
			fmt.Fprintf(stdout, "  %s: %s\n", x.GetInvariant(), x.GetDetail())
		}
	} else {
		fmt.Fprintln(stdout, "\nInvariants: all hold.")
	}
	return nil
}

// signInLink prints a one-time console sign-in link for the certificate's party.
func signInLink(ctx context.Context, c consolev1.ConsoleServiceClient, stdout io.Writer) error {
	resp, err := c.CreateSignInLink(ctx, &consolev1.CreateSignInLinkRequest{})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, resp.GetUrl())
	fmt.Fprintf(stdout, "open it before %s (once only)\n", resp.GetExpiresAt().AsTime().In(shanghai).Format("15:04:05 MST"))
	return nil
}
