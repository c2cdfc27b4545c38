package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// Result is one measurement: a service run or a pgbench baseline. `loadgen report`
// pairs them by scenario and label.
type Result struct {
	Kind     string `json:"kind"` // "service" or "baseline"
	Scenario string `json:"scenario"`
	// Label tells measurements of one scenario apart, e.g. the growth step "1M".
	Label       string  `json:"label,omitempty"`
	Mode        string  `json:"mode"` // closed, open or pgbench
	Concurrency int     `json:"concurrency"`
	Rate        float64 `json:"rate,omitempty"`
	Seconds     float64 `json:"seconds"`
	// Ops are the units counted for throughput: forms issued (issue), settlements (desk),
	// pgbench transactions (baselines).
	Ops       int64   `json:"ops"`
	OpsPerSec float64 `json:"ops_per_s"`
	// Latency is of the counted unit: an IssueForm call, a whole desk visit (find, verify,
	// settle), a pgbench transaction. Open loop: from the arrival's due time.
	Latency Latency `json:"latency"`
	// Errors counts failed calls by "Method/Code".
	Errors  map[string]int64 `json:"errors,omitempty"`
	Methods []MethodResult   `json:"methods,omitempty"`
	Late    int64            `json:"late,omitempty"`
	Dropped int64            `json:"dropped,omitempty"`
	Offered int64            `json:"offered,omitempty"`
	CPU     CPUSplit         `json:"cpu"`
	// ServerPeakRSSMiB is the server's peak resident memory during the run (VmHWM).
	ServerPeakRSSMiB float64  `json:"server_peak_rss_mib,omitempty"`
	ServerRSSMiB     float64  `json:"server_rss_mib,omitempty"`
	ExistingForms    int64    `json:"existing_forms"`
	Started          string   `json:"started"`
	Notes            []string `json:"notes,omitempty"`
	// Cost is what PostgreSQL wrote per form, when measured (-cost).
	Cost *Cost `json:"cost,omitempty"`
}

// MethodResult is one RPC's figures within a run.
type MethodResult struct {
	Method    string  `json:"method"`
	OK        int64   `json:"ok"`
	Failed    int64   `json:"failed"`
	OKPerSec  float64 `json:"ok_per_s"`
	Latency   Latency `json:"latency"`
	ErrorRate float64 `json:"error_rate"`
}

// Write prints r as text to w, and as JSON to path if path is not empty.
func (r Result) Write(w io.Writer, path string) error {
	r.Text(w)
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Text prints r for a person.
func (r Result) Text(w io.Writer) {
	what := r.Kind + " " + r.Scenario
	if r.Label != "" {
		what += " [" + r.Label + "]"
	}
	fmt.Fprintf(w, "\n== %s: %s loop, %d callers", what, r.Mode, r.Concurrency)
	if r.Rate > 0 {
		fmt.Fprintf(w, ", %.0f/s offered", r.Rate)
	}
	fmt.Fprintf(w, ", %.1fs measured, %d existing forms\n", r.Seconds, r.ExistingForms)
	fmt.Fprintf(w, "throughput  %.1f %s/s (%d)\n", r.OpsPerSec, r.unit(), r.Ops)
	fmt.Fprintf(w, "latency     p50 %s  p95 %s  p99 %s  p99.9 %s  max %s  mean %s\n",
		ms(r.Latency.P50), ms(r.Latency.P95), ms(r.Latency.P99), ms(r.Latency.P999), ms(r.Latency.Max), ms(r.Latency.Mean))
	for _, m := range r.Methods {
		fmt.Fprintf(w, "  %-13s %8d ok %6d failed  %8.1f/s  p50 %s  p95 %s  p99 %s  p99.9 %s\n", m.Method, m.OK, m.Failed, m.OKPerSec,
			ms(m.Latency.P50), ms(m.Latency.P95), ms(m.Latency.P99), ms(m.Latency.P999))
	}
	if len(r.Errors) > 0 {
		fmt.Fprintf(w, "errors      %s\n", formatErrors(r.Errors))
	}
	if r.Mode == string(Open) {
		fmt.Fprintf(w, "open loop   %d offered, %d late (waited > 10ms for a caller), %d dropped (queue full)\n", r.Offered, r.Late, r.Dropped)
	}
	if r.Kind == "service" {
		fmt.Fprintf(w, "server      %.1f CPU s, peak RSS %.1f MiB (now %.1f MiB)\n", r.CPU.Server, r.ServerPeakRSSMiB, r.ServerRSSMiB)
	}
	fmt.Fprintf(w, "cpu split   %s\n", r.CPU.String(r.Kind))
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note        %s\n", n)
	}
	if c := r.Cost; c != nil {
		fmt.Fprintf(w, "per form    %s (%d forms)\n", c, c.Ops)
		fmt.Fprintf(w, "rows/form   %s\n", c.tables())
		for _, n := range c.Notes {
			fmt.Fprintf(w, "cost note   %s\n", n)
		}
	}
}

func (r Result) unit() string {
	switch {
	case r.Kind == "baseline":
		return "tx"
	case r.Scenario == "desk":
		return "settlements"
	case r.Scenario == "immediate":
		return "immediate refunds"
	case r.Scenario == "report":
		return "reports"
	default:
		return "forms"
	}
}

// String shows the split as shares of the machine's capacity over the window.
func (c CPUSplit) String(kind string) string {
	capacity := c.Seconds * float64(max(c.Cores, 1))
	if capacity == 0 {
		return "-"
	}
	pct := func(s float64) string { return fmt.Sprintf("%.0f%%", 100*s/capacity) }
	client := "loadgen"
	if kind == "baseline" {
		client = "pgbench"
	}
	parts := []string{fmt.Sprintf("of %d cores × %.1fs: busy %s", c.Cores, c.Seconds, pct(c.Busy))}
	if kind == "service" {
		parts = append(parts, "server "+pct(c.Server))
	}
	parts = append(parts, "postgres "+pct(c.Postgres), "pg background "+pct(c.PostgresBackground),
		client+" "+pct(c.Client), "other "+pct(c.Other))
	return strings.Join(parts, ", ")
}

func ms(v float64) string {
	switch {
	case v == 0:
		return "-"
	case v < 10:
		return fmt.Sprintf("%.2fms", v)
	case v < 1000:
		return fmt.Sprintf("%.1fms", v)
	default:
		return fmt.Sprintf("%.2fs", v/1000)
	}
}

func formatErrors(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || m[keys[i]] == m[keys[j]] && keys[i] < keys[j] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func totalErrors(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

func nowStamp() string { return time.Now().UTC().Format(time.RFC3339) }
