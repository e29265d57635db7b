package mount

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// bindRemountFlags are the flags a bind mount ignores on creation and that
// need a remount to take effect.
const bindRemountFlags = unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC |
	unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME | unix.MS_STRICTATIME

// Mount mounts source on target with the given type and parsed options:
// the mount itself, then for a bind mount with flags a remount applying
// them, then the propagation change if any.
func Mount(source, target, fstype string, o Options) error {
	if err := unix.Mount(source, target, fstype, o.Flags, o.Data); err != nil {
		return &os.PathError{Op: "mount", Path: target, Err: err}
	}
	if o.Flags&unix.MS_BIND != 0 && o.Flags&unix.MS_REMOUNT == 0 && o.Flags&bindRemountFlags != 0 {
		flags := unix.MS_REMOUNT | unix.MS_BIND | (o.Flags & bindRemountFlags)
		if err := unix.Mount("", target, "", flags, ""); err != nil {
			_ = unix.Unmount(target, unix.MNT_DETACH)
			return &os.PathError{Op: "remount", Path: target, Err: err}
		}
	}
	if o.Propagation != 0 {
		if err := unix.Mount("", target, "", o.Propagation, ""); err != nil {
			return &os.PathError{Op: "mount propagation", Path: target, Err: err}
		}
	}
	return nil
}

// MountInfo is one line of /proc/self/mountinfo, the parts we use.
type MountInfo struct {
	MountPoint string
	FSType     string
	Source     string
}

// List reads the calling process's mount table, in mount order.
func List() ([]MountInfo, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseMountInfo(bufio.NewScanner(f))
}

func parseMountInfo(s *bufio.Scanner) ([]MountInfo, error) {
	var out []MountInfo
	for s.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superopts
		fields := strings.Fields(s.Text())
		if len(fields) < 10 {
			continue
		}
		m := MountInfo{MountPoint: unescape(fields[4])}
		for i := 6; i < len(fields)-2; i++ {
			if fields[i] == "-" {
				m.FSType = fields[i+1]
				m.Source = unescape(fields[i+2])
				break
			}
		}
		out = append(out, m)
	}
	return out, s.Err()
}

// unescape undoes mountinfo's octal escapes (\040 for space and so on).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// IsMountPoint reports whether path (after resolving symlinks) is the mount
// point of some mount. statx's STATX_ATTR_MOUNT_ROOT (Linux 5.8+) answers in
// one syscall, bind mounts included; it is on the cold-start path, where
// reading the mount table for each check costs milliseconds under emulation.
// Older kernels fall back to the mount table.
func IsMountPoint(path string) (bool, error) {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, 0, 0, &stx); err != nil {
		return false, &os.PathError{Op: "statx", Path: path, Err: err}
	}
	if stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 {
		return stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0, nil
	}
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		return false, err
	}
	mounts, err := List()
	if err != nil {
		return false, err
	}
	for _, m := range mounts {
		if m.MountPoint == resolved {
			return true, nil
		}
	}
	return false, nil
}

// RemountReadOnly makes the mount at target read-only (this mount point only:
// mounts below it, such as /proc in a rootfs, keep their own flags).
func RemountReadOnly(target string) error {
	return unix.Mount("", target, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, "")
}

// EnsureMounted mounts unless target already is a mount point, creating
// target when missing.
func EnsureMounted(source, target, fstype string, o Options) error {
	if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	mounted, err := IsMountPoint(target)
	if err != nil {
		return fmt.Errorf("check mount point %s: %w", target, err)
	}
	if mounted {
		return nil
	}
	return Mount(source, target, fstype, o)
}
