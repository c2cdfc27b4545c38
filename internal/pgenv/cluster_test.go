package pgenv

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestCluster creates, starts, reuses and stops a real private cluster in a
// temporary directory. It needs the PostgreSQL server binaries.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	ctx := context.Background()
	bin, err := FindBinDir(ctx)
	if err != nil {
		t.Skip(err)
	}
	as, _, err := RunAs()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if as != nil { // as root: let the postgres user reach dir
		for _, d := range []string{dir, filepath.Dir(dir)} {
			if err := os.Chmod(d, 0o711); err != nil {
				t.Fatal(err)
			}
		}
	}
	c := &Cluster{Dir: filepath.Join(dir, "pg"), BinDir: bin, As: as}

	if _, running, err := c.Status(ctx); err != nil || running {
		t.Fatalf("Status before Init = %v, %v; want not running", running, err)
	}
	if created, err := c.Init(ctx); err != nil || !created {
		t.Fatalf("Init = %v, %v; want created", created, err)
	}
	if created, err := c.Init(ctx); err != nil || created {
		t.Fatalf("second Init = %v, %v; want existing cluster kept", created, err)
	}
	port, err := c.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			c.Stop(context.Background())
		}
	})

	got, running, err := c.Status(ctx)
	if err != nil || !running || got != port {
		t.Fatalf("Status after Start = %d, %v, %v; want %d, running", got, running, err, port)
	}
	url := URL(port, "pgenv_test")
	for i, want := range []string{"pgenv_test", ""} {
		created, err := EnsureDatabase(ctx, url)
		if err != nil || created != want {
			t.Fatalf("EnsureDatabase #%d = %q, %v; want %q", i+1, created, err, want)
		}
	}
	if err := Probe(ctx, url); err != nil {
		t.Fatal(err)
	}

	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	stopped = true
	if _, running, err := c.Status(ctx); err != nil || running {
		t.Fatalf("Status after Stop = %v, %v; want not running", running, err)
	}
	if err := Probe(ctx, url); err == nil {
		t.Fatal("Probe succeeded after Stop")
	}
}
