package loadgen

import (
	"fmt"
	"path/filepath"
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
	write(Result{Kind: "service", Scenario: "desk", Mode: "closed", Concurrency: 64, OpsPerSec: 400})
	var out strings.Builder
	if err := Report(&out, files); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{"issue #1", "50.0%", "issue #2", "70.0%", "issue #3", "30.0%", "issue median",
		"desk", "50.0%", "issue median: ratio 50.0% ≥ 45%: met", "desk: settlements ratio 50.0% ≥ 40%: met"} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
}
