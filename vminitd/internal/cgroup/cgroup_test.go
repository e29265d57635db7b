package cgroup

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestCPUMax(t *testing.T) {
	for cpus, want := range map[float64]string{0: "max 100000", 1: "100000 100000", 2: "200000 100000", 0.5: "50000 100000", 1.25: "125000 100000"} {
		if got := CPUMax(cpus); got != want {
			t.Errorf("CPUMax(%v) = %q, want %q", cpus, got, want)
		}
	}
}

// A fake group directory: the files behave like plain files, which is all
// SetLimits and Stats need.
func TestLimitsAndStats(t *testing.T) {
	root := t.TempDir()
	g, err := Create(root, "container", Limits{CPUs: 2, MemoryBytes: 512 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{"cpu.max": "200000 100000", "memory.max": "536870912", "pids.max": "max"} {
		b, _ := os.ReadFile(filepath.Join(g.Path, file))
		if string(b) != want {
			t.Errorf("%s = %q, want %q", file, b, want)
		}
	}
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(g.Path, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 0\n")
	write("memory.stat", "anon 4096\nfile 8192\nkernel 100\n")
	write("memory.current", "12288\n")
	write("pids.current", "3\n")
	s, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{CPUUsageUs: 1500, CPUUserUs: 1000, CPUSystemUs: 500, MemoryCurrent: 12288, MemoryMax: 512 << 20, MemoryAnon: 4096, MemoryFile: 8192, PidsCurrent: 3}
	if s != want {
		t.Fatalf("Stats = %+v, want %+v", s, want)
	}
}

// A fake group whose "kernel" (a goroutine) reports the freeze a little
// later, as the real one does once every task has stopped.
func TestFreezeWaitsForTheKernel(t *testing.T) {
	g := &Group{Path: t.TempDir()}
	events := filepath.Join(g.Path, "cgroup.events")
	write := func(name, text string) {
		if err := os.WriteFile(name, []byte(text), 0o644); err != nil {
			t.Error(err)
		}
	}
	write(events, "populated 1\nfrozen 0\n")
	write(filepath.Join(g.Path, "cgroup.freeze"), "0")
	go func() {
		time.Sleep(30 * time.Millisecond)
		write(events, "populated 1\nfrozen 1\n")
	}()
	t0 := time.Now()
	if err := g.Freeze(context.Background()); err != nil {
		t.Fatal(err)
	}
	if time.Since(t0) < 30*time.Millisecond {
		t.Fatal("returned before the group was frozen")
	}
	if b, _ := os.ReadFile(filepath.Join(g.Path, "cgroup.freeze")); string(b) != "1" {
		t.Fatalf("cgroup.freeze = %q", b)
	}

	// Never thawed: the caller's deadline ends the wait.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := g.Thaw(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("thaw: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(g.Path, "cgroup.freeze")); string(b) != "0" {
		t.Fatalf("cgroup.freeze = %q", b)
	}
	if err := (&Group{Path: filepath.Join(g.Path, "gone")}).Freeze(context.Background()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing group: %v", err)
	}
}
