package hacluster_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// haT is the HA test's *testing.T that also keeps every failure it reports, so that the
// end of the output says them again. The test's output is long (Patroni's steps, the
// servers' logs): a failure reported minutes before the end is the part of it most
// easily cut off when only the output's head and tail are kept.
type haT struct {
	*testing.T
	mu       sync.Mutex
	failures []string
}

// recordFailures wraps t; what the wrapper reports as failed is repeated, in order, when
// the test ends, after everything its cleanups print (register it before them).
func recordFailures(t *testing.T) *haT {
	h := &haT{T: t}
	t.Cleanup(func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if len(h.failures) == 0 {
			return
		}
		t.Logf("%d failure(s) reported above, again:", len(h.failures))
		for i, f := range h.failures {
			t.Logf("  %d. %s", i+1, f)
		}
	})
	return h
}

func (h *haT) keep(msg string) {
	h.mu.Lock()
	h.failures = append(h.failures, msg)
	h.mu.Unlock()
}

func (h *haT) Errorf(format string, args ...any) {
	h.T.Helper()
	h.keep(fmt.Sprintf(format, args...))
	h.T.Errorf(format, args...)
}

func (h *haT) Error(args ...any) {
	h.T.Helper()
	h.keep(strings.TrimSuffix(fmt.Sprintln(args...), "\n")) // as T.Error formats them
	h.T.Error(args...)
}

func (h *haT) Fatalf(format string, args ...any) {
	h.T.Helper()
	h.keep(fmt.Sprintf(format, args...))
	h.T.Fatalf(format, args...)
}

func (h *haT) Fatal(args ...any) {
	h.T.Helper()
	h.keep(strings.TrimSuffix(fmt.Sprintln(args...), "\n")) // as T.Fatal formats them
	h.T.Fatal(args...)
}
