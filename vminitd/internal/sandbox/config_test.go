package sandbox

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/container-vm/container/vminitd/internal/errdefs"
)

func TestParseRlimit(t *testing.T) {
	r, err := ParseRlimit("nofile", 1024, 2048)
	if err != nil || r != (Rlimit{Resource: unix.RLIMIT_NOFILE, Soft: 1024, Hard: 2048}) {
		t.Fatalf("nofile: %+v %v", r, err)
	}
	if r, err := ParseRlimit("RLIMIT_CORE", 0, ^uint64(0)); err != nil || r.Resource != unix.RLIMIT_CORE {
		t.Fatalf("RLIMIT_CORE: %+v %v", r, err)
	}
	for _, c := range []struct {
		name       string
		soft, hard uint64
		want       string
	}{
		{"files", 1, 1, `unknown rlimit type "files"`},
		{"nproc", 10, 5, "rlimit nproc: soft limit 10 is above the hard limit 5"},
	} {
		_, err := ParseRlimit(c.name, c.soft, c.hard)
		if errdefs.CodeOf(err) != errdefs.InvalidArgument || err.Error() != c.want {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

func TestValidateTmpfs(t *testing.T) {
	ok := Tmpfs{Path: "/run/../scratch/", Options: []string{"size=1m"}}
	if err := ValidateTmpfs(&ok); err != nil || ok.Path != "/scratch" {
		t.Fatalf("%+v %v", ok, err)
	}
	for _, p := range []string{"run", "/", "/proc", "/proc/sys", "/sys", "/dev", "/dev/pts", "/x/../proc/sys"} {
		if err := ValidateTmpfs(&Tmpfs{Path: p}); errdefs.CodeOf(err) != errdefs.InvalidArgument {
			t.Errorf("%s accepted: %v", p, err)
		}
	}
	if err := ValidateTmpfs(&Tmpfs{Path: "/x", Options: []string{"size=1m\nro"}}); err == nil {
		t.Error("an option with a newline accepted")
	}
}

func TestSysctlPath(t *testing.T) {
	p, err := SysctlPath("net.ipv4.ip_forward")
	if err != nil || p != "/proc/sys/net/ipv4/ip_forward" {
		t.Fatalf("%q %v", p, err)
	}
	for _, name := range []string{"", "kernel", "../x.y", "net..ipv4", "net.ipv4/../x", "net.ipv4.ip forward", ".net.x"} {
		if _, err := SysctlPath(name); errdefs.CodeOf(err) != errdefs.InvalidArgument {
			t.Errorf("%q accepted", name)
		}
	}
}

func TestValidateHostname(t *testing.T) {
	for _, ok := range []string{"a", "web-1", "0123456789ab", "a.b.c", strings.Repeat("x", 64)} {
		if err := ValidateHostname(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-a", "a-", "a b", "a/b", strings.Repeat("x", 65), "é"} {
		if err := ValidateHostname(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestExitCodeOf(t *testing.T) {
	// Wait statuses as the kernel encodes them: exit code in bits 8-15,
	// a terminating signal in bits 0-6.
	if got := exitCodeOf(unix.WaitStatus(3 << 8)); got != 3 {
		t.Errorf("exit 3: %d", got)
	}
	if got := exitCodeOf(unix.WaitStatus(unix.SIGTERM)); got != 143 {
		t.Errorf("SIGTERM: %d", got)
	}
}
