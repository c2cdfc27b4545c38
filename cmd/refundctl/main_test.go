package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	authorityv1 "taxrefund/api/taxrefund/authority/v1"
)

func TestPreviousMonth(t *testing.T) {
	for _, tt := range []struct {
		now  time.Time
		want string
	}{
		{time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC), "2026-11"},
		{time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC), "2025-12"},
		// 2026-03-31 16:30 UTC is 2026-04-01 00:30 in Shanghai: the previous month is March.
		{time.Date(2026, 3, 31, 16, 30, 0, 0, time.UTC), "2026-03"},
		{time.Date(2026, 3, 31, 15, 59, 0, 0, time.UTC), "2026-02"},
	} {
		if got := previousMonth(tt.now); got != tt.want {
			t.Errorf("previousMonth(%s) = %s, want %s", tt.now, got, tt.want)
		}
	}
}

// TestHelp: -h and --help exit 0 everywhere, each subcommand lists its own flags, and
// -month's help says what it defaults to.
func TestHelp(t *testing.T) {
	getenv := func(string) string { return "" }
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}} {
		var out bytes.Buffer
		if err := run(context.Background(), append([]string{"refundctl"}, args...), getenv, &out, &out); err != nil || !strings.Contains(out.String(), "previous calendar month") {
			t.Errorf("refundctl %v: %v, %q", args, err, out.String())
		}
	}
	for cmd, own := range map[string]string{"export": "-format", "report": "-max-age", "reconcile": "-unpaid-days", "risk": ""} {
		for _, h := range []string{"-h", "--help"} {
			var out bytes.Buffer
			if err := run(context.Background(), []string{"refundctl", cmd, h}, getenv, &out, &out); err != nil {
				t.Errorf("refundctl %s %s: %v", cmd, h, err)
			}
			s := out.String()
			if !strings.Contains(s, "previous calendar month in Asia/Shanghai") || (own != "" && !strings.Contains(s, own+" ")) {
				t.Errorf("refundctl %s %s:\n%s", cmd, h, s)
			}
			for _, other := range []string{"-format ", "-unpaid-days ", "-max-age "} {
				if other != own+" " && strings.Contains(s, other) {
					t.Errorf("refundctl %s %s lists another command's %s", cmd, h, other)
				}
			}
		}
	}
	if err := run(context.Background(), []string{"refundctl", "report", "-month", "2026-13"}, getenv, &bytes.Buffer{}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "YYYY-MM") {
		t.Errorf("refundctl report -month 2026-13: %v, want a YYYY-MM error", err)
	}
	for _, bad := range []string{"-1s", "2h"} {
		if err := run(context.Background(), []string{"refundctl", "report", "-max-age", bad}, getenv, &bytes.Buffer{}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "-max-age") {
			t.Errorf("refundctl report -max-age %s: %v, want a -max-age error", bad, err)
		}
	}
}

// TestPrintReadSource: a report computed now from the primary says nothing; one from a
// replica its lag; a cached one says so, as of when, and where it was read.
func TestPrintReadSource(t *testing.T) {
	asOf := timestamppb.New(time.Date(2026, 11, 2, 10, 15, 3, 0, time.UTC))
	for _, tt := range []struct {
		rs   *authorityv1.ReadSource
		want string
	}{
		{nil, ""},
		{&authorityv1.ReadSource{Replica: true, Lag: durationpb.New(400 * time.Millisecond), AsOf: asOf}, "read from replica, lag 0.4 s (as of 2026-11-02T10:15:03Z)\n"},
		{&authorityv1.ReadSource{AsOf: asOf}, "read from the primary (as of 2026-11-02T10:15:03Z)\n"},
		{&authorityv1.ReadSource{AsOf: asOf, Cached: true}, "cached, as of 2026-11-02T10:15:03Z (read from the primary)\n"},
		{&authorityv1.ReadSource{Replica: true, Lag: durationpb.New(2 * time.Second), AsOf: asOf, Cached: true}, "cached, as of 2026-11-02T10:15:03Z (read from replica, lag 2.0 s)\n"},
	} {
		var out bytes.Buffer
		printReadSource(&out, tt.rs)
		if out.String() != tt.want {
			t.Errorf("%v: %q, want %q", tt.rs, out.String(), tt.want)
		}
	}
}
