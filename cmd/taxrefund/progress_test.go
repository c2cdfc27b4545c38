package main

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer safe for the progress goroutine and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestProgressOnTerminal: on a terminal the line shows done/total, the per cent and a
// rate, rewritten in place, and is cleared at the end.
func TestProgressOnTerminal(t *testing.T) {
	var out lockedBuffer
	p := startProgress(&out, true, "verify: seals checked", 1000, 20*time.Millisecond)
	p.add(250)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "250/1000") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	p.add(250)
	for !strings.Contains(out.String(), "500/1000") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	p.end()
	got := out.String()
	if !regexp.MustCompile(`\r\x1b\[Kverify: seals checked: 500/1000 \(50%\), [0-9]+/s`).MatchString(got) {
		t.Errorf("progress output %q: no line with 500/1000 (50%%) and a rate", got)
	}
	if !strings.HasSuffix(got, "\r\x1b[K") {
		t.Errorf("progress output %q does not end by clearing its line", got)
	}
}

// TestProgressOffWhenNotTerminal: piped or redirected (here a buffer and a file), nothing
// is written however long the operation runs.
func TestProgressOffWhenNotTerminal(t *testing.T) {
	var out lockedBuffer
	if isTerminal(&out) {
		t.Fatal("a buffer is a terminal")
	}
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Fatal("a regular file is a terminal")
	}
	p := startProgress(&out, isTerminal(&out), "verify: seals checked", 10, 5*time.Millisecond)
	p.add(5)
	time.Sleep(50 * time.Millisecond)
	p.end()
	if out.String() != "" {
		t.Errorf("progress off a terminal wrote %q", out.String())
	}
}
