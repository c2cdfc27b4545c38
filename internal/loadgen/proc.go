package loadgen

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Linux reports process CPU times in clock ticks of 1/100 s (USER_HZ is 100 on every
// architecture Go supports on Linux).
const clockTick = 10 * time.Millisecond

// procCPU returns a process's own user+system CPU time and that of its reaped children,
// from /proc/<pid>/stat.
func procCPU(pid int) (self, children time.Duration, err error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, 0, err
	}
	// Fields after the command: state is [0], utime [11], stime [12], cutime [13], cstime [14].
	ticks := func(i int) time.Duration {
		n, _ := strconv.ParseInt(f[i], 10, 64)
		return time.Duration(n) * clockTick
	}
	return ticks(11) + ticks(12), ticks(13) + ticks(14), nil
}

// statFields returns the fields of /proc/<pid>/stat after "(comm)".
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return nil, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return f, nil
}

// procStatus returns a field of /proc/<pid>/status in bytes (for "VmHWM", "VmRSS") or as
// a number ("PPid").
func procStatus(pid int, key string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		v, ok := strings.CutPrefix(line, key+":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			break
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/status %s: %w", pid, key, err)
		}
		if len(f) > 1 && f[1] == "kB" {
			n *= 1024
		}
		return n, nil
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, key)
}

// resetPeakRSS restarts the kernel's peak-RSS (VmHWM) accounting of pid, so that the
// peak read later belongs to this measurement and not to an earlier one.
func resetPeakRSS(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// machineCPU returns the busy and total CPU time of the whole machine, all cores, from
// /proc/stat.
func machineCPU() (busy, total time.Duration, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected format")
	}
	var idle int64
	var sum int64
	// user nice system idle iowait irq softirq steal (guest time is already in user).
	for i, s := range f[1:min(len(f), 9)] {
		n, _ := strconv.ParseInt(s, 10, 64)
		sum += n
		if i == 3 || i == 4 {
			idle += n
		}
	}
	return time.Duration(sum-idle) * clockTick, time.Duration(sum) * clockTick, nil
}

// pgProcs samples the CPU time of a local PostgreSQL server's processes: the backends of
// one database, and the server's own background processes (checkpointer, WAL writer,
// autovacuum...). Backends of other databases (other people's tests on a shared server)
// are left out; their time is "other" in the split.
type pgProcs struct {
	postmaster int
	database   string
}

type pgSample struct {
	backends   map[int]time.Duration // pid → CPU of backends of our database
	background map[int]time.Duration // pid → CPU of server processes not serving a database
}

func (p pgProcs) sample() pgSample {
	s := pgSample{backends: map[int]time.Duration{}, background: map[int]time.Duration{}}
	if p.postmaster == 0 {
		return s
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		f, err := statFields(pid)
		if err != nil || f[1] != strconv.Itoa(p.postmaster) {
			continue
		}
		cpu, _, err := procCPU(pid)
		if err != nil {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join(d, "cmdline"))
		switch kind := backendOf(string(cmd), p.database); kind {
		case "ours":
			s.backends[pid] = cpu
		case "background":
			s.background[pid] = cpu
		}
	}
	return s
}

// backendOf classifies a PostgreSQL child process by its title, e.g.
// "postgres: 15/main: postgres taxrefund_bench 127.0.0.1(50092) idle" (a backend of
// taxrefund_bench) or "postgres: 15/main: walwriter" (background).
//
// A process still starting (its command line is still the postmaster's) or exiting (an
// empty command line) is "unknown": it is left out of this sample.
func backendOf(title, database string) string {
	title = strings.TrimRight(strings.ReplaceAll(title, "\x00", " "), " ")
	if !strings.HasPrefix(title, "postgres: ") {
		return "unknown"
	}
	f := strings.Fields(title)
	for _, w := range f {
		if strings.HasSuffix(w, ")") && strings.Contains(w, "(") || w == "[local]" {
			// A client backend: "user database host(port) state".
			for _, x := range f {
				if x == database {
					return "ours"
				}
			}
			return "other"
		}
	}
	return "background"
}

// update records the CPU times of now in s, keeping processes that have since exited.
func (s pgSample) update(now pgSample) {
	for pid, v := range now.backends {
		s.backends[pid] = v
	}
	for pid, v := range now.background {
		s.background[pid] = v
	}
}

// since returns the CPU time used between an earlier sample and s, per group. A process
// that started in between counts from zero; one that exited is lost (backends of pooled
// connections live for the whole run).
func (s pgSample) since(earlier pgSample) (backends, background time.Duration) {
	delta := func(now, then map[int]time.Duration) time.Duration {
		var d time.Duration
		for pid, v := range now {
			d += v - then[pid]
		}
		return d
	}
	return delta(s.backends, earlier.backends), delta(s.background, earlier.background)
}

// CPUSplit is where the machine's CPU time went during a measurement, in seconds.
type CPUSplit struct {
	Seconds float64 `json:"seconds"` // wall-clock length of the measurement
	Cores   int     `json:"cores"`
	// Busy is the machine's busy time, every core, every process.
	Busy float64 `json:"busy_s"`
	// Server is the taxrefund server (service runs only).
	Server float64 `json:"server_s"`
	// Postgres is the backends of the benchmark database; PostgresBackground the server's
	// own processes (WAL writer, checkpointer, autovacuum).
	Postgres           float64 `json:"postgres_s"`
	PostgresBackground float64 `json:"postgres_background_s"`
	// Client is the load generator, or pgbench for a baseline.
	Client float64 `json:"client_s"`
	// Other is the rest of Busy: other processes on a shared machine.
	Other float64 `json:"other_s"`
}
