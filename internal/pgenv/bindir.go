package pgenv

import (
	"cmp"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ErrNoBinaries means no directory with initdb, pg_ctl and postgres was found.
var ErrNoBinaries = errors.New("no PostgreSQL server binaries (initdb, pg_ctl, postgres) found")

// FindBinDir returns the first directory holding initdb, pg_ctl and postgres,
// looking at the initdb in PATH, then `pg_config --bindir`, then the newest
// /usr/lib/postgresql/*/bin (Debian and Ubuntu keep the server off PATH).
func FindBinDir(ctx context.Context) (string, error) {
	var dirs []string
	if p, err := exec.LookPath("initdb"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	if out, err := exec.CommandContext(ctx, "pg_config", "--bindir").Output(); err == nil {
		dirs = append(dirs, strings.TrimSpace(string(out)))
	}
	dirs = append(dirs, versionBinDirs("/usr/lib/postgresql")...)
	for _, dir := range dirs {
		if hasServer(dir) {
			return dir, nil
		}
	}
	return "", ErrNoBinaries
}

// versionBinDirs returns root/<version>/bin for each numeric version
// directory under root, newest first.
func versionBinDirs(root string) []string {
	entries, _ := os.ReadDir(root)
	type versioned struct {
		v   float64
		dir string
	}
	var found []versioned
	for _, e := range entries {
		v, err := strconv.ParseFloat(e.Name(), 64)
		if err != nil {
			continue
		}
		found = append(found, versioned{v, filepath.Join(root, e.Name(), "bin")})
	}
	slices.SortFunc(found, func(a, b versioned) int { return cmp.Compare(b.v, a.v) })
	dirs := make([]string, len(found))
	for i, f := range found {
		dirs[i] = f.dir
	}
	return dirs
}

func hasServer(dir string) bool {
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}
