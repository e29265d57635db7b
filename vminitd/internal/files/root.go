// Package files does the agent's filesystem operations on guest paths,
// optionally confined to a container's rootfs.
//
// The rootfs comes from an untrusted image: a lookup inside it must never
// land outside, whatever its symlinks say. Every lookup is one openat2(2)
// from the rootfs's descriptor with RESOLVE_BENEATH, which makes the kernel
// refuse (EXDEV), race-free, any path that would leave it: ".." above its
// top, an absolute symlink, a relative one that climbs out, and magic links
// (/proc/self/root...). The last component is then acted on relative to its
// parent's descriptor, never by a path string.
package files

import (
	"errors"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/container-vm/container/vminitd/internal/errdefs"
)

// Root is where paths are looked up: a rootfs they must stay inside, or the
// guest's own root.
type Root struct {
	fd       int
	dir      string
	confined bool
}

// OpenRoot opens rootfs (an absolute guest path) for confined lookups, or
// the guest root, unconfined, when rootfs is "". Close it after use.
func OpenRoot(rootfs string) (*Root, error) {
	r := &Root{dir: rootfs, confined: rootfs != ""}
	if !r.confined {
		r.dir = "/"
	} else if !path.IsAbs(rootfs) {
		return nil, errdefs.InvalidArgumentf("rootfs %q must be an absolute path", rootfs)
	}
	fd, err := unix.Open(r.dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, PathError("open rootfs", rootfs, err)
	}
	r.fd = fd
	return r, nil
}

// Close releases the root's descriptor.
func (r *Root) Close() error { return unix.Close(r.fd) }

// Rel checks name (absolute; inside the rootfs when confined) and returns it
// relative to the root, cleaned: "" for the root itself. A ".." that climbs
// above the root is invalidArgument: in the rootfs it would escape it, and
// in the guest it is a mistake.
func Rel(name string) (string, error) {
	if !path.IsAbs(name) {
		return "", errdefs.InvalidArgumentf("path %q must be absolute", name)
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", errdefs.InvalidArgumentf("path %q has a NUL byte", name)
	}
	depth := 0
	for _, c := range strings.Split(name, "/") {
		switch c {
		case "", ".":
		case "..":
			if depth--; depth < 0 {
				return "", errdefs.InvalidArgumentf("path %q climbs out of the root", name)
			}
		default:
			depth++
		}
	}
	return strings.TrimPrefix(path.Clean(name), "/"), nil
}

// resolve flags: confined lookups stay beneath the root; none may follow a
// magic link, which could jump anywhere.
func (r *Root) resolve() uint64 {
	if r.confined {
		return unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS
	}
	return unix.RESOLVE_NO_MAGICLINKS
}

// open opens rel (from Rel) with flags, following links as r allows.
func (r *Root) open(rel string, flags int, mode uint32) (int, error) {
	if rel == "" {
		rel = "."
	}
	for {
		fd, err := unix.Openat2(r.fd, rel, &unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Mode: uint64(mode), Resolve: r.resolve()})
		if err == unix.EINTR || err == unix.EAGAIN { // EAGAIN: a rename raced the lookup
			continue
		}
		return fd, err
	}
}

// parent opens the directory holding rel (O_PATH) and returns it with rel's
// last component; rel must not be the root.
func (r *Root) parent(rel string) (int, string, error) {
	dir, base := path.Split(rel)
	fd, err := r.open(strings.TrimSuffix(dir, "/"), unix.O_PATH|unix.O_DIRECTORY, 0)
	return fd, base, err
}

// PathError gives a failed lookup or operation on name its code: missing is
// notFound, an escape from the rootfs or a wrong file type invalidArgument.
func PathError(op, name string, err error) error {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return errdefs.Wrap(errdefs.CodeOf(err), err)
	}
	switch errno {
	case unix.ENOENT:
		return errdefs.NotFoundf("%s %s: no such file or directory", op, name)
	case unix.EXDEV:
		return errdefs.InvalidArgumentf("%s %s: the path leaves the rootfs (through \"..\" or a symlink)", op, name)
	case unix.ELOOP:
		return errdefs.InvalidArgumentf("%s %s: too many levels of symbolic links", op, name)
	case unix.ENOTDIR, unix.EISDIR, unix.EINVAL, unix.ENAMETOOLONG:
		return errdefs.InvalidArgumentf("%s %s: %v", op, name, errno)
	case unix.EEXIST:
		return errdefs.Existsf("%s %s: file exists", op, name)
	case unix.EACCES, unix.EPERM, unix.EROFS:
		return errdefs.InvalidArgumentf("%s %s: %v", op, name, errno)
	case unix.EBUSY:
		return errdefs.InvalidStatef("%s %s: %v", op, name, errno)
	case unix.ENOSPC, unix.EDQUOT, unix.ENOMEM:
		return errdefs.New(errdefs.ResourceExhausted, "%s %s: %v", op, name, errno)
	case unix.ENOSYS:
		return errdefs.Unsupportedf("%s %s: the kernel lacks openat2", op, name)
	}
	return errdefs.Internalf("%s %s: %w", op, name, err)
}

// OpenPath returns an O_PATH descriptor of name, a final symlink followed
// within the root: something to reach through /proc/self/fd, never read.
func (r *Root) OpenPath(name string) (*os.File, error) {
	rel, err := Rel(name)
	if err != nil {
		return nil, err
	}
	fd, err := r.open(rel, unix.O_PATH, 0)
	if err != nil {
		return nil, PathError("open", name, err)
	}
	return os.NewFile(uintptr(fd), name), nil
}

// OpenParent returns an O_PATH descriptor of the directory holding name,
// and name's last component.
func (r *Root) OpenParent(name string) (*os.File, string, error) {
	rel, err := Rel(name)
	if err != nil {
		return nil, "", err
	}
	if rel == "" {
		return nil, "", errdefs.InvalidArgumentf("%s is the root, not a name in a directory", name)
	}
	fd, base, err := r.parent(rel)
	if err != nil {
		return nil, "", PathError("open", name, err)
	}
	return os.NewFile(uintptr(fd), path.Dir(name)), base, nil
}
