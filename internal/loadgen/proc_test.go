package loadgen

import "testing"

func TestBackendOf(t *testing.T) {
	for _, c := range []struct{ title, want string }{
		{"postgres: 15/main: postgres taxrefund_bench 127.0.0.1(50092) idle\x00\x00", "ours"},
		{"postgres: postgres taxrefund_bench 127.0.0.1(41000) INSERT", "ours"},
		{"postgres: postgres taxrefund_bench [local] idle", "ours"},
		{"postgres: 15/main: pgtdbuser testdb_x 127.0.0.1(34720) INSERT", "other"},
		{"postgres: 15/main: walwriter ", "background"},
		{"postgres: autovacuum worker taxrefund_bench", "background"},
		{"/usr/lib/postgresql/15/bin/postgres\x00-D\x00/data\x00", "unknown"}, // just forked
		{"", "unknown"}, // exiting
	} {
		if got := backendOf(c.title, "taxrefund_bench"); got != c.want {
			t.Errorf("backendOf(%q) = %s, want %s", c.title, got, c.want)
		}
	}
}
