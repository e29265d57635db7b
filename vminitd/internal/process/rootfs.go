package process

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/container-vm/container/vminitd/internal/mount"
)

// rootfsMount is one mount a container rootfs gets before its first process.
type rootfsMount struct {
	source, target, fstype string
	options                []string
	required               bool
}

// The mounts a container's rootfs gets before its first process, in the
// guest's namespace (so that vminitd can open the container's terminals and
// copy files); /proc comes later, from inside the container's own pid
// namespace (sandbox.Setup). /tmp stays as the image has it.
var rootfsMounts = []rootfsMount{
	{"sysfs", "sys", "sysfs", []string{"ro", "nosuid", "nodev", "noexec"}, false},
	// A /dev of its own with only the harmless devices (devNodes), not the
	// guest's devtmpfs with its disks.
	{"tmpfs", "dev", "tmpfs", []string{"nosuid", "noexec", "mode=755", "size=64k"}, true},
	// Private pseudo-terminals, shared memory and message queues.
	{"devpts", "dev/pts", "devpts", []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}, false},
	{"shm", "dev/shm", "tmpfs", []string{"nosuid", "nodev", "noexec", "mode=1777"}, false},
	{"mqueue", "dev/mqueue", "mqueue", []string{"nosuid", "nodev", "noexec"}, false},
}

// devNodes are the character devices of the container's /dev (OCI's
// default devices), each 0666.
var devNodes = []struct {
	name         string
	major, minor uint32
}{{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}}

// devLinks are the usual symlinks of /dev.
var devLinks = [][2]string{
	{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
	{"/proc/self/fd/2", "stderr"}, {"pts/ptmx", "ptmx"}, {"/proc/kcore", "core"},
}

// DefaultShmSize is /dev/shm's size when none is asked for, as Docker's.
const DefaultShmSize = 64 << 20

// RootfsPreparer mounts the pseudo filesystems into each rootfs once.
type RootfsPreparer struct {
	log *slog.Logger

	mu       sync.Mutex
	prepared map[string]bool
}

func NewRootfsPreparer(log *slog.Logger) *RootfsPreparer {
	return &RootfsPreparer{log: log, prepared: make(map[string]bool)}
}

// Prepare mounts /sys, /dev (with devNodes and devLinks), /dev/pts,
// /dev/shm (shmSize bytes; 0: DefaultShmSize) and /dev/mqueue into rootfs,
// and makes sure it has a /proc directory, unless done already. Each mount is skipped when the target already is a mount
// point, so a failed attempt can be retried. Missing optional mount points
// (a read-only image without /sys, say) are logged and skipped.
//
// With cgroupPath, that cgroup is bound read-only on the rootfs's
// /sys/fs/cgroup: the container sees its own limits and counters (cpu.max,
// memory.max...) where programs look for them, and nothing of the guest's.
func (p *RootfsPreparer) Prepare(rootfs, cgroupPath string, shmSize uint64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.prepared[rootfs] {
		return nil
	}
	if shmSize == 0 {
		shmSize = DefaultShmSize
	}
	mounts := make([]rootfsMount, 0, len(rootfsMounts)+1)
	for _, m := range rootfsMounts {
		if m.target == "dev/shm" {
			m.options = append(m.options[:len(m.options):len(m.options)], fmt.Sprintf("size=%d", shmSize))
		}
		mounts = append(mounts, m)
	}
	if cgroupPath != "" {
		mounts = append(mounts, rootfsMount{cgroupPath, "sys/fs/cgroup", "", []string{"bind", "ro", "nosuid", "nodev", "noexec"}, false})
	}
	for _, m := range mounts {
		target := filepath.Join(rootfs, m.target)
		if err := p.mountOne(rootfs, target, m); err != nil {
			if m.required {
				return err
			}
			p.log.Warn("rootfs mount skipped", "rootfs", rootfs, "target", "/"+m.target, "err", err)
		}
		if m.target == "dev" {
			if err := populateDev(filepath.Join(rootfs, "dev")); err != nil {
				return fmt.Errorf("populate /dev of rootfs %s: %w", rootfs, err)
			}
		}
	}
	if err := p.mountPoint(rootfs, "proc"); err != nil {
		return err
	}
	p.prepared[rootfs] = true
	return nil
}

// mountPoint makes sure rootfs/name is a directory, never following a
// symlink the image put where a mount point should be: it could point
// anywhere in the guest.
func (p *RootfsPreparer) mountPoint(rootfs, name string) error {
	target := filepath.Join(rootfs, name)
	fi, err := os.Lstat(target)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.Mkdir(target, 0o755); err != nil {
			return fmt.Errorf("rootfs has no /%s and it cannot be created: %w", name, err)
		}
	case err != nil:
		return err
	case fi.Mode()&os.ModeSymlink != 0:
		return fmt.Errorf("rootfs /%s is a symlink; not mounting over it", name)
	case !fi.IsDir():
		return fmt.Errorf("rootfs /%s is not a directory", name)
	}
	return nil
}

func (p *RootfsPreparer) mountOne(rootfs, target string, m rootfsMount) error {
	if err := p.mountPoint(rootfs, m.target); err != nil {
		return err
	}
	if mounted, err := mount.IsMountPoint(target); err != nil {
		return err
	} else if mounted {
		return nil
	}
	if err := mount.Mount(m.source, target, m.fstype, mount.ParseOptions(m.options)); err != nil {
		return fmt.Errorf("mount %s on /%s in rootfs %s: %w", m.source, m.target, rootfs, err)
	}
	return nil
}

// populateDev fills a fresh /dev tmpfs (what is there already is kept: a
// retried Prepare).
func populateDev(dev string) error {
	for _, n := range devNodes {
		p := filepath.Join(dev, n.name)
		if err := unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(n.major, n.minor))); err != nil && !errors.Is(err, unix.EEXIST) {
			return err
		}
		if err := unix.Chmod(p, 0o666); err != nil { // past the umask
			return err
		}
	}
	for _, l := range devLinks {
		if err := os.Symlink(l[0], filepath.Join(dev, l[1])); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	return nil
}

// Forget drops the record of rootfs (after it was unmounted).
func (p *RootfsPreparer) Forget(rootfs string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.prepared, rootfs)
}
