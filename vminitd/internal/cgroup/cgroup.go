// Package cgroup places the guest's processes in the unified (v2) hierarchy:
// vminitd in a group of its own with a memory cap, and every process of the
// container in one group with the container's limits, which is also where
// its statistics come from.
package cgroup

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Root is where boot mounts cgroup2.
const Root = "/sys/fs/cgroup"

// Controllers are the ones the guest kernel has (kernel-config: MEMCG,
// CGROUP_PIDS, CFS_BANDWIDTH); io is not built.
var Controllers = []string{"cpu", "memory", "pids"}

// Group is one cgroup directory.
type Group struct {
	Path string
}

// Limits of a group; zero values mean "max".
type Limits struct {
	// CPUs is the CPU bandwidth in CPUs (cpu.max quota/period), e.g. 1.5.
	CPUs float64
	// MemoryBytes is memory.max.
	MemoryBytes int64
	// Pids is pids.max.
	Pids int64
}

// cpuPeriodUs is the cpu.max period; Docker's --cpus uses the same.
const cpuPeriodUs = 100000

// EnableControllers lets children of root use Controllers.
func EnableControllers(root string) error {
	parts := make([]string, len(Controllers))
	for i, c := range Controllers {
		parts[i] = "+" + c
	}
	return os.WriteFile(filepath.Join(root, "cgroup.subtree_control"), []byte(strings.Join(parts, " ")), 0)
}

// Create makes (or reuses) the group `name` under root and applies limits.
func Create(root, name string, l Limits) (*Group, error) {
	g := &Group{Path: filepath.Join(root, name)}
	if err := os.Mkdir(g.Path, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, err
	}
	return g, g.SetLimits(l)
}

// SetLimits writes cpu.max, memory.max and pids.max.
func (g *Group) SetLimits(l Limits) error {
	files := [][2]string{
		{"cpu.max", CPUMax(l.CPUs)},
		{"memory.max", maxOr(l.MemoryBytes)},
		{"pids.max", maxOr(l.Pids)},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(g.Path, f[0]), []byte(f[1]), 0); err != nil {
			return fmt.Errorf("set %s of %s: %w", f[0], g.Path, err)
		}
	}
	return nil
}

// CPUMax is the cpu.max line for a CPU count: "max 100000" for none.
func CPUMax(cpus float64) string {
	if cpus <= 0 {
		return fmt.Sprintf("max %d", cpuPeriodUs)
	}
	return fmt.Sprintf("%d %d", int64(cpus*cpuPeriodUs+0.5), cpuPeriodUs)
}

func maxOr(n int64) string {
	if n <= 0 {
		return "max"
	}
	return strconv.FormatInt(n, 10)
}

// Join moves the process pid into the group.
func (g *Group) Join(pid int) error {
	return os.WriteFile(filepath.Join(g.Path, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0)
}

// OpenFD opens the group's directory for clone3's CLONE_INTO_CGROUP
// (syscall.SysProcAttr.CgroupFD): the child starts in the group, so not even
// its first instructions run outside the limits.
func (g *Group) OpenFD() (int, error) {
	return unix.Open(g.Path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
}

// Stats are a group's counters.
type Stats struct {
	CPUUsageUs, CPUUserUs, CPUSystemUs uint64
	MemoryCurrent, MemoryMax           uint64 // MemoryMax 0: no limit
	MemoryAnon, MemoryFile             uint64
	PidsCurrent, PidsMax               uint64 // PidsMax 0: no limit
}

// Stats reads the group's cpu.stat, memory.current, memory.max, memory.stat,
// pids.current and pids.max.
func (g *Group) Stats() (Stats, error) {
	var s Stats
	cpu, err := readKeyed(filepath.Join(g.Path, "cpu.stat"))
	if err != nil {
		return s, err
	}
	s.CPUUsageUs, s.CPUUserUs, s.CPUSystemUs = cpu["usage_usec"], cpu["user_usec"], cpu["system_usec"]
	mem, err := readKeyed(filepath.Join(g.Path, "memory.stat"))
	if err != nil {
		return s, err
	}
	s.MemoryAnon, s.MemoryFile = mem["anon"], mem["file"]
	for _, f := range []struct {
		name string
		dst  *uint64
	}{
		{"memory.current", &s.MemoryCurrent},
		{"memory.max", &s.MemoryMax},
		{"pids.current", &s.PidsCurrent},
		{"pids.max", &s.PidsMax},
	} {
		if *f.dst, err = readValue(filepath.Join(g.Path, f.name)); err != nil {
			return s, err
		}
	}
	return s, nil
}

// readValue reads a one-number file; "max" reads as 0.
func readValue(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	v := strings.TrimSpace(string(b))
	if v == "max" {
		return 0, nil
	}
	return strconv.ParseUint(v, 10, 64)
}

// readKeyed reads a "key value" per line file (cpu.stat, memory.stat).
func readKeyed(path string) (map[string]uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			out[k] = n
		}
	}
	return out, sc.Err()
}

// Freeze stops every process of the group (cgroup.freeze) and returns once
// cgroup.events says the group is frozen, or with ctx's error.
func (g *Group) Freeze(ctx context.Context) error { return g.setFrozen(ctx, true) }

// Thaw lets the group's processes run again, returning once cgroup.events
// says so.
func (g *Group) Thaw(ctx context.Context) error { return g.setFrozen(ctx, false) }

func (g *Group) setFrozen(ctx context.Context, frozen bool) error {
	want := uint64(0)
	if frozen {
		want = 1
	}
	if err := os.WriteFile(filepath.Join(g.Path, "cgroup.freeze"), []byte(strconv.FormatUint(want, 10)), 0); err != nil {
		return err
	}
	// Freezing takes as long as the slowest task needs to reach a safe
	// point: usually well under a millisecond, so poll from 1 ms up.
	wait := time.Millisecond
	for {
		events, err := readKeyed(filepath.Join(g.Path, "cgroup.events"))
		if err != nil {
			return err
		}
		if events["frozen"] == want {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}
