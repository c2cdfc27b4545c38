package loadgen

import (
	"regexp"
	"testing"
	"time"
)

// pgbench replaces ":name" wherever it appears, string literals included; in prepared
// mode that breaks the statement (e.g. 'form:' || n || ':issue' became '...$6'). The
// scripts' literals must never put a letter or an underscore right after a colon.
func TestScriptsHaveNoVariablesInLiterals(t *testing.T) {
	literal := regexp.MustCompile(`'[^']*'`)
	variable := regexp.MustCompile(`:[A-Za-z_]`)
	for name, script := range map[string]string{"issue": issueScript, "immediate": immediateScript, "desk": deskScript, "settle": settleScript} {
		for _, lit := range literal.FindAllString(stripComments(script), -1) {
			if variable.MatchString(lit) {
				t.Errorf("%s.pgbench: literal %s would be taken for a pgbench variable", name, lit)
			}
		}
	}
}

func stripComments(s string) string {
	return regexp.MustCompile(`(?m)--.*$`).ReplaceAllString(s, "")
}

func TestParsePgbench(t *testing.T) {
	out := `pgbench (15.20 (Debian 15.20-0+deb12u1))
transaction type: issue.pgbench
scaling factor: 1
query mode: prepared
number of clients: 64
number of threads: 2
maximum number of tries: 1
duration: 20 s
number of transactions actually processed: 15213
number of failed transactions: 3 (0.020%)
latency average = 80.436 ms
initial connection time = 124.497 ms
tps = 756.534120 (without initial connection time)
`
	run, err := parsePgbench(out, pgbenchRun{})
	if err != nil {
		t.Fatal(err)
	}
	if run.tps != 756.534120 || run.transactions != 15213 || run.failed != 3 {
		t.Errorf("parsed %+v", run)
	}
	if _, err := parsePgbench("pgbench: error: connection refused\n", pgbenchRun{}); err == nil {
		t.Error("output without a tps line must be an error")
	}
}

func TestPerClient(t *testing.T) {
	// 1000 tx/s for 20s over 64 clients: 313 each (rounded up).
	if got := perClient(1000, 20*time.Second, 64); got != 313 {
		t.Errorf("perClient = %d, want 313", got)
	}
	if got := perClient(1, time.Second, 64); got != 1 {
		t.Errorf("perClient = %d, want at least 1", got)
	}
}
