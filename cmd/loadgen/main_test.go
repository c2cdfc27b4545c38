package main

import (
	"bytes"
	"context"
	"testing"
)

// TestHelp: -h and --help exit 0 on loadgen and every subcommand.
func TestHelp(t *testing.T) {
	getenv := func(string) string { return "" }
	for _, cmd := range []string{"-h", "--help", "setup", "baseline", "run", "fill", "check", "report", "reset-db"} {
		for _, h := range []string{"-h", "--help"} {
			args := []string{"loadgen", cmd, h}
			if cmd[0] == '-' {
				args = []string{"loadgen", cmd}
			}
			var out bytes.Buffer
			if err := run(context.Background(), args, getenv, &out, &out); err != nil || out.Len() == 0 {
				t.Errorf("loadgen %v: %v, %d bytes of help; want help and no error", args[1:], err, out.Len())
			}
		}
	}
}
