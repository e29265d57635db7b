package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/container-vm/container/vminitd/internal/capabilities"
	"github.com/container-vm/container/vminitd/internal/errdefs"
	"github.com/container-vm/container/vminitd/internal/mount"
)

// The shim's extra file descriptors, after stdin, stdout and stderr.
const (
	ConfigFD = 3
	StatusFD = 4
)

// ShimArg is vminitd's first argument in shim mode.
const ShimArg = "shim"

// Main is `vminitd shim`: it only returns (with the exit code) when it could
// not exec the program, or as --init when the program has ended.
func Main() int {
	// Namespaces, credentials and capabilities are per thread: everything
	// from here to the exec happens on this one.
	runtime.LockOSThread()
	status := os.NewFile(StatusFD, "status")
	unix.CloseOnExec(StatusFD)
	code, err := run(status)
	if err != nil {
		_, _ = status.WriteString(errdefs.Line(err))
		return 127
	}
	return code
}

func run(status *os.File) (int, error) {
	f := os.NewFile(ConfigFD, "config")
	var cfg Config
	err := json.NewDecoder(f).Decode(&cfg)
	_ = f.Close()
	if err != nil {
		return 0, errdefs.Internalf("read the shim's config: %w", err)
	}
	switch cfg.Mode {
	case Create:
		if err := Setup(&cfg); err != nil {
			return 0, err
		}
		if cfg.Init {
			return Init(&cfg, status)
		}
	case Join, Child:
	default:
		return 0, errdefs.InvalidArgumentf("unknown shim mode %q", cfg.Mode)
	}
	return 0, Exec(&cfg)
}

// Setup makes the container around the calling process, which was born in
// new pid, mount, uts and ipc namespaces inside the container's cgroup:
// a cgroup namespace rooted there, /proc for the new pid namespace, the
// rootfs as "/", the tmpfs mounts, sysctls, masked and read-only paths, and
// the hostname. Nothing of it is visible to the guest.
func Setup(cfg *Config) error {
	// Nothing mounted from here on may propagate back to the guest.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return errdefs.Internalf("make the mounts private: %w", err)
	}
	if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
		return errdefs.Internalf("new cgroup namespace: %w", err)
	}
	proc := filepath.Join(cfg.Rootfs, "proc")
	if fi, err := os.Lstat(proc); err != nil || !fi.IsDir() {
		return errdefs.Internalf("rootfs has no /proc directory to mount on")
	}
	if err := unix.Mount("proc", proc, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return errdefs.Internalf("mount /proc: %w", err)
	}
	if err := pivotRoot(cfg.Rootfs); err != nil {
		return errdefs.Internalf("pivot_root into %s: %w", cfg.Rootfs, err)
	}
	// From here "/" is the rootfs: every path below, symlinks included,
	// resolves inside it.
	for _, t := range cfg.Tmpfs {
		if err := os.MkdirAll(t.Path, 0o755); err != nil {
			return errdefs.InvalidArgumentf("tmpfs %s: %v", t.Path, err)
		}
		o := mount.ParseOptions(t.Options)
		if err := unix.Mount("tmpfs", t.Path, "tmpfs", o.Flags|unix.MS_NOSUID|unix.MS_NODEV, o.Data); err != nil {
			return errdefs.InvalidArgumentf("mount tmpfs on %s: %v", t.Path, err)
		}
	}
	for name, value := range cfg.Sysctls {
		p, err := SysctlPath(name)
		if err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(value), 0); err != nil {
			return errdefs.InvalidArgumentf("sysctl %s=%s: %v", name, value, err)
		}
	}
	for _, p := range Masked {
		if err := mask(p); err != nil {
			return errdefs.Internalf("mask %s: %w", p, err)
		}
	}
	for _, p := range ReadOnly {
		if err := bindReadOnly(p); err != nil {
			return errdefs.Internalf("make %s read-only: %w", p, err)
		}
	}
	hostname := cfg.Hostname
	if hostname == "" {
		hostname = DefaultHostname
	}
	if err := unix.Sethostname([]byte(hostname)); err != nil {
		return errdefs.Internalf("set the hostname: %w", err)
	}
	return nil
}

// pivotRoot makes rootfs (a mount point) the root: pivot_root(".", ".")
// stacks the old root on top of the new one, and unmounting it leaves the
// new one. No directory for the old root is needed in a rootfs that may be
// read-only.
func pivotRoot(rootfs string) error {
	old, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(old)
	if err := unix.Chdir(rootfs); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return err
	}
	if err := unix.Fchdir(old); err != nil {
		return err
	}
	// The old root's unmount must not reach the guest's copy of it.
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return err
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return err
	}
	return unix.Chdir("/")
}

// mask hides p: /dev/null over a file, an empty read-only tmpfs over a
// directory. A path the kernel does not have is left alone.
func mask(p string) error {
	fi, err := os.Lstat(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=0")
	}
	return unix.Mount("/dev/null", p, "", unix.MS_BIND, "")
}

// bindReadOnly binds p read-only over itself; a missing path is left alone.
func bindReadOnly(p string) error {
	if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	return unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
}

// Exec applies the process's own settings to the calling thread and execs
// the program: limits, working directory, user and groups, capabilities,
// no_new_privs. It returns only on failure.
func Exec(cfg *Config) error {
	for _, r := range cfg.Rlimits {
		// syscall's Setrlimit, so that Go does not restore its own
		// RLIMIT_NOFILE at the exec.
		if err := syscall.Setrlimit(r.Resource, &syscall.Rlimit{Cur: r.Soft, Max: r.Hard}); err != nil {
			return errdefs.InvalidArgumentf("set rlimit %d to %d:%d: %v", r.Resource, r.Soft, r.Hard, err)
		}
	}
	if err := unix.Chdir(cfg.Cwd); err != nil {
		return errdefs.NotFoundf("working directory %s: %v", cfg.Cwd, err)
	}
	if err := switchUser(cfg.UID, cfg.GID, cfg.Groups); err != nil {
		return errdefs.Internalf("switch to user %d:%d: %w", cfg.UID, cfg.GID, err)
	}
	if err := capabilities.Apply(capabilities.ForUser(cfg.Caps, cfg.UID)); err != nil {
		return err
	}
	if cfg.NoNewPrivs {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return errdefs.Internalf("no_new_privs: %w", err)
		}
	}
	err := unix.Exec(cfg.Path, cfg.Args, cfg.Env)
	return execError(cfg.Path, err)
}

// switchUser changes this thread's groups and ids, keeping its permitted
// capabilities for capabilities.Apply (step 1 of the sequence it
// documents). Raw syscalls: the libc-style wrappers change every thread.
func switchUser(uid, gid uint32, groups []uint32) error {
	if uid != 0 {
		if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("keepcaps: %w", err)
		}
	}
	gs := make([]uint32, 0, len(groups))
	for _, g := range groups {
		if g != gid {
			gs = append(gs, g)
		}
	}
	var list unsafe.Pointer
	if len(gs) > 0 {
		list = unsafe.Pointer(&gs[0])
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(gs)), uintptr(list), 0); e != 0 {
		return fmt.Errorf("setgroups: %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(gid), uintptr(gid), uintptr(gid)); e != 0 {
		return fmt.Errorf("setresgid: %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(uid), uintptr(uid), uintptr(uid)); e != 0 {
		return fmt.Errorf("setresuid: %w", e)
	}
	return nil
}

// execError gives a failed exec its code, as a shell's exit statuses do:
// missing is notFound (127), anything else invalidArgument (126).
func execError(name string, err error) error {
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		return errdefs.WithHint(errdefs.NotFoundf("exec %s: %v", name, err),
			"a script's interpreter (#!) or a shared library loader may be missing from the rootfs")
	case errors.Is(err, unix.ENOEXEC):
		return errdefs.WithHint(errdefs.InvalidArgumentf("exec %s: %v", name, err),
			"the executable may be built for another architecture")
	}
	return errdefs.InvalidArgumentf("exec %s: %v", name, strings.TrimSpace(err.Error()))
}
