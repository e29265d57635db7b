// Package capabilities computes a container process's Linux capabilities
// the way Docker does (its default set, --cap-add and --cap-drop) and
// applies them to the calling thread before it execs the process.
package capabilities

import (
	"strconv"
	"strings"

	"github.com/container-vm/container/vminitd/internal/errdefs"
)

// Cap is a Linux capability, by its number (include/uapi/linux/capability.h).
type Cap int

// Every capability up to CAP_CHECKPOINT_RESTORE (Linux 5.9), in number order.
const (
	Chown             Cap = iota // CAP_CHOWN
	DacOverride                  // CAP_DAC_OVERRIDE
	DacReadSearch                // CAP_DAC_READ_SEARCH
	Fowner                       // CAP_FOWNER
	Fsetid                       // CAP_FSETID
	Kill                         // CAP_KILL
	Setgid                       // CAP_SETGID
	Setuid                       // CAP_SETUID
	Setpcap                      // CAP_SETPCAP
	LinuxImmutable               // CAP_LINUX_IMMUTABLE
	NetBindService               // CAP_NET_BIND_SERVICE
	NetBroadcast                 // CAP_NET_BROADCAST
	NetAdmin                     // CAP_NET_ADMIN
	NetRaw                       // CAP_NET_RAW
	IpcLock                      // CAP_IPC_LOCK
	IpcOwner                     // CAP_IPC_OWNER
	SysModule                    // CAP_SYS_MODULE
	SysRawio                     // CAP_SYS_RAWIO
	SysChroot                    // CAP_SYS_CHROOT
	SysPtrace                    // CAP_SYS_PTRACE
	SysPacct                     // CAP_SYS_PACCT
	SysAdmin                     // CAP_SYS_ADMIN
	SysBoot                      // CAP_SYS_BOOT
	SysNice                      // CAP_SYS_NICE
	SysResource                  // CAP_SYS_RESOURCE
	SysTime                      // CAP_SYS_TIME
	SysTtyConfig                 // CAP_SYS_TTY_CONFIG
	Mknod                        // CAP_MKNOD
	Lease                        // CAP_LEASE
	AuditWrite                   // CAP_AUDIT_WRITE
	AuditControl                 // CAP_AUDIT_CONTROL
	Setfcap                      // CAP_SETFCAP
	MacOverride                  // CAP_MAC_OVERRIDE
	MacAdmin                     // CAP_MAC_ADMIN
	Syslog                       // CAP_SYSLOG
	WakeAlarm                    // CAP_WAKE_ALARM
	BlockSuspend                 // CAP_BLOCK_SUSPEND
	AuditRead                    // CAP_AUDIT_READ
	Perfmon                      // CAP_PERFMON
	Bpf                          // CAP_BPF
	CheckpointRestore            // CAP_CHECKPOINT_RESTORE

	// Last is the highest capability this package knows.
	Last = CheckpointRestore
)

// names are the kernel's names, indexed by number.
var names = [Last + 1]string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
	"CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
	"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
	"CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
	"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// String is the kernel's name, "CAP_CHOWN"; a number this package does not
// know prints as "CAP_41".
func (c Cap) String() string {
	if c >= 0 && c <= Last {
		return names[c]
	}
	return "CAP_" + strconv.Itoa(int(c))
}

// All lists every capability this package knows, in number order.
func All() []Cap {
	all := make([]Cap, 0, Last+1)
	for c := Cap(0); c <= Last; c++ {
		all = append(all, c)
	}
	return all
}

// Normalize maps a capability name as users write it to its Cap: case does
// not matter and the CAP_ prefix is optional ("chown", "CAP_CHOWN" and
// "Cap_Chown" are all CAP_CHOWN), as with docker's --cap-add. Anything else,
// "ALL" included (Compute handles that), is an invalidArgument error naming
// the capability.
func Normalize(name string) (Cap, error) {
	n := strings.ToUpper(name)
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	for c, known := range names {
		if n == known {
			return Cap(c), nil
		}
	}
	return 0, errdefs.InvalidArgumentf("unknown capability %q", name)
}
