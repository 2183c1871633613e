package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// CPU time is read from /proc (utime + stime, in clock ticks of 1/100 s:
// USER_HZ is 100 on Linux whatever the kernel's HZ), so the split between
// tokenstore, PostgreSQL and the load generator is measured, not guessed.
// PostgreSQL is many processes: the postmaster, its live children, and,
// through the postmaster's cutime/cstime, the backends that ended (pgbench
// and tokenstore connect once, so few end during a measurement). The load
// generator is this program's child; its time comes from its wait status.

const ticksPerSecond = 100

// cpuSnapshot is the CPU time used so far by each party, and the
// machine's busy and total time (all CPUs), in ticks.
type cpuSnapshot struct {
	server, postgres uint64
	busy, total      uint64
}

// cpuUse is the CPU each party used between two snapshots, in seconds, with
// the wall time and the machine's capacity (CPUs × wall).
type cpuUse struct {
	wall                      time.Duration
	server, postgres, loadgen float64
	busy, capacity            float64
}

// other is the CPU the rest of the machine used meanwhile (other
// processes, interrupts): what makes absolute figures on a shared machine
// unreliable, and why only ratios within one run count.
func (u cpuUse) other() float64 {
	return max(u.busy-u.server-u.postgres-u.loadgen, 0)
}

func (u cpuUse) add(v cpuUse) cpuUse {
	return cpuUse{wall: u.wall + v.wall, server: u.server + v.server, postgres: u.postgres + v.postgres,
		loadgen: u.loadgen + v.loadgen, busy: u.busy + v.busy, capacity: u.capacity + v.capacity}
}

// snapshot reads the counters of server (pids, summed) and the cluster
// whose postmaster is postmaster.
func snapshot(postmaster int, server ...int) (cpuSnapshot, error) {
	var s cpuSnapshot
	var err error
	for _, pid := range server {
		st, err := readStat(pid)
		if err != nil {
			return s, err
		}
		s.server += st.utime + st.stime
	}
	if s.postgres, err = clusterTicks(postmaster); err != nil {
		return s, err
	}
	s.busy, s.total, err = machineTicks()
	return s, err
}

// clusterTicks is the CPU time of the postmaster and of every process it
// started, ended ones included. A backend reaped while its siblings are
// read would move its time into the postmaster's cutime after that was
// read (lost) or after the backend was read (counted twice), and a zombie
// not yet reaped may not show its time: the reading is retried until no
// child is a zombie and the postmaster's cutime+cstime did not change
// around it. Backends end right when a load generator does, so this
// matters at every measurement's end.
func clusterTicks(postmaster int) (uint64, error) {
	for attempt := 0; ; attempt++ {
		before, err := readStat(postmaster)
		if err != nil {
			return 0, err
		}
		children, err := childrenOf(postmaster)
		if err != nil {
			return 0, err
		}
		var sum uint64
		zombie := false
		for _, pid := range children {
			st, err := readStat(pid)
			if err != nil {
				zombie = true // ended meanwhile: read again
				break
			}
			zombie = zombie || st.state == "Z"
			sum += st.utime + st.stime
		}
		after, err := readStat(postmaster)
		if err != nil {
			return 0, err
		}
		if !zombie && before.cutime+before.cstime == after.cutime+after.cstime {
			return after.utime + after.stime + after.cutime + after.cstime + sum, nil
		}
		if attempt == 500 {
			return 0, fmt.Errorf("the CPU time of PostgreSQL (postmaster %d) did not settle: its children keep ending", postmaster)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// since is the use between before and s; loadgen is the load generator's
// CPU time.
func (s cpuSnapshot) since(before cpuSnapshot, wall, loadgen time.Duration, cpus int) cpuUse {
	sec := func(a, b uint64) float64 {
		if a < b {
			return 0
		}
		return float64(a-b) / ticksPerSecond
	}
	return cpuUse{wall: wall, server: sec(s.server, before.server), postgres: sec(s.postgres, before.postgres),
		loadgen: loadgen.Seconds(), busy: sec(s.busy, before.busy), capacity: wall.Seconds() * float64(cpus)}
}

type procStat struct {
	state                        string
	ppid                         int
	utime, stime, cutime, cstime uint64
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	return parseStat(string(b))
}

// parseStat reads /proc/PID/stat (proc(5)): the command name, field 2, is
// in parentheses and may hold spaces and parentheses, so fields are counted
// after its last ')'.
func parseStat(s string) (procStat, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("unexpected /proc stat line %.40q", s)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); ppid is field 4, utime..cstime fields 14-17.
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("unexpected /proc stat line %.40q", s)
	}
	st := procStat{state: f[0]}
	var err error
	if st.ppid, err = strconv.Atoi(f[1]); err != nil {
		return st, err
	}
	for k, p := range []*uint64{&st.utime, &st.stime, &st.cutime, &st.cstime} {
		if *p, err = strconv.ParseUint(f[11+k], 10, 64); err != nil {
			return st, err
		}
	}
	return st, nil
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) ([]int, error) {
	paths, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return nil, err
	}
	var out []int
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // ended meanwhile
		}
		st, err := parseStat(string(b))
		if err != nil || st.ppid != pid {
			continue
		}
		child, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		out = append(out, child)
	}
	return out, nil
}

// machineTicks reads the first line of /proc/stat: busy is every state but
// idle and iowait.
func machineTicks() (busy, total uint64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	return parseMachineTicks(string(b))
}

func parseMachineTicks(s string) (busy, total uint64, err error) {
	line, _, _ := strings.Cut(s, "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("unexpected /proc/stat line %.60q", line)
	}
	// user nice system idle iowait irq softirq steal [guest guest_nice]
	// (guest time is already counted in user).
	for i, v := range f[1:min(len(f), 9)] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, 0, err
		}
		total += n
		if i != 3 && i != 4 {
			busy += n
		}
	}
	return busy, total, nil
}

// loadAverage is /proc/loadavg's first three fields.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
