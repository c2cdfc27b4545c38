package main_test

// TestREADME runs the README's shell blocks, in order, in one bash shell, as a user
// pastes them into a second terminal while `make run` serves.
//
// The convention, for whoever adds a block to README.md:
//   - a block fenced as ```sh is run, in document order, in the same shell (a function
//     or variable set in one block is there in the next ones), with `set -eo pipefail`:
//     every command must succeed;
//   - a line "#=> text" inside such a block is an expectation: the block's output (stdout
//     and stderr) must contain text;
//   - a block that must not run here (it starts servers, needs root or another machine,
//     or is `make run` itself) is fenced as ```sh-norun; output samples as ```text.
//
// The blocks run in the checkout's root against a server started as `make run` starts it
// (migrate, seed, certs, keys, seed -demo-forms, serve), on a database of the test's own and on
// a port in 52000-52099. Before running, "localhost:50051" in the blocks becomes that
// server's address, "C=.data/certs" its certificate directory, ".data/bin/taxrefund" the
// binary the test built, and ".data/bin/pgenv -- " nothing (DATABASE_URL is set);
// DATABASE_URL, TAXREFUND_ADDR and TAXREFUND_CERT_DIR point at them too.

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"taxrefund/internal/dbtest"
)

// readmeBlock is a ```sh block of the README: its first line number and its text.
type readmeBlock struct {
	line   int
	text   string
	expect []string
}

// readmeBlocks returns the README's ```sh blocks in order.
func readmeBlocks(t *testing.T, path string) []readmeBlock {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		blocks []readmeBlock
		cur    *readmeBlock
		fence  bool
		n      int
	)
	s := bufio.NewScanner(f)
	for s.Scan() {
		n++
		line := s.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case !fence && strings.HasPrefix(trimmed, "```"):
			fence = true
			if strings.TrimSpace(strings.TrimPrefix(trimmed, "```")) == "sh" {
				cur = &readmeBlock{line: n + 1}
			}
		case fence && trimmed == "```":
			fence = false
			if cur != nil {
				blocks = append(blocks, *cur)
				cur = nil
			}
		case cur != nil:
			cur.text += line + "\n"
			if want, ok := strings.CutPrefix(trimmed, "#=> "); ok {
				cur.expect = append(cur.expect, want)
			}
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return blocks
}

// readmeAddr returns a free loopback address with a port in 52000-52099.
func readmeAddr(t *testing.T) string {
	t.Helper()
	for port := 52000; port < 52100; port++ {
		lis, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		addr := lis.Addr().String()
		if err := lis.Close(); err != nil {
			t.Fatal(err)
		}
		return addr
	}
	t.Fatal("no free port in 52000-52099")
	return ""
}

func TestREADME(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	blocks := readmeBlocks(t, filepath.Join(root, "README.md"))
	if len(blocks) < 5 {
		t.Fatalf("README.md has %d ```sh blocks; the walk-through has more", len(blocks))
	}

	dir := t.TempDir()
	bin := filepath.Join(dir, "taxrefund")
	if out, err := exec.Command(goTool(t), "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	url := dbtest.NewURL(t)
	certDir, piiKeys := filepath.Join(dir, "certs"), filepath.Join(dir, "pii.keys")
	addr := readmeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	env := append(append(os.Environ(), "DATABASE_URL="+url, "TAXREFUND_CERT_DIR="+certDir, "TAXREFUND_PII_KEYS="+piiKeys), journalEnv(dir)...)
	runBinary(t, env, bin, "migrate")
	runBinary(t, env, bin, "seed")
	runBinary(t, env, bin, "certs")
	runBinary(t, env, bin, "keys")
	runBinary(t, env, bin, "seed", "-demo-forms")
	logPath := filepath.Join(dir, "serve.log")
	srv := startChild(t, env, logPath, bin, "serve", "-addr", addr)
	for {
		if b, _ := os.ReadFile(logPath); strings.Contains(string(b), "msg=serving") {
			break
		}
		select {
		case <-srv.done:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("taxrefund serve exited:\n%s", b)
		case <-ctx.Done():
			t.Fatal("taxrefund serve is not serving")
		case <-time.After(100 * time.Millisecond):
		}
	}

	// One script: each block, then a marker with its number, so that the output can be
	// split by block and a failure names its block.
	var script strings.Builder
	script.WriteString("set -eo pipefail\n")
	for i, b := range blocks {
		text := strings.ReplaceAll(b.text, "localhost:50051", "localhost:"+port)
		text = strings.ReplaceAll(text, "C=.data/certs", "C="+certDir)
		text = strings.ReplaceAll(text, ".data/bin/pgenv -- ", "")
		text = strings.ReplaceAll(text, ".data/bin/taxrefund", bin)
		fmt.Fprintf(&script, "echo '@@block %d'\n%s\n", i, text)
	}
	script.WriteString("echo '@@done'\n")
	cmd := exec.CommandContext(ctx, "bash", "-c", script.String())
	cmd.Dir = root
	cmd.Env = append(env, "TAXREFUND_ADDR=localhost:"+port)
	out, runErr := cmd.CombinedOutput()

	parts := strings.Split(string(out), "@@block ")
	outputs := map[int]string{}
	last := -1
	for _, p := range parts[1:] {
		var i int
		if _, err := fmt.Sscanf(p, "%d", &i); err != nil {
			continue
		}
		outputs[i], last = p, i
	}
	if runErr != nil || !strings.Contains(string(out), "@@done") {
		b := blocks[max(last, 0)]
		t.Fatalf("README block at line %d failed (%v):\n%s\noutput:\n%s", b.line, runErr, b.text, outputs[last])
	}
	// The forms are sealed with the key file of `certs`: started with a fresh key file (what
	// deleting .data/ makes), the server refuses, naming the key ids and the key file.
	fresh := filepath.Join(dir, "fresh.keys")
	runBinary(t, env, bin, "certs", "-cert-dir", filepath.Join(dir, "fresh-certs"), "-pii-keys", fresh)
	refused := exec.CommandContext(ctx, bin, "serve", "-addr", readmeAddr(t), "-pii-keys", fresh)
	refused.Env = env
	if out, err := refused.CombinedOutput(); err == nil || !strings.Contains(string(out), fresh) || !strings.Contains(string(out), "k1") {
		t.Errorf("serve with a fresh key file over sealed forms: %v\n%s\nwant a refusal naming %s and key id k1", err, out, fresh)
	}

	for i, b := range blocks {
		for _, want := range b.expect {
			if !strings.Contains(outputs[i], want) {
				t.Errorf("README block at line %d: output lacks %q:\n%s", b.line, want, outputs[i])
			}
		}
	}
}
