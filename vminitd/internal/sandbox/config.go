// Package sandbox isolates a container's processes inside the guest. Every
// process starts as a short-lived copy of vminitd (the shim, `vminitd shim`)
// that vminitd forks with the process's stdio; the shim reads a Config from
// fd 3, sets up what the kernel only lets a process do to itself (its root,
// its namespaces' mounts and hostname, its limits, user and capabilities),
// then execs the container's program in its place. Its pid is the program's.
//
// Why a shim: Go's fork-exec can put a child in new namespaces and a cgroup,
// and change its user, but it cannot pivot_root, mount /proc inside a new pid
// namespace, shrink the capability bounding set, set rlimits or
// no_new_privs between fork and exec.
//
// Failures before the exec are written to fd 4 (close-on-exec) as one
// "<code>\t<message>" line: vminitd reads fd 4 to its end, and an empty read
// means the program is running.
package sandbox

import (
	"path"
	"regexp"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/container-vm/container/vminitd/internal/capabilities"
	"github.com/container-vm/container/vminitd/internal/errdefs"
)

// Mode says where the shim starts.
type Mode string

const (
	// Create: born in new pid, mount, uts and ipc namespaces, in the
	// container's cgroup; the shim makes the container (Setup), then runs
	// the program (or an init for it).
	Create Mode = "create"
	// Join: born in a running container's namespaces; only the process's
	// own settings are applied.
	Join Mode = "join"
	// Child: --init's child, already inside the container.
	Child Mode = "child"
)

// Config is everything the shim needs; JSON on fd 3.
type Config struct {
	Mode Mode

	// Create only: the rootfs (a mount point, guest path) and the
	// container's settings.
	Rootfs   string            `json:",omitempty"`
	Hostname string            `json:",omitempty"`
	Tmpfs    []Tmpfs           `json:",omitempty"`
	Sysctls  map[string]string `json:",omitempty"`
	// Init runs Init as the container's PID 1, the program as its child.
	Init bool `json:",omitempty"`
	// Terminal: stdin is the process's controlling terminal (Init hands
	// the foreground to its child).
	Terminal bool `json:",omitempty"`

	// The program, as seen inside the container: Path is resolved already.
	Path string
	Args []string
	Env  []string
	Cwd  string

	UID, GID uint32
	Groups   []uint32 `json:",omitempty"`
	// Caps is the container's capability set (capabilities.Compute);
	// ForUser turns it into the sets for UID.
	Caps       []capabilities.Cap
	NoNewPrivs bool     `json:",omitempty"`
	Rlimits    []Rlimit `json:",omitempty"`
}

// Tmpfs is a tmpfs mount inside the container.
type Tmpfs struct {
	Path    string
	Options []string `json:",omitempty"`
}

// Rlimit is one resource limit; Resource is an RLIMIT_* number.
type Rlimit struct {
	Resource   int
	Soft, Hard uint64
}

// DefaultHostname is the hostname of a container that names none.
const DefaultHostname = "container"

// rlimitNames are Docker's --ulimit names (go-units' ulimit table).
var rlimitNames = map[string]int{
	"as": unix.RLIMIT_AS, "core": unix.RLIMIT_CORE, "cpu": unix.RLIMIT_CPU,
	"data": unix.RLIMIT_DATA, "fsize": unix.RLIMIT_FSIZE, "locks": unix.RLIMIT_LOCKS,
	"memlock": unix.RLIMIT_MEMLOCK, "msgqueue": unix.RLIMIT_MSGQUEUE, "nice": unix.RLIMIT_NICE,
	"nofile": unix.RLIMIT_NOFILE, "nproc": unix.RLIMIT_NPROC, "rss": unix.RLIMIT_RSS,
	"rtprio": unix.RLIMIT_RTPRIO, "rttime": unix.RLIMIT_RTTIME, "sigpending": unix.RLIMIT_SIGPENDING,
	"stack": unix.RLIMIT_STACK,
}

// ParseRlimit checks one limit by name: a known type, soft at most hard.
func ParseRlimit(name string, soft, hard uint64) (Rlimit, error) {
	r, ok := rlimitNames[strings.ToLower(strings.TrimPrefix(strings.ToUpper(name), "RLIMIT_"))]
	if !ok {
		return Rlimit{}, errdefs.InvalidArgumentf("unknown rlimit type %q", name)
	}
	if soft > hard {
		return Rlimit{}, errdefs.InvalidArgumentf("rlimit %s: soft limit %d is above the hard limit %d", name, soft, hard)
	}
	return Rlimit{Resource: r, Soft: soft, Hard: hard}, nil
}

// ValidateTmpfs checks a tmpfs mount: an absolute path that is not "/" or
// one of the pseudo filesystems the container needs.
func ValidateTmpfs(t *Tmpfs) error {
	if !path.IsAbs(t.Path) {
		return errdefs.InvalidArgumentf("tmpfs path %q must be absolute", t.Path)
	}
	t.Path = path.Clean(t.Path)
	switch {
	case t.Path == "/", t.Path == "/dev", t.Path == "/dev/pts", t.Path == "/sys", t.Path == "/proc", strings.HasPrefix(t.Path, "/proc/"):
		return errdefs.InvalidArgumentf("tmpfs cannot be mounted on %s", t.Path)
	}
	for _, o := range t.Options {
		if strings.ContainsAny(o, "\x00\n") {
			return errdefs.InvalidArgumentf("tmpfs %s: invalid option %q", t.Path, o)
		}
	}
	return nil
}

var (
	sysctlName = regexp.MustCompile(`^[a-z0-9_]+(\.[a-zA-Z0-9_-]+)+$`)
	hostname   = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?$`)
)

// SysctlPath is the /proc/sys file of a sysctl name ("net.ipv4.ip_forward"),
// or an error for a name that is not one.
func SysctlPath(name string) (string, error) {
	if !sysctlName.MatchString(name) {
		return "", errdefs.InvalidArgumentf("invalid sysctl name %q", name)
	}
	return "/proc/sys/" + strings.ReplaceAll(name, ".", "/"), nil
}

// ValidateHostname checks a hostname the way the kernel and RFC 1123 would
// take it.
func ValidateHostname(name string) error {
	if len(name) > 64 || !hostname.MatchString(name) {
		return errdefs.InvalidArgumentf("invalid hostname %q", name)
	}
	return nil
}

// exitCodeOf is how Init reports its child's end: its exit code, or 128+N
// for signal N, as a shell does.
func exitCodeOf(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// Masked are hidden from the container (Docker's defaults): a file gets
// /dev/null bound over it, a directory an empty read-only tmpfs.
var Masked = []string{
	"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
	"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
	"/sys/firmware", "/sys/devices/virtual/powercap",
}

// ReadOnly are bound read-only over themselves (Docker's defaults).
var ReadOnly = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
