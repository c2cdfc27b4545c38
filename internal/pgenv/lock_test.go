package pgenv

import (
	"testing"
	"time"
)

func openSharing(t *testing.T, dir string) *Sharing {
	t.Helper()
	s, err := OpenSharing(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSharing(t *testing.T) {
	dir := t.TempDir()
	// flock locks belong to open files, so two Sharings in one process
	// behave like two pgenv processes.
	starter, other := openSharing(t, dir), openSharing(t, dir)

	if err := starter.Lock(); err != nil {
		t.Fatal(err)
	}
	locked := make(chan error)
	go func() { locked <- other.Lock() }()
	select {
	case <-locked:
		t.Fatal("Lock succeeded while another invocation was setting up")
	case <-time.After(100 * time.Millisecond):
	}
	if err := starter.Join(); err != nil {
		t.Fatal(err)
	}
	// Joining lets the other one set up while the starter still uses the cluster.
	if err := <-locked; err != nil {
		t.Fatal(err)
	}
	if err := other.Join(); err != nil {
		t.Fatal(err)
	}

	if alone, err := starter.Alone(); err != nil || alone {
		t.Fatalf("Alone with another user = %v, %v; want false", alone, err)
	}
	if err := starter.Close(); err != nil {
		t.Fatal(err)
	}
	if alone, err := other.Alone(); err != nil || !alone {
		t.Fatalf("Alone as the last user = %v, %v; want true", alone, err)
	}
}
