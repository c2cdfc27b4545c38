// Package hacluster runs the high-availability layout on one machine: etcd, three
// PostgreSQL nodes under Patroni (synchronous replication, strict), and taxrefund servers
// whose pools reach the primary through a multi-host connection string. `make ha` starts
// it (cmd/hacluster), `make ha-stop` stops what it started, and the failover test drives
// faults into it. Configuration files come from the templates in deploy/patroni and
// deploy/etcd. OPERATIONS.md ("High availability") describes the three-machine layout.
package hacluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"taxrefund/internal/pgenv"
)

// Nodes is how many PostgreSQL nodes the cluster has: a primary, its synchronous standby
// and one more replica, which becomes the new synchronous standby after a failover.
const Nodes = 3

// Database is the name of the service's database on the cluster.
const Database = "taxrefund"

// Config says where the cluster lives.
type Config struct {
	// Dir holds every node's data, configuration and log, the pid files, the
	// certificates and the PII key file (.data/ha for `make ha`).
	Dir string
	// Templates is the deploy/ folder holding patroni/node.yml.tmpl and etcd/etcd.yml.tmpl.
	Templates string
	// BasePort: PostgreSQL nodes on BasePort..+2, their Patroni REST APIs on +3..+5, etcd's
	// client and peer ports +10 and +11, the taxrefund servers from +20, their metrics
	// from +30.
	BasePort int
	// Taxrefund is the taxrefund binary.
	Taxrefund string
	// Servers is how many taxrefund servers to start (0: none).
	Servers int
	// ServeArgs are added to every `taxrefund serve`.
	ServeArgs []string
	// Fsync is PostgreSQL's fsync. Off suits a throwaway cluster whose faults are process
	// kills (the page cache survives them); replication is synchronous either way.
	Fsync bool
	// Log receives progress lines; nil: none.
	Log io.Writer
}

// Node is one PostgreSQL node under Patroni.
type Node struct {
	Name     string
	PgPort   int
	RestPort int
	Dir      string // the node's directory: patroni.yml, its log, data/
}

// DataDir is the node's PostgreSQL data directory.
func (n Node) DataDir() string { return filepath.Join(n.Dir, "data") }

// ConfigFile is the node's Patroni configuration (patronictl -c).
func (n Node) ConfigFile() string { return filepath.Join(n.Dir, "patroni.yml") }

// Cluster is a running (or stopped) cluster.
type Cluster struct {
	cfg     Config
	Nodes   []Node
	binDir  string
	runAs   *syscall.Credential
	user    string
	etcd    *exec.Cmd
	patroni []*exec.Cmd
	servers []*exec.Cmd
}

// New lays out the cluster described by cfg; nothing runs yet.
func New(ctx context.Context, cfg Config) (*Cluster, error) {
	if cfg.BasePort <= 0 || cfg.BasePort > 65000 {
		return nil, fmt.Errorf("hacluster: base port %d", cfg.BasePort)
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	cfg.Dir = dir
	if cfg.Taxrefund != "" && strings.ContainsRune(cfg.Taxrefund, filepath.Separator) {
		if cfg.Taxrefund, err = filepath.Abs(cfg.Taxrefund); err != nil {
			return nil, err
		}
	}
	if cfg.Templates, err = filepath.Abs(cfg.Templates); err != nil {
		return nil, err
	}
	binDir, err := binDir(ctx)
	if err != nil {
		return nil, err
	}
	runAs, user, err := pgenv.RunAs()
	if err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, binDir: binDir, runAs: runAs, user: user}
	for i := range Nodes {
		c.Nodes = append(c.Nodes, Node{
			Name: fmt.Sprintf("pg%d", i+1), PgPort: cfg.BasePort + i, RestPort: cfg.BasePort + Nodes + i,
			Dir: filepath.Join(dir, fmt.Sprintf("pg%d", i+1)),
		})
	}
	return c, nil
}

func (c *Cluster) etcdClientPort() int { return c.cfg.BasePort + 10 }
func (c *Cluster) etcdPeerPort() int   { return c.cfg.BasePort + 11 }

// ServerAddr is the gRPC address of taxrefund server i.
func (c *Cluster) ServerAddr(i int) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.cfg.BasePort+20+i))
}

// ServerAddrs are the addresses of every server, comma-separated (refundctl -addr).
func (c *Cluster) ServerAddrs() string {
	var out []string
	for i := range c.cfg.Servers {
		out = append(out, c.ServerAddr(i))
	}
	return strings.Join(out, ",")
}

// CertDir and PIIKeys are the cluster's development certificates and key file.
func (c *Cluster) CertDir() string { return filepath.Join(c.cfg.Dir, "certs") }

// PIIKeys is the key file of the servers.
func (c *Cluster) PIIKeys() string { return filepath.Join(c.cfg.Dir, "pii.keys") }

// journalArgs name the servers' journal key, its public keys and their checkpoint file.
func (c *Cluster) journalArgs() []string {
	return []string{"-journal-key", filepath.Join(c.cfg.Dir, "journal.key"), "-journal-pubkeys", filepath.Join(c.cfg.Dir, "journal.pub")}
}

// DatabaseURL is the multi-host connection string of database db: libpq and pgx try the
// nodes in turn and keep the one that accepts writes (target_session_attrs=read-write).
func (c *Cluster) DatabaseURL(db string) string {
	hosts, ports := make([]string, Nodes), make([]string, Nodes)
	for i, n := range c.Nodes {
		hosts[i], ports[i] = "127.0.0.1", strconv.Itoa(n.PgPort)
	}
	return fmt.Sprintf("host=%s port=%s user=postgres dbname=%s sslmode=disable target_session_attrs=read-write connect_timeout=2",
		strings.Join(hosts, ","), strings.Join(ports, ","), db)
}

// ReadDatabaseURL is the multi-host connection string of the reads that may lag
// (serve -read-database-url): a standby when one accepts connections, else the primary
// (target_session_attrs=prefer-standby).
func (c *Cluster) ReadDatabaseURL(db string) string {
	return strings.Replace(c.DatabaseURL(db), "target_session_attrs=read-write", "target_session_attrs=prefer-standby", 1)
}

// NodeURL is the connection string of one node, whatever its role.
func (c *Cluster) NodeURL(n Node, db string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=%s sslmode=disable connect_timeout=2", n.PgPort, db)
}

func (c *Cluster) logf(format string, args ...any) {
	if c.cfg.Log != nil {
		fmt.Fprintf(c.cfg.Log, "hacluster: "+format+"\n", args...)
	}
}

func (c *Cluster) pidDir() string { return filepath.Join(c.cfg.Dir, "pids") }

// Start starts etcd and the three nodes, waits for a leader and a synchronous standby,
// creates, migrates and seeds the database through the leader, makes the certificates
// and starts the servers. On an error it stops what it started.
func (c *Cluster) Start(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	if _, err := exec.LookPath("patroni"); err != nil {
		return errors.New("patroni is not installed (Debian: patroni python3-etcd; `make deps`)")
	}
	if _, err := exec.LookPath("etcd"); err != nil {
		return errors.New("etcd is not installed (Debian: etcd-server; `make deps`)")
	}
	for _, d := range []string{c.cfg.Dir, c.pidDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := c.giveAway(c.cfg.Dir); err != nil {
		return err
	}
	if err := c.startEtcd(ctx); err != nil {
		return err
	}
	for _, n := range c.Nodes {
		if err := c.startNode(n); err != nil {
			return err
		}
	}
	c.logf("waiting for a leader and a synchronous standby")
	if _, err := c.WaitHealthy(ctx, 3*time.Minute); err != nil {
		return err
	}
	if err := c.prepareDatabase(ctx); err != nil {
		return err
	}
	for i := range c.cfg.Servers {
		if err := c.StartServer(ctx, i); err != nil {
			return err
		}
	}
	return nil
}

// giveAway hands dir to the user PostgreSQL runs as (when we are root) and makes its
// parents traversable.
func (c *Cluster) giveAway(dir string) error {
	if c.runAs == nil {
		return nil
	}
	if err := os.Chown(dir, int(c.runAs.Uid), int(c.runAs.Gid)); err != nil {
		return err
	}
	for p := filepath.Dir(dir); p != "/" && p != "."; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(p, fi.Mode().Perm()|0o011); err != nil {
				return fmt.Errorf("make %s traversable for user %s: %w", p, c.user, err)
			}
		}
	}
	return nil
}

func (c *Cluster) render(tmpl, out string, data any) error {
	t, err := template.ParseFiles(filepath.Join(c.cfg.Templates, tmpl))
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := t.Option("missingkey=error").Execute(&b, data); err != nil {
		return fmt.Errorf("%s: %w", tmpl, err)
	}
	if err := os.WriteFile(out, b.Bytes(), 0o600); err != nil {
		return err
	}
	if c.runAs != nil {
		return os.Chown(out, int(c.runAs.Uid), int(c.runAs.Gid))
	}
	return nil
}

func (c *Cluster) mkdirOwned(dir string, perm os.FileMode) error {
	if err := os.MkdirAll(dir, perm); err != nil {
		return err
	}
	return c.giveAway(dir)
}

func (c *Cluster) startEtcd(ctx context.Context) error {
	dir := filepath.Join(c.cfg.Dir, "etcd")
	if err := c.mkdirOwned(dir, 0o700); err != nil {
		return err
	}
	conf := filepath.Join(dir, "etcd.yml")
	err := c.render(filepath.Join("etcd", "etcd.yml.tmpl"), conf, map[string]any{
		"Name": "etcd1", "DataDir": filepath.Join(dir, "data"), "ClientPort": c.etcdClientPort(), "PeerPort": c.etcdPeerPort(),
	})
	if err != nil {
		return err
	}
	cmd, err := c.spawn("etcd", filepath.Join(dir, "etcd.log"), true, "etcd", "--config-file", conf)
	if err != nil {
		return err
	}
	c.etcd = cmd
	url := fmt.Sprintf("http://127.0.0.1:%d/health", c.etcdClientPort())
	const wait = time.Minute // a first WAL fsync on a disk other tests keep busy
	deadline := time.Now().Add(wait)
	for {
		if body, err := httpGet(ctx, url); err == nil && strings.Contains(string(body), "true") {
			c.logf("etcd on 127.0.0.1:%d", c.etcdClientPort())
			return nil
		}
		// etcd that exited (a port taken, a bad data directory) will not become healthy:
		// say so at once, with what it logged, which goes with the test's directory.
		exited := syscall.Kill(cmd.Process.Pid, 0) != nil
		if exited || time.Now().After(deadline) {
			state := fmt.Sprintf("not healthy after %s", wait)
			if exited {
				state = "exited"
			}
			return fmt.Errorf("etcd on 127.0.0.1:%d %s; the end of %s:\n%s", c.etcdClientPort(), state,
				filepath.Join(dir, "etcd.log"), tail(filepath.Join(dir, "etcd.log"), 3000))
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// tail returns the last n bytes of the file at path, or why it could not be read.
func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > n {
		_, _ = f.Seek(fi.Size()-n, io.SeekStart)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

func (c *Cluster) startNode(n Node) error {
	if err := c.mkdirOwned(n.Dir, 0o700); err != nil {
		return err
	}
	fsync := "off"
	if c.cfg.Fsync {
		fsync = "on"
	}
	err := c.render(filepath.Join("patroni", "node.yml.tmpl"), n.ConfigFile(), map[string]any{
		"Name": n.Name, "Dir": n.Dir, "DataDir": n.DataDir(), "BinDir": c.binDir,
		"PgPort": n.PgPort, "RestPort": n.RestPort, "EtcdHosts": fmt.Sprintf("127.0.0.1:%d", c.etcdClientPort()),
		"MaxConnections": 100, "Fsync": fsync,
	})
	if err != nil {
		return err
	}
	cmd, err := c.spawn(n.Name, filepath.Join(n.Dir, "patroni.out"), true, "patroni", n.ConfigFile())
	if err != nil {
		return err
	}
	c.patroni = append(c.patroni, cmd)
	c.logf("%s: PostgreSQL on 127.0.0.1:%d, Patroni REST on 127.0.0.1:%d", n.Name, n.PgPort, n.RestPort)
	return nil
}

// spawn starts a process in a session of its own (so that it outlives `make ha`, and so
// that its whole group can be stopped), with its output in logPath, and writes its pid
// file. asPG runs it as PostgreSQL's user when we are root.
func (c *Cluster) spawn(name, logPath string, asPG bool, bin string, args ...string) (*exec.Cmd, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Dir = c.cfg.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if asPG && c.runAs != nil {
		cmd.SysProcAttr.Credential = c.runAs
		home := c.cfg.Dir
		cmd.Env = append(os.Environ(), "HOME="+home, "USER="+c.user, "LOGNAME="+c.user)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { _ = cmd.Wait() }() // reap; the pid file and Stop look after the rest
	if err := os.WriteFile(filepath.Join(c.pidDir(), name+".pid"), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		return nil, err
	}
	return cmd, nil
}

// binDir finds PostgreSQL's own bin directory, with the tools Patroni calls besides
// initdb, pg_ctl and postgres (pg_controldata, pg_rewind, pg_basebackup): a directory of
// links to some of them (initdb in /usr/local/bin) is followed to where they point.
func binDir(ctx context.Context) (string, error) {
	dir, err := pgenv.FindBinDir(ctx)
	if err != nil {
		return "", err
	}
	if real, err := filepath.EvalSymlinks(filepath.Join(dir, "initdb")); err == nil {
		dir = filepath.Dir(real)
	}
	for _, tool := range []string{"pg_controldata", "pg_rewind", "pg_basebackup"} {
		if _, err := os.Stat(filepath.Join(dir, tool)); err != nil {
			return "", fmt.Errorf("PostgreSQL's %s is not in %s, beside initdb: Patroni needs it", tool, dir)
		}
	}
	return dir, nil
}

// Member is one node as Patroni's REST API describes it.
type Member struct {
	Name  string `json:"name"`
	Role  string `json:"role"` // leader, sync_standby, replica
	State string `json:"state"`
	Port  int    `json:"port"`
	Lag   any    `json:"lag"`
}

// Running reports whether the node's PostgreSQL runs (a primary) or streams (a replica).
func (m Member) Running() bool { return m.State == "running" || m.State == "streaming" }

// Leads reports whether the node holds the leader key and its PostgreSQL runs.
func (m Member) Leads() bool {
	return m.Running() && (m.Role == "leader" || m.Role == "master" || m.Role == "primary")
}

// Members asks the nodes' REST APIs, in turn, for the cluster's view.
func (c *Cluster) Members(ctx context.Context) ([]Member, error) {
	var last error
	for _, n := range c.Nodes {
		body, err := httpGet(ctx, fmt.Sprintf("http://127.0.0.1:%d/cluster", n.RestPort))
		if err != nil {
			last = err
			continue
		}
		var out struct {
			Members []Member `json:"members"`
		}
		if err := json.Unmarshal(body, &out); err != nil {
			last = err
			continue
		}
		return out.Members, nil
	}
	return nil, fmt.Errorf("no Patroni REST API answered: %w", last)
}

// Roles are the names of the running leader and synchronous standby ("" if none).
type Roles struct{ Leader, Sync string }

// WaitHealthy waits until a leader and a synchronous standby run, and every node
// streams (a running replica or standby), and returns who is which.
func (c *Cluster) WaitHealthy(ctx context.Context, timeout time.Duration) (Roles, error) {
	deadline := time.Now().Add(timeout)
	var last []Member
	for {
		ms, err := c.Members(ctx)
		if err == nil {
			last = ms
			var r Roles
			running := 0
			for _, m := range ms {
				if !m.Running() {
					continue
				}
				running++
				switch {
				case m.Leads():
					r.Leader = m.Name
				case m.Role == "sync_standby":
					r.Sync = m.Name
				}
			}
			if r.Leader != "" && r.Sync != "" && running == Nodes {
				return r, nil
			}
		}
		if time.Now().After(deadline) {
			return Roles{}, fmt.Errorf("no healthy cluster after %s (members: %+v; logs under %s)", timeout, last, c.cfg.Dir)
		}
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return Roles{}, err
		}
	}
}

// Node returns the node named name.
func (c *Cluster) Node(name string) (Node, bool) {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// PostmasterPID reads the node's postmaster.pid.
func (c *Cluster) PostmasterPID(n Node) (int, error) {
	b, err := os.ReadFile(filepath.Join(n.DataDir(), "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strconv.Atoi(strings.TrimSpace(line))
}

// SignalPostgres sends sig to the node's postmaster and to every process it started
// (each PostgreSQL child leads a session of its own, so no process group holds them all).
func (c *Cluster) SignalPostgres(n Node, sig syscall.Signal) error {
	pid, err := c.PostmasterPID(n)
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("postmaster %d of %s: %w", pid, n.Name, err)
	}
	for _, child := range children(pid) {
		_ = syscall.Kill(child, sig) // one that just exited is no matter
	}
	return nil
}

// PostgresProcess returns the pid of the node's PostgreSQL process whose title names
// role ("checkpointer", "walwriter", "walreceiver", ...): a child of its postmaster.
func (c *Cluster) PostgresProcess(n Node, role string) (int, error) {
	pid, err := c.PostmasterPID(n)
	if err != nil {
		return 0, err
	}
	for _, child := range children(pid) {
		title, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", child))
		if err == nil && strings.Contains(string(title), role) {
			return child, nil
		}
	}
	return 0, fmt.Errorf("%s: no %s among the children of postmaster %d", n.Name, role, pid)
}

// children lists the processes whose parent is pid.
func children(pid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: the fields after the command's closing parenthesis.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(s[i+1:])
		if len(fields) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(fields[1]); err == nil && ppid == pid {
			if child, err := strconv.Atoi(strings.Fields(s)[0]); err == nil {
				out = append(out, child)
			}
		}
	}
	return out
}

// patroniEvents are the Patroni log messages that mark a step of a failover.
var patroniEvents = []string{"promote", "acquired session lock", "demot", "switchover", "synchronous standby", "synchronous_standby",
	"Lock owner", "starting as a secondary", "running pg_rewind", "Leader key", "released leader key", "does not have lock", "failsafe"}

// Events returns the failover steps the nodes' Patroni logged from since on, each as
// "+1.234s pg2: message" (the offset from since), in time order: where a window of
// unavailability went on the database's side.
func (c *Cluster) Events(since time.Time) []string {
	type ev struct {
		at   time.Time
		line string
	}
	var out []ev
	for _, n := range c.Nodes {
		b, err := os.ReadFile(filepath.Join(n.Dir, "patroni.log"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if len(line) < 23 {
				continue
			}
			// "2026-12-05 22:10:01,123 INFO: ..." in the machine's local time.
			at, err := time.ParseInLocation("2006-01-02 15:04:05,000", line[:23], time.Local)
			if err != nil || at.Before(since) {
				continue
			}
			msg := strings.TrimSpace(line[23:])
			for _, k := range patroniEvents {
				if strings.Contains(strings.ToLower(msg), strings.ToLower(k)) {
					out = append(out, ev{at, fmt.Sprintf("+%.3fs %s: %s", at.Sub(since).Seconds(), n.Name, msg)})
					break
				}
			}
		}
	}
	slices.SortStableFunc(out, func(a, b ev) int { return a.at.Compare(b.at) })
	lines := make([]string, len(out))
	for i, e := range out {
		lines[i] = e.line
	}
	return lines
}

// Switchover asks Patroni for a planned switchover from leader to candidate, through
// the leader's REST API (POST /switchover, what `patronictl switchover --force` sends),
// and returns once another node holds the leader key. The REST call reaches the leader
// at once: patronictl took up to 24 s on a loaded box before it sent the request.
//
// Patroni's answer waits at most 20 s for the leader key to move (api.py,
// poll_failover_result) and then says 503 "Switchover status unknown" while the
// switchover goes on; on a busy machine a graceful demote alone can take that long. An
// operator then looks at the cluster, and so does Switchover: it waits for the leader
// key itself, up to switchoverWait in all. A switchover Patroni refused or abandoned
// (412, 503 "Switchover failed") is an error that says so: the caller may ask again.
func (c *Cluster) Switchover(ctx context.Context, leader, candidate string) error {
	n, ok := c.Node(leader)
	if !ok {
		return fmt.Errorf("switchover: no node %q", leader)
	}
	start := time.Now()
	body, _ := json.Marshal(map[string]string{"leader": leader, "candidate": candidate})
	ctx, cancel := context.WithTimeout(ctx, switchoverWait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d/switchover", n.RestPort), bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("switchover: %w", err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	out = bytes.TrimSpace(out)
	switch {
	case resp.StatusCode == http.StatusOK:
		c.logf("switchover %s -> %s: %s", leader, candidate, out)
		return nil
	case resp.StatusCode == http.StatusServiceUnavailable && bytes.Contains(out, []byte("status unknown")):
		c.logf("switchover %s -> %s: Patroni answered %q after %s; waiting for the leader key to move", leader, candidate, out, time.Since(start).Round(time.Millisecond))
		for {
			if ms, err := c.Members(ctx); err == nil {
				for _, m := range ms {
					if m.Name != leader && m.Leads() {
						c.logf("switchover %s -> %s: %s leads, %s after the request", leader, candidate, m.Name, time.Since(start).Round(time.Millisecond))
						return nil
					}
				}
			}
			if err := sleep(ctx, 250*time.Millisecond); err != nil {
				return fmt.Errorf("switchover %s -> %s: Patroni answered %q and no other node led within %s", leader, candidate, out, switchoverWait)
			}
		}
	default:
		return fmt.Errorf("switchover %s -> %s: %s: %s", leader, candidate, resp.Status, out)
	}
}

// switchoverWait bounds a switchover, Patroni's answer and the wait after it together.
const switchoverWait = 2 * time.Minute

// prepareDatabase creates the database on the leader, migrates and seeds it and makes
// the development certificates, PII keys and the journal key.
func (c *Cluster) prepareDatabase(ctx context.Context) error {
	url := c.DatabaseURL(Database)
	if _, err := pgenv.EnsureDatabase(ctx, url); err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	// A client of the multi-host URL gives up at the first node that lacks the database
	// (pgx, like libpq, tries no further host after "database does not exist"): wait
	// until every replica has replayed its creation.
	for _, n := range c.Nodes {
		deadline := time.Now().Add(time.Minute)
		for {
			err := pgenv.Probe(ctx, c.NodeURL(n, Database))
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("database %s on %s: %w", Database, n.Name, err)
			}
			if err := sleep(ctx, 200*time.Millisecond); err != nil {
				return err
			}
		}
	}
	for _, args := range [][]string{
		{"migrate"}, {"seed"}, {"certs", "-cert-dir", c.CertDir(), "-pii-keys", c.PIIKeys()}, append([]string{"keys"}, c.journalArgs()...),
	} {
		cmd := exec.CommandContext(ctx, c.cfg.Taxrefund, append(args, "-database-url", url)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("taxrefund %s: %w\n%s", args[0], err, out)
		}
	}
	c.logf("database %s migrated and seeded through the leader", Database)
	return nil
}

// StartServer starts taxrefund server i and waits until it listens.
func (c *Cluster) StartServer(ctx context.Context, i int) error {
	name := fmt.Sprintf("taxrefund%d", i+1)
	args := []string{"serve", "-addr", c.ServerAddr(i), "-database-url", c.DatabaseURL(Database), "-read-database-url", c.ReadDatabaseURL(Database),
		"-cert-dir", c.CertDir(), "-pii-keys", c.PIIKeys(), "-checkpoints", filepath.Join(c.cfg.Dir, "checkpoints.log"),
		"-metrics-addr", net.JoinHostPort("127.0.0.1", strconv.Itoa(c.cfg.BasePort+30+i))}
	args = append(append(args, c.journalArgs()...), c.cfg.ServeArgs...)
	cmd, err := c.spawn(name, filepath.Join(c.cfg.Dir, name+".log"), false, c.cfg.Taxrefund, args...)
	if err != nil {
		return err
	}
	for len(c.servers) <= i {
		c.servers = append(c.servers, nil)
	}
	c.servers[i] = cmd
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", c.ServerAddr(i), time.Second)
		if err == nil {
			conn.Close()
			c.logf("%s: taxrefund serve on %s (log %s)", name, c.ServerAddr(i), filepath.Join(c.cfg.Dir, name+".log"))
			return nil
		}
		if time.Now().After(deadline) || !alive(cmd.Process.Pid) {
			return fmt.Errorf("%s did not listen on %s; see %s", name, c.ServerAddr(i), filepath.Join(c.cfg.Dir, name+".log"))
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// KillServer sends SIGKILL to taxrefund server i.
func (c *Cluster) KillServer(i int) error {
	if i >= len(c.servers) || c.servers[i] == nil {
		return fmt.Errorf("server %d is not running", i)
	}
	err := syscall.Kill(c.servers[i].Process.Pid, syscall.SIGKILL)
	c.servers[i] = nil
	return err
}

// Stop stops everything this Cluster started: the servers, Patroni (which stops its
// PostgreSQL), any postmaster left behind, and etcd.
func (c *Cluster) Stop() {
	StopDir(c.cfg.Dir, c.cfg.Log)
}

// StopDir stops the processes whose pid files are under dir/pids (those a Cluster with
// this Dir started), and every postmaster whose postmaster.pid is under dir: first
// politely (SIGTERM, then a wait), then SIGKILL to each process group. It stops nothing
// else.
func StopDir(dir string, log io.Writer) {
	pidDir := filepath.Join(dir, "pids")
	files, _ := filepath.Glob(filepath.Join(pidDir, "*.pid"))
	order := func(name string) int {
		switch {
		case strings.HasPrefix(name, "taxrefund"):
			return 0
		case strings.HasPrefix(name, "pg"):
			return 1
		}
		return 2 // etcd last: Patroni needs it to stop cleanly
	}
	for stage := range 3 {
		var pids []int
		for _, f := range files {
			if order(strings.TrimSuffix(filepath.Base(f), ".pid")) != stage {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err == nil && pid > 1 {
				pids = append(pids, pid)
			}
			_ = os.Remove(f)
		}
		if stage == 2 {
			// Any PostgreSQL whose Patroni died without stopping it.
			pids = append(pids, postmasters(dir)...)
		}
		stopGroups(pids, 20*time.Second)
	}
	if stray := postmasters(dir); len(stray) > 0 {
		stopGroups(stray, 5*time.Second)
	}
	if log != nil {
		fmt.Fprintf(log, "hacluster: stopped what ran under %s\n", dir)
	}
}

// postmasters lists the live postmasters of data directories under dir.
func postmasters(dir string) []int {
	files, _ := filepath.Glob(filepath.Join(dir, "pg*", "data", "postmaster.pid"))
	var out []int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		line, _, _ := strings.Cut(string(b), "\n")
		if pid, err := strconv.Atoi(strings.TrimSpace(line)); err == nil && pid > 1 && alive(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// stopGroups sends SIGTERM to each process, waits up to grace for them to exit, then
// SIGKILLs each with its process group (each runs in a session of its own).
func stopGroups(pids []int, grace time.Duration) {
	for _, pid := range pids {
		// A process stopped by a test (SIGSTOP) would not act on SIGTERM.
		_ = syscall.Kill(pid, syscall.SIGCONT)
		for _, child := range children(pid) {
			_ = syscall.Kill(child, syscall.SIGCONT)
		}
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		any := false
		for _, pid := range pids {
			if alive(pid) {
				any = true
			}
		}
		if !any {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	own := syscall.Getpgrp()
	for _, pid := range pids {
		if pgid, err := syscall.Getpgid(pid); err == nil && pgid > 1 && pgid != own {
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		}
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// alive reports whether pid runs (and is not a zombie).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the command name in parentheses.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

func httpGet(ctx context.Context, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
