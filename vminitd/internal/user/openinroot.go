package user

import (
	"errors"
	"os"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The rootfs comes from an untrusted image, and its /etc/passwd may be a
// symlink: "/etc/passwd -> /run/secret" or "-> ../../../etc/shadow" must name
// a file *inside* the rootfs, as it would for a process chrooted into it,
// never one of the guest's. A plain filepath.Join would follow such links
// out of the rootfs.
//
// openat2(2) with RESOLVE_IN_ROOT (Linux 5.6) does exactly this in the
// kernel, race-free. Older kernels return ENOSYS; then walkInRoot resolves
// one component at a time from a directory fd, never letting the kernel
// follow a link (O_NOFOLLOW), reading each link itself, restarting absolute
// targets at the root fd and clamping ".." at the root. That is the
// algorithm of filepath-securejoin, done with file descriptors so that a
// directory swapped for a link halfway through cannot redirect us.
//
// Either way the path is first resolved to an O_PATH descriptor, which opens
// nothing; only once that is known to be a regular file is it reopened for
// reading through /proc/self/fd (mounted by PID 1 before anything else). So
// a FIFO planted at /etc/passwd cannot hang the agent, and a device node
// (a watchdog, say) is never opened.

// maxSymlinks is the kernel's limit on links followed in one lookup.
const maxSymlinks = 40

// errNotRegular reports a path that resolved to something other than a
// regular file.
var errNotRegular = errors.New("not a regular file")

// openInRoot opens the regular file at name (absolute, or relative to root)
// for reading, resolving it as a process chrooted into root would. Errors
// are *os.PathError naming name; a missing file or a non-directory path
// component wraps ENOENT or ENOTDIR, anything but a regular file
// errNotRegular.
func openInRoot(root, name string) (*os.File, error) {
	return openWith(root, name, resolveInRoot)
}

// resolveInRoot returns an O_PATH fd for name resolved inside rootfd.
func resolveInRoot(rootfd int, name string) (int, error) {
	fd, err := openat2InRoot(rootfd, name)
	if errors.Is(err, unix.ENOSYS) {
		return walkInRoot(rootfd, name)
	}
	return fd, err
}

// openWith is openInRoot with the resolver given (the tests run both).
func openWith(root, name string, resolve func(rootfd int, name string) (int, error)) (*os.File, error) {
	rootfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(rootfd)
	fd, err := resolve(rootfd, name)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: name, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, &os.PathError{Op: "open", Path: name, Err: errNotRegular}
	}
	rfd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(fd), unix.O_RDONLY|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "reopen", Path: name, Err: err}
	}
	return os.NewFile(uintptr(rfd), name), nil
}

// openat2InRoot returns an O_PATH fd for name resolved inside rootfd.
func openat2InRoot(rootfd int, name string) (int, error) {
	return unix.Openat2(rootfd, name, &unix.OpenHow{
		Flags: unix.O_PATH | unix.O_CLOEXEC,
		// No magic links (/proc/self/root and friends): they would jump
		// out of the root whatever RESOLVE_IN_ROOT says.
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
}

// walkInRoot is openat2InRoot for kernels without openat2; see the comment
// at the top of this file. Magic links are harmless here: they are read as
// text with readlinkat and resolved inside the root, never followed.
func walkInRoot(rootfd int, name string) (int, error) {
	// dirs holds the fds of the directories walked into below the root;
	// the last one is the current directory, none means the root itself.
	// Popping one on ".." gives the physical parent, as the kernel does.
	var dirs []int
	closeDirs := func() {
		for _, fd := range dirs {
			unix.Close(fd)
		}
		dirs = dirs[:0]
	}
	defer closeDirs()
	cur := func() int {
		if len(dirs) == 0 {
			return rootfd
		}
		return dirs[len(dirs)-1]
	}

	links := 0
	rest := name
	for {
		rest = strings.TrimLeft(rest, "/")
		if rest == "" {
			// The path named a directory: the root, or one ending in "/".
			return unix.Openat(cur(), ".", unix.O_PATH|unix.O_CLOEXEC, 0)
		}
		comp, after, more := strings.Cut(rest, "/")
		rest = after
		switch comp {
		case ".":
			continue
		case "..":
			if len(dirs) > 0 { // ".." of the root is the root
				unix.Close(dirs[len(dirs)-1])
				dirs = dirs[:len(dirs)-1]
			}
			continue
		}

		fd, err := unix.Openat(cur(), comp, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, err
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return -1, err
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			// An empty path reads the link an O_PATH fd refers to.
			target, err := readlinkat(fd, "")
			unix.Close(fd)
			if err != nil {
				return -1, err
			}
			if links++; links > maxSymlinks {
				return -1, unix.ELOOP
			}
			if path.IsAbs(target) {
				closeDirs()
			}
			if more { // keep a trailing slash: it demands a directory
				target += "/"
			}
			rest = target + rest
		case unix.S_IFDIR:
			if !more {
				return fd, nil
			}
			dirs = append(dirs, fd)
		default:
			if more {
				unix.Close(fd)
				return -1, unix.ENOTDIR
			}
			return fd, nil
		}
	}
}

func readlinkat(dirfd int, name string) (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(dirfd, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}
