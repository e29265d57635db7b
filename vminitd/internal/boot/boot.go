// Package boot does what PID 1 must do before anything else runs, and what it
// must do last: the early mounts, the hostname, and the power-off.
package boot

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/container-vm/container/vminitd/internal/mount"
)

// step is one early mount.
type step struct {
	source, target, fstype string
	options                []string
}

// The root filesystem is a read-only ext4 image, so every target below exists
// in it already (scripts/build-initfs.mjs creates them); only the tmpfs ones
// give us writable places.
var steps = []step{
	// 1. /proc: the kernel command line (our config), /proc/self/mountinfo,
	//    and what every process in a container expects to find.
	{"proc", "/proc", "proc", []string{"nosuid", "nodev", "noexec"}},
	// 2. /sys: device and cgroup information; the cgroup2 mount point lives
	//    inside it.
	{"sysfs", "/sys", "sysfs", []string{"nosuid", "nodev", "noexec"}},
	// 3. /dev: device nodes (console, null, vda..., vsock) made by the kernel.
	//    Skipped when the kernel auto-mounted it (CONFIG_DEVTMPFS_MOUNT).
	{"devtmpfs", "/dev", "devtmpfs", []string{"nosuid", "mode=0755"}},
	// 4. /dev/pts: pseudo-terminals; a private instance with a usable ptmx.
	{"devpts", "/dev/pts", "devpts", []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
	// 5. /dev/shm: POSIX shared memory.
	{"shm", "/dev/shm", "tmpfs", []string{"nosuid", "nodev", "mode=1777"}},
	// 6. /run: the one writable directory tree of the guest; container
	//    rootfs mounts and runtime state go here.
	{"tmpfs", "/run", "tmpfs", []string{"nosuid", "nodev", "mode=0755"}},
	// 7. /sys/fs/cgroup: the unified cgroup hierarchy, to account for and
	//    limit container processes.
	{"cgroup2", "/sys/fs/cgroup", "cgroup2", []string{"nosuid", "nodev", "noexec"}},
}

// Mount performs the early mounts in order. A failed step is reported and the
// rest still run: a half-booted agent that answers is better than a panic.
func Mount() error {
	var errs []error
	for i, s := range steps {
		if err := mountStep(s); err != nil {
			errs = append(errs, fmt.Errorf("boot mount %d (%s on %s): %w", i+1, s.fstype, s.target, err))
		}
	}
	return errors.Join(errs...)
}

func mountStep(s step) error {
	// Mount points must exist in the image (the root is read-only); a
	// missing one under a pseudo filesystem (/dev/pts, /dev/shm) is created.
	if _, err := os.Stat(s.target); errors.Is(err, os.ErrNotExist) {
		if err := os.Mkdir(s.target, 0o755); err != nil {
			return err
		}
	}
	// Idempotent: a re-run, or a kernel that mounted /dev itself. Until
	// /proc is there, mountinfo is not, so /proc is checked by its magic.
	if s.target == "/proc" {
		var st unix.Statfs_t
		if unix.Statfs("/proc", &st) == nil && st.Type == unix.PROC_SUPER_MAGIC {
			return nil
		}
	} else if mounted, err := mount.IsMountPoint(s.target); err == nil && mounted {
		return nil
	}
	return mount.Mount(s.source, s.target, s.fstype, mount.ParseOptions(s.options))
}

// SetHostname sets the guest's hostname; empty means leave it.
func SetHostname(name string) error {
	if name == "" {
		return nil
	}
	return unix.Sethostname([]byte(name))
}

// UnmountAll unmounts everything it can, deepest first, except the root and
// the early pseudo filesystems, so that every disk filesystem is clean even
// if the power-off is abrupt. Failures are ignored: sync has already run.
func UnmountAll() {
	mounts, err := mount.List()
	if err != nil {
		return
	}
	keep := map[string]bool{"/": true}
	for _, s := range steps {
		keep[s.target] = true
	}
	targets := make([]string, 0, len(mounts))
	for i := len(mounts) - 1; i >= 0; i-- {
		if m := mounts[i]; !keep[m.MountPoint] {
			targets = append(targets, m.MountPoint)
		}
	}
	// Deeper paths first; for equal paths (stacked mounts) later ones first.
	sort.SliceStable(targets, func(i, j int) bool {
		return strings.Count(targets[i], "/") > strings.Count(targets[j], "/")
	})
	for _, t := range targets {
		if err := unix.Unmount(t, 0); err != nil {
			// Busy (a process we could not kill?): at least make it read-only.
			_ = unix.Mount("", t, "", unix.MS_REMOUNT|unix.MS_RDONLY, "")
		}
	}
}

// PowerOff syncs and ends the VM. On arm64 that is a PSCI power-off. On
// x86_64 the microvm machine has no ACPI power-off, so it restarts instead:
// the host runs QEMU with -no-reboot, which makes a restart exit QEMU.
// It returns only on failure.
func PowerOff() error {
	unix.Sync()
	cmd := unix.LINUX_REBOOT_CMD_POWER_OFF
	if runtime.GOARCH == "amd64" {
		cmd = unix.LINUX_REBOOT_CMD_RESTART
	}
	return unix.Reboot(cmd)
}
