package system

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/container-vm/container/vminitd/internal/errdefs"
)

func TestSysctlPath(t *testing.T) {
	for name, want := range map[string]string{
		"vm.swappiness":                   "/p/vm/swappiness",
		"net/ipv4/conf/eth0.1/forwarding": "/p/net/ipv4/conf/eth0.1/forwarding",
		"net.ipv4.conf.all.rp_filter":     "/p/net/ipv4/conf/all/rp_filter",
		"kernel.sched_child_runs_first":   "/p/kernel/sched_child_runs_first",
	} {
		if got, err := SysctlPath("/p", name); err != nil || got != want {
			t.Errorf("%q: %q %v, want %q", name, got, err, want)
		}
	}
	for _, name := range []string{"", "vm..swappiness", "../etc/passwd", "net/../../etc", "a/./b", "/vm/x", "vm.", "a b", "net/x/..", "a\x00b"} {
		if _, err := SysctlPath("/p", name); !errdefs.Is(err, errdefs.InvalidArgument) {
			t.Errorf("%q: %v, want invalidArgument", name, err)
		}
	}
}

func TestSysctl(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "vm"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "vm", "swappiness"), []byte("60\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if v, err := Sysctl(dir, "vm.swappiness", nil); err != nil || v != "60" {
		t.Fatalf("get: %q %v", v, err)
	}
	ten := "10"
	if v, err := Sysctl(dir, "vm/swappiness", &ten); err != nil || v != "10" {
		t.Fatalf("set: %q %v", v, err)
	}
	if _, err := Sysctl(dir, "vm.nope", &ten); !errdefs.Is(err, errdefs.NotFound) {
		t.Fatalf("unknown (set): %v", err)
	}
	if _, err := Sysctl(dir, "vm.nope", nil); !errdefs.Is(err, errdefs.NotFound) {
		t.Fatalf("unknown (get): %v", err)
	}
	if _, err := Sysctl(dir, "vm", nil); !errdefs.Is(err, errdefs.InvalidArgument) {
		t.Fatalf("directory: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "vm")); len(entries) != 1 {
		t.Fatalf("a sysctl was created: %v", entries)
	}
}

func TestEnv(t *testing.T) {
	t.Setenv("VMINITD_TEST_ENV", "")
	if err := Setenv("VMINITD_TEST_ENV", "a=b"); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := Getenv("VMINITD_TEST_ENV"); err != nil || !ok || v != "a=b" {
		t.Fatalf("%q %v %v", v, ok, err)
	}
	if _, ok, err := Getenv("VMINITD_TEST_NEVER_SET"); err != nil || ok {
		t.Fatalf("unset: %v %v", ok, err)
	}
	for _, k := range []string{"", "A=B", "A\x00"} {
		if err := Setenv(k, "x"); !errdefs.Is(err, errdefs.InvalidArgument) {
			t.Errorf("Setenv(%q): %v", k, err)
		}
		if _, _, err := Getenv(k); !errdefs.Is(err, errdefs.InvalidArgument) {
			t.Errorf("Getenv(%q): %v", k, err)
		}
	}
	if err := Setenv("K", "a\x00b"); !errdefs.Is(err, errdefs.InvalidArgument) {
		t.Errorf("NUL value: %v", err)
	}
}
