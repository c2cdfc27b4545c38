package metrics

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestDeployNamesExist: every taxrefund_* metric that the alerting rules and the Grafana
// dashboard under deploy/ query is one the service exposes, so that a renamed metric
// cannot leave an alert silently never firing.
func TestDeployNamesExist(t *testing.T) {
	m := New(nil, 0)
	descs := make(chan *prometheus.Desc, 1000)
	m.Registry.Describe(descs)
	close(descs)
	known := map[string]bool{}
	nameRe := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range descs {
		if s := nameRe.FindStringSubmatch(d.String()); s != nil {
			known[s[1]] = true
		}
	}
	if !known["taxrefund_forms_total"] || !known["grpc_server_handled_total"] {
		t.Fatalf("the registry does not describe the expected metrics: %v", known)
	}
	used := regexp.MustCompile(`\b(taxrefund_[a-z0-9_]+|grpc_server_[a-z0-9_]+)`)
	for _, file := range []string{"../../deploy/prometheus/alerts.yml", "../../deploy/grafana/taxrefund.json"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, name := range used.FindAllString(string(b), -1) {
			base := name
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				base = strings.TrimSuffix(base, suffix)
			}
			n++
			if !known[base] {
				t.Errorf("%s queries %s, which the service does not expose", file, name)
			}
		}
		if n == 0 {
			t.Errorf("%s names no metric of the service", file)
		}
	}
}
