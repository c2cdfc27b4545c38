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
			Latency: Latency{P99: 40}, ServerPeakRSSMiB: 90})
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
		"desk", "50.0%", "issue median: ratio 50.0% ≥ 45%: met", "desk: settlements ratio 50.0% ≥ 40%: met",
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
