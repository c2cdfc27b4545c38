package loadgen

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Rounds of a scenario are paired in order and summed up by the median round.
func TestReportPairsRoundsAndTakesTheMedian(t *testing.T) {
	dir := t.TempDir()
	var files []string
	write := func(r Result) {
		name := filepath.Join(dir, fmt.Sprintf("%02d.json", len(files)))
		if err := r.Write(&strings.Builder{}, name); err != nil {
			t.Fatal(err)
		}
		files = append(files, name)
	}
	for _, v := range []struct{ base, svc float64 }{{1000, 500}, {1000, 700}, {1000, 300}} {
		write(Result{Kind: "baseline", Scenario: "issue", Mode: "pgbench", Concurrency: 64, OpsPerSec: v.base})
		write(Result{Kind: "service", Scenario: "issue", Mode: "closed", Concurrency: 64, OpsPerSec: v.svc,
			Latency: Latency{P99: 40, Mean: 10 + v.svc/100}, ServerPeakRSSMiB: 90})
	}
	write(Result{Kind: "baseline", Scenario: "desk", Mode: "pgbench", Concurrency: 64, OpsPerSec: 800})
	write(Result{Kind: "service", Scenario: "desk", Mode: "closed", Concurrency: 64, OpsPerSec: 400,
		CPU: CPUSplit{Cores: 2, Seconds: 20, Busy: 40, Server: 11}})
	write(Result{Kind: "baseline", Scenario: "settle", Mode: "pgbench", Concurrency: 64, OpsPerSec: 1600})
	var out strings.Builder
	if err := Report(&out, files); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{"issue #1", "50.0%", "issue #2", "70.0%", "issue #3", "30.0%", "issue median",
		"desk", "50.0%", "issue median: ratio 50.0% ≥ 45%: met", "p99 ÷ mean 2.7 ≤ 3: met", "desk: settlements ratio 50.0% ≥ 50%: met",
		"desk/settle-only: settlements ratio 25.0% (for comparison only"} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	// The settle-only row reads the desk service against its own baseline: 400 / 1600.
	row := regexp.MustCompile(`(?m)^\s*desk/settle-only\s+0\s+64\s+1600\s+400\s+25\.0%`)
	if !row.MatchString(text) {
		t.Errorf("no settle-only row pairing the desk service with the settle baseline:\n%s", text)
	}
	// The desk service's CPU split is printed once, under the desk row.
	if n := strings.Count(text, "service   of 2 cores"); n != 1 || strings.Contains(text, "desk/settle-only service") {
		t.Errorf("the desk service's CPU split %d times, want once under desk:\n%s", n, text)
	}
}

// The floor's rounds are read with the issue rounds of the same number: own baseline ÷
// floor and IssueForm ÷ floor per round, the median held to 45%; the cost runs are listed
// per form and kept out of the targets; one month's report is compared across growth steps.
func TestReportReadsIssueAgainstTheFloor(t *testing.T) {
	dir := t.TempDir()
	var files []string
	write := func(r Result) {
		name := filepath.Join(dir, fmt.Sprintf("%02d.json", len(files)))
		if err := r.Write(&strings.Builder{}, name); err != nil {
			t.Fatal(err)
		}
		files = append(files, name)
	}
	for _, v := range []struct{ floor, base, svc float64 }{{2000, 1000, 500}, {2500, 1000, 1250}} {
		write(Result{Kind: "baseline", Scenario: "floor", Mode: "pgbench", Concurrency: 64, OpsPerSec: v.floor})
		write(Result{Kind: "baseline", Scenario: "issue", Mode: "pgbench", Concurrency: 64, OpsPerSec: v.base})
		write(Result{Kind: "service", Scenario: "issue", Mode: "closed", Concurrency: 64, OpsPerSec: v.svc})
	}
	write(Result{Kind: "baseline", Scenario: "issue", Label: CostLabel, Mode: "pgbench", Concurrency: 1, OpsPerSec: 90,
		Cost: &Cost{Ops: 200, Rows: 19.6, IndexEntries: 30.3, FKChecks: 10.6, TriggerCalls: 5, WALRecords: 57, WALBytes: 6819,
			ByTable: map[string]float64{"forms": 1, "form_lines": 3}}})
	write(Result{Kind: "service", Scenario: "issue", Label: CostLabel, Mode: "closed", Concurrency: 1, OpsPerSec: 10})
	write(Result{Kind: "service", Scenario: "report", Label: "0", Mode: "closed", Concurrency: 1, Latency: Latency{P50: 500}})
	write(Result{Kind: "service", Scenario: "report", Label: "1000000", Mode: "closed", Concurrency: 1, Latency: Latency{P50: 600}})
	var out strings.Builder
	if err := Report(&out, files); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, re := range []string{
		`(?m)^\s*#1\s+2000\s+1000\s+500\s+50\.0%\s+25\.0%`,
		`(?m)^\s*#2\s+2500\s+1000\s+1250\s+40\.0%\s+50\.0%`,
		`issue vs floor: IssueForm ÷ floor 25\.0% \(median of 2 rounds, range 25\.0–50\.0%\) ≥ 45%: MISSED`,
		`baseline issue\s+1 callers, 200 forms: rows 19\.6, index entries 30\.3, FK checks 10\.6, trigger calls 5\.0`,
		`rows by table: form_lines 3\.00, forms 1\.00`,
		`report growth: one month's report p50 600\.0ms .* vs 500\.0ms .* \(\+20\.0%\), within 10%: MISSED`,
	} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("report lacks %s:\n%s", re, text)
		}
	}
	// The one-caller cost pair is no growth step of issue.
	if strings.Contains(text, "growth: ratio") {
		t.Errorf("the cost runs were read as a growth step:\n%s", text)
	}
}

// The CPU per form of each round, and IssueForm's ceiling if PostgreSQL cost what it costs
// the floor: 2 cores ÷ (0.4 + 0.6 + 0.2 ms) = 1,667 forms/s, 41.7% of a 4,000 tx/s floor.
func TestReportSaysTheCPUPerForm(t *testing.T) {
	dir := t.TempDir()
	var files []string
	write := func(r Result) {
		name := filepath.Join(dir, fmt.Sprintf("%02d.json", len(files)))
		if err := r.Write(&strings.Builder{}, name); err != nil {
			t.Fatal(err)
		}
		files = append(files, name)
	}
	write(Result{Kind: "baseline", Scenario: "floor", Mode: "pgbench", Concurrency: 64, Ops: 80000, OpsPerSec: 4000,
		CPU: CPUSplit{Cores: 2, Seconds: 20, Postgres: 32}})
	write(Result{Kind: "baseline", Scenario: "issue", Mode: "pgbench", Concurrency: 64, Ops: 26000, OpsPerSec: 1300,
		CPU: CPUSplit{Cores: 2, Seconds: 20, Postgres: 33.8}})
	write(Result{Kind: "service", Scenario: "issue", Mode: "closed", Concurrency: 64, Ops: 20000, OpsPerSec: 1000,
		CPU: CPUSplit{Cores: 2, Seconds: 20, Server: 12, Postgres: 24, Client: 4}})
	var out strings.Builder
	if err := Report(&out, files); err != nil {
		t.Fatal(err)
	}
	want := "#1  floor: postgres 0.40; own baseline: postgres 1.30; IssueForm: server 0.60, postgres 1.20, loadgen 0.20 (2.00 in all); " +
		"if PostgreSQL cost the floor's, IssueForm ≤ 1667 forms/s = 42% of the floor"
	if !strings.Contains(out.String(), want) {
		t.Errorf("report lacks %q:\n%s", want, out.String())
	}
}
