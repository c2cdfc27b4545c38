package pgenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Cluster is a private PostgreSQL cluster: Dir holds the data directory
// (data/) and the server log (server.log). It listens only on 127.0.0.1, on
// a port chosen free at each start, has no unix socket, and trusts every
// local connection: it is for development and tests only.
type Cluster struct {
	Dir    string
	BinDir string
	// As is whom initdb, pg_ctl and postgres run as, User its name; nil
	// means the current user. They refuse to run as root, see RunAs.
	As   *syscall.Credential
	User string
}

// settings are appended to postgresql.conf after initdb. Durability is
// traded for speed: the data is throwaway (make clean-data rebuilds it).
const settings = `
# Added by pgenv: a private development and test cluster.
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
`

// RunAs returns the credential for running the PostgreSQL binaries and the
// user's name: nil unless we are root, since initdb and postgres refuse to
// run as root; then the "postgres" system user if it exists, else "nobody".
func RunAs() (*syscall.Credential, string, error) {
	if os.Geteuid() != 0 {
		return nil, "", nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err := errors.Join(err1, err2); err != nil {
			return nil, "", fmt.Errorf("user %s: %w", name, err)
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, name, nil
	}
	return nil, "", errors.New(`running as root, and neither a "postgres" nor a "nobody" user exists to run PostgreSQL as`)
}

func (c *Cluster) dataDir() string { return filepath.Join(c.Dir, "data") }

// Status reports whether the cluster is running and, if so, on which port.
func (c *Cluster) Status(ctx context.Context) (port int, running bool, err error) {
	if !c.initialized() {
		return 0, false, nil
	}
	err = c.run(ctx, "pg_ctl", "status", "-D", c.dataDir())
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 3 { // 3: not running
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	// The fourth line of postmaster.pid is the port.
	pid, err := os.ReadFile(filepath.Join(c.dataDir(), "postmaster.pid"))
	if err != nil {
		return 0, false, err
	}
	lines := strings.Split(string(pid), "\n")
	if len(lines) < 4 {
		return 0, false, errors.New("postmaster.pid: no port line")
	}
	port, err = strconv.Atoi(strings.TrimSpace(lines[3]))
	if err != nil {
		return 0, false, fmt.Errorf("postmaster.pid: port: %w", err)
	}
	return port, true, nil
}

func (c *Cluster) initialized() bool {
	_, err := os.Stat(filepath.Join(c.dataDir(), "PG_VERSION"))
	return err == nil
}

// Init creates the cluster unless it already exists, and reports whether it
// did. As root, Dir is handed to c.As and its parent made traversable.
func (c *Cluster) Init(ctx context.Context) (bool, error) {
	if c.initialized() {
		return false, nil
	}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return false, err
	}
	if c.As != nil {
		if err := os.Chown(c.Dir, int(c.As.Uid), int(c.As.Gid)); err != nil {
			return false, err
		}
		parent := filepath.Dir(c.Dir)
		fi, err := os.Stat(parent)
		if err != nil {
			return false, err
		}
		if err := os.Chmod(parent, fi.Mode().Perm()|0o111); err != nil {
			return false, err
		}
	}
	err := c.run(ctx, "initdb", "-D", c.dataDir(), "--auth=trust", "--username=postgres",
		"--encoding=UTF8", "--no-locale")
	if err != nil {
		return false, err
	}
	conf, err := os.OpenFile(filepath.Join(c.dataDir(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return false, err
	}
	if _, err := conf.WriteString(settings); err != nil {
		conf.Close()
		return false, err
	}
	return true, conf.Close()
}

// Start starts the cluster on a free port and waits until it accepts
// connections.
func (c *Cluster) Start(ctx context.Context) (int, error) {
	port, err := freePort()
	if err != nil {
		return 0, err
	}
	logFile := filepath.Join(c.Dir, "server.log")
	err = c.run(ctx, "pg_ctl", "start", "-w", "-t", "60", "-D", c.dataDir(), "-l", logFile,
		"-o", "-p "+strconv.Itoa(port))
	if err != nil {
		return 0, fmt.Errorf("%w\n%s:\n%s", err, logFile, tail(logFile, 20))
	}
	return port, nil
}

// Stop stops the cluster (fast shutdown: open sessions are disconnected).
func (c *Cluster) Stop(ctx context.Context) error {
	return c.run(ctx, "pg_ctl", "stop", "-w", "-m", "fast", "-D", c.dataDir())
}

// run runs a PostgreSQL binary as c.As, in c.Dir. Its output is only shown
// when it fails.
func (c *Cluster) run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(c.BinDir, name), args...)
	cmd.Dir = c.Dir
	if c.As != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.As}
	}
	out, err := cmd.CombinedOutput()
	if errors.Is(err, fs.ErrPermission) && c.As != nil {
		return fmt.Errorf("%s: %w (every directory above %s must be traversable by user %s)", name, err, c.Dir, c.User)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, args[0], err, bytes.TrimSpace(out))
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
