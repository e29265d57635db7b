package process

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/container-vm/container/vminitd/internal/mount"
)

// rootfsMount is one mount a container rootfs gets before its first process.
type rootfsMount struct {
	source, target, fstype string
	options                []string
	required               bool
}

// The mounts a process in a rootfs expects. /tmp stays as the image has it.
var rootfsMounts = []rootfsMount{
	{"proc", "proc", "proc", []string{"nosuid", "nodev", "noexec"}, true},
	{"sysfs", "sys", "sysfs", []string{"ro", "nosuid", "nodev", "noexec"}, false},
	// The guest's devtmpfs: device nodes, shared by every rootfs of this VM.
	{"/dev", "dev", "", []string{"bind"}, true},
	// Private pseudo-terminals and shared memory per rootfs.
	{"devpts", "dev/pts", "devpts", []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}, false},
	{"shm", "dev/shm", "tmpfs", []string{"nosuid", "nodev", "mode=1777"}, false},
}

// RootfsPreparer mounts the pseudo filesystems into each rootfs once.
type RootfsPreparer struct {
	log *slog.Logger

	mu       sync.Mutex
	prepared map[string]bool
}

func NewRootfsPreparer(log *slog.Logger) *RootfsPreparer {
	return &RootfsPreparer{log: log, prepared: make(map[string]bool)}
}

// Prepare mounts /proc, /sys, /dev, /dev/pts and /dev/shm into rootfs unless
// done already. Each mount is skipped when the target already is a mount
// point, so a failed attempt can be retried. Missing optional mount points
// (a read-only image without /sys, say) are logged and skipped.
//
// With cgroupPath, that cgroup is bound read-only on the rootfs's
// /sys/fs/cgroup: the container sees its own limits and counters (cpu.max,
// memory.max...) where programs look for them, and nothing of the guest's.
func (p *RootfsPreparer) Prepare(rootfs, cgroupPath string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.prepared[rootfs] {
		return nil
	}
	mounts := rootfsMounts
	if cgroupPath != "" {
		mounts = append(mounts[:len(mounts):len(mounts)], rootfsMount{cgroupPath, "sys/fs/cgroup", "", []string{"bind", "ro", "nosuid", "nodev", "noexec"}, false})
	}
	for _, m := range mounts {
		target := filepath.Join(rootfs, m.target)
		if err := p.mountOne(rootfs, target, m); err != nil {
			if m.required {
				return err
			}
			p.log.Warn("rootfs mount skipped", "rootfs", rootfs, "target", "/"+m.target, "err", err)
		}
	}
	p.prepared[rootfs] = true
	return nil
}

func (p *RootfsPreparer) mountOne(rootfs, target string, m rootfsMount) error {
	// Never follow a symlink the image put where a mount point should be:
	// it could point anywhere in the guest.
	fi, err := os.Lstat(target)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.Mkdir(target, 0o755); err != nil {
			return fmt.Errorf("rootfs has no /%s and it cannot be created: %w", m.target, err)
		}
	case err != nil:
		return err
	case fi.Mode()&os.ModeSymlink != 0:
		return fmt.Errorf("rootfs /%s is a symlink; not mounting over it", m.target)
	case !fi.IsDir():
		return fmt.Errorf("rootfs /%s is not a directory", m.target)
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

// Forget drops the record of rootfs (after it was unmounted).
func (p *RootfsPreparer) Forget(rootfs string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.prepared, rootfs)
}
