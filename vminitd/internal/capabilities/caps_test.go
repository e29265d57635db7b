package capabilities

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/container-vm/container/vminitd/internal/errdefs"
)

// The numbers must be the kernel's: check them against x/sys/unix, which is
// generated from the kernel headers.
func TestNumbers(t *testing.T) {
	want := map[Cap]int{
		Chown: unix.CAP_CHOWN, DacOverride: unix.CAP_DAC_OVERRIDE, DacReadSearch: unix.CAP_DAC_READ_SEARCH,
		Fowner: unix.CAP_FOWNER, Fsetid: unix.CAP_FSETID, Kill: unix.CAP_KILL, Setgid: unix.CAP_SETGID,
		Setuid: unix.CAP_SETUID, Setpcap: unix.CAP_SETPCAP, LinuxImmutable: unix.CAP_LINUX_IMMUTABLE,
		NetBindService: unix.CAP_NET_BIND_SERVICE, NetBroadcast: unix.CAP_NET_BROADCAST,
		NetAdmin: unix.CAP_NET_ADMIN, NetRaw: unix.CAP_NET_RAW, IpcLock: unix.CAP_IPC_LOCK,
		IpcOwner: unix.CAP_IPC_OWNER, SysModule: unix.CAP_SYS_MODULE, SysRawio: unix.CAP_SYS_RAWIO,
		SysChroot: unix.CAP_SYS_CHROOT, SysPtrace: unix.CAP_SYS_PTRACE, SysPacct: unix.CAP_SYS_PACCT,
		SysAdmin: unix.CAP_SYS_ADMIN, SysBoot: unix.CAP_SYS_BOOT, SysNice: unix.CAP_SYS_NICE,
		SysResource: unix.CAP_SYS_RESOURCE, SysTime: unix.CAP_SYS_TIME, SysTtyConfig: unix.CAP_SYS_TTY_CONFIG,
		Mknod: unix.CAP_MKNOD, Lease: unix.CAP_LEASE, AuditWrite: unix.CAP_AUDIT_WRITE,
		AuditControl: unix.CAP_AUDIT_CONTROL, Setfcap: unix.CAP_SETFCAP, MacOverride: unix.CAP_MAC_OVERRIDE,
		MacAdmin: unix.CAP_MAC_ADMIN, Syslog: unix.CAP_SYSLOG, WakeAlarm: unix.CAP_WAKE_ALARM,
		BlockSuspend: unix.CAP_BLOCK_SUSPEND, AuditRead: unix.CAP_AUDIT_READ, Perfmon: unix.CAP_PERFMON,
		Bpf: unix.CAP_BPF, CheckpointRestore: unix.CAP_CHECKPOINT_RESTORE,
	}
	if len(want) != int(Last)+1 || Last != 40 {
		t.Fatalf("%d capabilities up to %d, want 41 up to 40", len(want), Last)
	}
	for c, n := range want {
		if int(c) != n {
			t.Errorf("%s = %d, kernel says %d", c, c, n)
		}
	}
}

func TestStringAndNormalize(t *testing.T) {
	for _, c := range All() {
		name := c.String()
		if !strings.HasPrefix(name, "CAP_") {
			t.Errorf("%d: name %q", c, name)
		}
		short := strings.TrimPrefix(name, "CAP_")
		for _, spelling := range []string{name, short, strings.ToLower(short), strings.ToLower(name)} {
			if got, err := Normalize(spelling); err != nil || got != c {
				t.Errorf("Normalize(%q) = %v, %v; want %v", spelling, got, err, c)
			}
		}
	}
	if got, err := Normalize("Cap_Chown"); err != nil || got != Chown {
		t.Errorf("Normalize(Cap_Chown) = %v, %v", got, err)
	}
	if Cap(41).String() != "CAP_41" {
		t.Errorf("unknown: %q", Cap(41).String())
	}
	for _, bad := range []string{"", "CAP_", "ALL", "chown ", "CAP_CAP_CHOWN", "NET-RAW", "foo"} {
		_, err := Normalize(bad)
		if !errdefs.Is(err, errdefs.InvalidArgument) {
			t.Errorf("Normalize(%q): %v, want invalidArgument", bad, err)
		}
		if err != nil && !strings.Contains(err.Error(), `"`+bad+`"`) {
			t.Errorf("Normalize(%q): %q does not name it", bad, err)
		}
	}
}
