package refund_test

import (
	"testing"
	"time"

	"taxrefund/internal/refund"
)

func TestLocalDate(t *testing.T) {
	tests := []struct {
		instant string // RFC 3339
		want    string
	}{
		{"2026-03-01T15:59:59Z", "2026-03-01"},
		{"2026-03-01T16:00:00Z", "2026-03-02"},
		{"2026-03-01T15:59:59.999999999Z", "2026-03-01"},
		{"2026-03-01T00:00:00Z", "2026-03-01"},
		{"2026-02-28T16:00:00Z", "2026-03-01"}, // month boundary
		{"2025-12-31T16:00:00Z", "2026-01-01"}, // year boundary
		{"2026-03-02T00:00:00+08:00", "2026-03-02"},
		{"2026-03-01T23:59:59+08:00", "2026-03-01"},
		{"2026-03-01T11:00:00-05:00", "2026-03-02"}, // 16:00 UTC
	}
	for _, tt := range tests {
		in, err := time.Parse(time.RFC3339Nano, tt.instant)
		if err != nil {
			t.Fatalf("bad test instant %q: %v", tt.instant, err)
		}
		got := refund.LocalDate(in)
		if !got.Equal(date(t, tt.want)) || got.Location() != time.UTC {
			t.Errorf("LocalDate(%s) = %s, want %s 00:00 UTC", tt.instant, got, tt.want)
		}
	}
}

func TestAddDaysAndDaysBetween(t *testing.T) {
	tests := []struct {
		from string
		days int
		to   string
	}{
		{"2026-03-10", 90, "2026-06-08"},
		{"2026-11-15", 90, "2027-02-13"},
		{"2028-02-01", 29, "2028-03-01"}, // leap year
		{"2026-02-01", 28, "2026-03-01"},
		{"2025-09-08", 183, "2026-03-10"},
		{"2025-09-07", 184, "2026-03-10"},
		{"2026-03-10", 0, "2026-03-10"},
	}
	for _, tt := range tests {
		from, to := date(t, tt.from), date(t, tt.to)
		if got := refund.AddDays(from, tt.days); !got.Equal(to) {
			t.Errorf("AddDays(%s, %d) = %s, want %s", tt.from, tt.days, refund.FormatDate(got), tt.to)
		}
		if got := refund.DaysBetween(from, to); got != tt.days {
			t.Errorf("DaysBetween(%s, %s) = %d, want %d", tt.from, tt.to, got, tt.days)
		}
	}
}

func TestParseDate(t *testing.T) {
	for _, s := range []string{"2026-03-10", "2028-02-29", "2026-12-31"} {
		d, err := refund.ParseDate(s)
		if err != nil {
			t.Errorf("ParseDate(%q) error %v", s, err)
			continue
		}
		if got := refund.FormatDate(d); got != s {
			t.Errorf("FormatDate(ParseDate(%q)) = %q", s, got)
		}
		if d.Location() != time.UTC || d.Hour() != 0 || d.Minute() != 0 || d.Second() != 0 || d.Nanosecond() != 0 {
			t.Errorf("ParseDate(%q) = %v, want 00:00 UTC", s, d)
		}
	}
	for _, s := range []string{"", "2026-02-30", "2027-02-29", "2026-3-10", "10/03/2026", "2026-03-10T00:00:00Z", " 2026-03-10"} {
		if d, err := refund.ParseDate(s); err == nil {
			t.Errorf("ParseDate(%q) = %v, want an error", s, d)
		}
	}
}
