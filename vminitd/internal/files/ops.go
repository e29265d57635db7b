package files

import (
	"errors"
	"path"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/container-vm/container/vminitd/internal/errdefs"
)

// Mkdir creates the directory name with mode (0: 0755); with parents, also
// the missing directories above it (0755), and an existing directory is no
// error. Modes are set exactly, whatever the umask.
func (r *Root) Mkdir(name string, mode uint32, parents bool) error {
	rel, err := Rel(name)
	if err != nil {
		return err
	}
	if mode == 0 {
		mode = 0o755
	}
	if rel == "" {
		if parents {
			return nil
		}
		return errdefs.Existsf("mkdir %s: file exists", name)
	}
	comps := strings.Split(rel, "/")
	last := len(comps) - 1
	if !parents {
		return r.mkdirOne(name, strings.Join(comps[:last], "/"), comps[last], mode)
	}
	for i := range comps {
		fd, err := r.open(strings.Join(comps[:i+1], "/"), unix.O_PATH|unix.O_DIRECTORY, 0)
		if err == nil {
			unix.Close(fd)
			continue
		}
		if err != unix.ENOENT {
			return PathError("mkdir", name, err)
		}
		m := uint32(0o755)
		if i == last {
			m = mode
		}
		if err := r.mkdirOne(name, strings.Join(comps[:i], "/"), comps[i], m); err != nil && !errdefs.Is(err, errdefs.Exists) {
			return err
		}
	}
	return nil
}

// mkdirOne makes base in the directory dir (relative to the root).
func (r *Root) mkdirOne(name, dir, base string, mode uint32) error {
	pfd, err := r.open(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return PathError("mkdir", name, err)
	}
	defer unix.Close(pfd)
	// Private until its mode is set.
	if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
		return PathError("mkdir", name, err)
	}
	return chmodAt(pfd, base, mode, unix.O_RDONLY|unix.O_DIRECTORY, name)
}

// chmodAt sets the mode of base in pfd, which was just made: opened with
// O_NOFOLLOW, so that a symlink swapped in meanwhile is not followed.
func chmodAt(pfd int, base string, mode uint32, flags int, name string) error {
	fd, err := unix.Openat(pfd, base, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return PathError("chmod", name, err)
	}
	defer unix.Close(fd)
	if err := unix.Fchmod(fd, mode&0o7777); err != nil {
		return PathError("chmod", name, err)
	}
	return nil
}

// WriteOptions shape WriteFile.
type WriteOptions struct {
	// Mode of a file this call creates; 0: 0644.
	Mode uint32
	// Append to an existing file rather than truncate it.
	Append bool
	// An existing file is an exists error.
	Exclusive bool
}

// WriteFile writes data to the regular file name, following a final symlink
// (within the root), creating the file when missing.
func (r *Root) WriteFile(name string, data []byte, o WriteOptions) error {
	rel, err := Rel(name)
	if err != nil {
		return err
	}
	if rel == "" {
		return errdefs.InvalidArgumentf("write %s: is a directory", name)
	}
	if o.Mode == 0 {
		o.Mode = 0o644
	}
	fd, err := r.openExisting(name, rel, o)
	if errdefs.Is(err, errdefs.NotFound) {
		fd, err = r.create(name, rel, o.Mode)
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return writeAll(fd, data, name)
}

// openExisting opens rel for writing if it is there and a regular file. The
// type is checked on an O_PATH descriptor first, so that a FIFO or a device
// is never opened.
func (r *Root) openExisting(name, rel string, o WriteOptions) (int, error) {
	pfd, err := r.open(rel, unix.O_PATH, 0)
	if err != nil {
		return -1, PathError("write", name, err)
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return -1, PathError("write", name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return -1, errdefs.InvalidArgumentf("write %s: not a regular file", name)
	}
	if o.Exclusive {
		return -1, errdefs.Existsf("write %s: file exists", name)
	}
	flags := unix.O_WRONLY | unix.O_NOCTTY | unix.O_CLOEXEC
	if o.Append {
		flags |= unix.O_APPEND
	} else {
		flags |= unix.O_TRUNC
	}
	fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(pfd), flags, 0)
	if err != nil {
		return -1, PathError("write", name, err)
	}
	return fd, nil
}

// create makes rel, which was missing. O_EXCL|O_NOFOLLOW: a dangling symlink
// there (or a file made meanwhile) is exists, never followed.
func (r *Root) create(name, rel string, mode uint32) (int, error) {
	pfd, base, err := r.parent(rel)
	if err != nil {
		return -1, PathError("write", name, err)
	}
	defer unix.Close(pfd)
	fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return -1, PathError("create", name, err)
	}
	if err := unix.Fchmod(fd, mode&0o7777); err != nil {
		unix.Close(fd)
		return -1, PathError("chmod", name, err)
	}
	return fd, nil
}

func writeAll(fd int, data []byte, name string) error {
	for len(data) > 0 {
		n, err := unix.Write(fd, data)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return PathError("write", name, err)
		}
		data = data[n:]
	}
	return nil
}

// Replace puts a regular file with data and mode at name in one step:
// written beside it under a temporary name, then renamed over it. Whatever
// was there, a symlink included, is replaced rather than followed. The
// directories above it are made when missing.
func (r *Root) Replace(name string, data []byte, mode uint32) error {
	rel, err := Rel(name)
	if err != nil {
		return err
	}
	if rel == "" {
		return errdefs.InvalidArgumentf("replace %s: is a directory", name)
	}
	if err := r.Mkdir(path.Dir(path.Join("/", rel)), 0o755, true); err != nil {
		return err
	}
	pfd, base, err := r.parent(rel)
	if err != nil {
		return PathError("replace", name, err)
	}
	defer unix.Close(pfd)
	tmp := "." + base + ".vminitd-tmp"
	_ = unix.Unlinkat(pfd, tmp, 0) // left by an earlier failure
	fd, err := unix.Openat(pfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return PathError("create", name, err)
	}
	err = unix.Fchmod(fd, mode&0o7777)
	if err == nil {
		err = writeAll(fd, data, name)
	}
	if cerr := unix.Close(fd); err == nil && cerr != nil {
		err = PathError("write", name, cerr)
	}
	if err == nil {
		if rerr := unix.Renameat(pfd, tmp, pfd, base); rerr != nil {
			err = PathError("rename", name, rerr)
		}
	}
	if err != nil {
		_ = unix.Unlinkat(pfd, tmp, 0)
	}
	return err
}

// FileType is the kind of file a Stat describes.
type FileType int

const (
	TypeUnknown FileType = iota
	TypeRegular
	TypeDirectory
	TypeSymlink
	TypeFIFO
	TypeSocket
	TypeCharDevice
	TypeBlockDevice
)

// Info describes a file.
type Info struct {
	Type       FileType
	Mode       uint32 // st_mode & 07777
	Size       uint64
	UID, GID   uint32
	MtimeNs    int64
	LinkTarget string
}

// Stat describes name itself: a final symlink is not followed, and its
// target is read.
func (r *Root) Stat(name string) (Info, error) {
	rel, err := Rel(name)
	if err != nil {
		return Info{}, err
	}
	var st unix.Stat_t
	if rel == "" {
		if err := unix.Fstatat(r.fd, "", &st, unix.AT_EMPTY_PATH); err != nil {
			return Info{}, PathError("stat", name, err)
		}
		return info(&st), nil
	}
	pfd, base, err := r.parent(rel)
	if err != nil {
		return Info{}, PathError("stat", name, err)
	}
	defer unix.Close(pfd)
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return Info{}, PathError("stat", name, err)
	}
	in := info(&st)
	if in.Type == TypeSymlink {
		buf := make([]byte, unix.PathMax)
		n, err := unix.Readlinkat(pfd, base, buf)
		if err != nil {
			return Info{}, PathError("readlink", name, err)
		}
		in.LinkTarget = string(buf[:n])
	}
	return in, nil
}

func info(st *unix.Stat_t) Info {
	types := map[uint32]FileType{
		unix.S_IFREG: TypeRegular, unix.S_IFDIR: TypeDirectory, unix.S_IFLNK: TypeSymlink,
		unix.S_IFIFO: TypeFIFO, unix.S_IFSOCK: TypeSocket, unix.S_IFCHR: TypeCharDevice, unix.S_IFBLK: TypeBlockDevice,
	}
	return Info{
		Type:    types[st.Mode&unix.S_IFMT],
		Mode:    st.Mode & 0o7777,
		Size:    uint64(st.Size),
		UID:     st.Uid,
		GID:     st.Gid,
		MtimeNs: st.Mtim.Nano(),
	}
}

// Unmount unmounts the filesystem mounted at name; lazy detaches it even
// while busy. The mount point is reached through its parent's descriptor
// (a descriptor of the mount point itself would keep it busy) and is not
// followed if it is a symlink.
func (r *Root) Unmount(name string, lazy bool) error {
	rel, err := Rel(name)
	if err != nil {
		return err
	}
	if rel == "" {
		return errdefs.InvalidArgumentf("unmount %s: refusing to unmount the root", name)
	}
	pfd, base, err := r.parent(rel)
	if err != nil {
		return PathError("unmount", name, err)
	}
	defer unix.Close(pfd)
	flags := unix.UMOUNT_NOFOLLOW
	if lazy {
		flags |= unix.MNT_DETACH
	}
	err = unix.Unmount("/proc/self/fd/"+strconv.Itoa(pfd)+"/"+base, flags)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EINVAL):
		return errdefs.InvalidArgumentf("unmount %s: not a mount point", name)
	case errors.Is(err, unix.EBUSY):
		return errdefs.WithHint(errdefs.InvalidStatef("unmount %s: busy", name), "stop what uses it, or unmount lazily")
	}
	return PathError("unmount", name, err)
}

// fitrim is FITRIM, _IOWR('X', 121, struct fstrim_range), the same number on
// amd64 and arm64 (x/sys does not define it).
const fitrim = 0xc0185879

// Trim discards the free blocks of the filesystem holding name (an absolute
// guest path) that are at least minLength bytes long, and returns how many
// bytes the filesystem says it discarded.
func Trim(name string, minLength uint64) (uint64, error) {
	if !path.IsAbs(name) {
		return 0, errdefs.InvalidArgumentf("path %q must be absolute", name)
	}
	fd, err := unix.Open(name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, PathError("trim", name, err)
	}
	defer unix.Close(fd)
	rng := struct{ start, length, minLen uint64 }{0, ^uint64(0), minLength}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), fitrim, uintptr(unsafe.Pointer(&rng)))
	switch errno {
	case 0:
		return rng.length, nil
	case unix.EOPNOTSUPP, unix.ENOTTY:
		return 0, errdefs.Unsupportedf("trim %s: the filesystem or its device cannot discard", name)
	case unix.EINVAL:
		return 0, errdefs.InvalidArgumentf("trim %s: min length %d is too large", name, minLength)
	}
	return 0, PathError("trim", name, errno)
}
