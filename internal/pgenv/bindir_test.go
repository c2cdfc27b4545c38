package pgenv

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestVersionBinDirs(t *testing.T) {
	root := t.TempDir()
	for _, name := range []string{"9.6", "15", "10", "17", "common", "16beta"} {
		if err := os.Mkdir(filepath.Join(root, name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, dir := range versionBinDirs(root) {
		rel, _ := filepath.Rel(root, dir)
		got = append(got, rel)
	}
	want := []string{"17/bin", "15/bin", "10/bin", "9.6/bin"}
	if !slices.Equal(got, want) {
		t.Errorf("versionBinDirs = %q, want %q", got, want)
	}
}

func TestHasServer(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"initdb", "pg_ctl"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if hasServer(dir) {
		t.Error("hasServer without postgres = true")
	}
	if err := os.WriteFile(filepath.Join(dir, "postgres"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if hasServer(dir) {
		t.Error("hasServer with a non-executable postgres = true")
	}
	if err := os.Chmod(filepath.Join(dir, "postgres"), 0o755); err != nil {
		t.Fatal(err)
	}
	if !hasServer(dir) {
		t.Error("hasServer with all three = false")
	}
}
