package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestHelp: -h and --help exit 0 on the command and every subcommand, and each subcommand
// lists its own flags only (migrate has no -addr, serve has it).
func TestHelp(t *testing.T) {
	getenv := func(string) string { return "" }
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}} {
		var out bytes.Buffer
		if err := run(context.Background(), append([]string{"taxrefund"}, args...), getenv, &out, &out); err != nil || !strings.Contains(out.String(), "commands:") {
			t.Errorf("taxrefund %v: %v, %q; want the usage and no error", args, err, out.String())
		}
	}
	flags := map[string][]string{
		"migrate": {"-database-url"},
		"seed":    {"-database-url"},
		"certs":   {"-cert-dir", "-pii-keys"},
		// The identity register's subcommands.
		"certs issue":     {"-uri", "-name", "-cert-dir", "-by"},
		"certs rotate":    {"-uri", "-name", "-cert-dir", "-reason", "-by"},
		"certs revoke":    {"-serial", "-uri", "-reason", "-by"},
		"certs suspend":   {"-uri", "-reason", "-by"},
		"certs reinstate": {"-uri", "-reason", "-by"},
		"keys":            {"-journal-key", "-journal-pubkeys", "-rotate"},
		"serve":           {"-addr", "-cert-dir", "-pii-keys", "-seal-interval", "-journal-key", "-journal-pubkeys", "-checkpoints", "-checkpoint-interval", "-services", "-db-role"},
		"expire":          {"-pii-keys", "-db-role"},
		"rekey":           {"-pii-keys", "-db-role"},
		"verify":          {"-database-url", "-journal-pubkeys", "-checkpoints"},
	}
	for cmd, want := range flags {
		for _, h := range []string{"-h", "--help"} {
			var out bytes.Buffer
			args := append(append([]string{"taxrefund"}, strings.Fields(cmd)...), h)
			if err := run(context.Background(), args, getenv, &out, &out); err != nil {
				t.Errorf("taxrefund %s %s: %v, want no error", cmd, h, err)
			}
			for _, f := range want {
				if !strings.Contains(out.String(), f+" ") && !strings.Contains(out.String(), f+"\n") { // a bool flag ends its line
					t.Errorf("taxrefund %s %s does not list %s:\n%s", cmd, h, f, out.String())
				}
			}
			if cmd != "serve" && strings.Contains(out.String(), "-addr ") {
				t.Errorf("taxrefund %s %s lists serve's -addr:\n%s", cmd, h, out.String())
			}
		}
	}
	if err := run(context.Background(), []string{"taxrefund", "migrate", "-addr", "x"}, getenv, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Error("taxrefund migrate -addr x: no error, want an unknown flag")
	}
	if err := run(context.Background(), []string{"taxrefund", "certs", "revoke", "-pii-keys", "x"}, getenv, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Error("taxrefund certs revoke -pii-keys x: no error, want an unknown flag")
	}
	if out := (&bytes.Buffer{}); run(context.Background(), []string{"taxrefund", "certs", "issue", "-h"}, getenv, out, out) != nil || strings.Contains(out.String(), "-pii-keys ") {
		t.Errorf("taxrefund certs issue -h lists the development set's -pii-keys:\n%s", out)
	}
}
